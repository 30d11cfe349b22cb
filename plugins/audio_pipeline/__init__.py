"""Audio transcription pipeline for Amazon MWAA: the plugins the ``audio_transcription`` DAG uses.

Plain logic lives in the modules of this package (listing, status, batches, submission,
notifications, outcomes, transcripts, summaries); the Airflow classes in hooks/,
operators/, sensors/ and triggers/ only adapt it to Airflow.
"""
