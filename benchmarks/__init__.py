"""Scale figures of the pipeline on the local stack (``make bench``)."""
