"""The AWS side of the pipeline and its MWAA environment, as one CDK app in Python."""
