"""Audio transcription pipeline for Amazon MWAA: the plugins the ``audio_transcription`` DAG uses.

Plain logic lives in the modules of this package (listing, claims, batches, submission,
notifications, batch_watcher, transcripts, summaries, settlement); ``tasks`` is what each of
the DAG's tasks does; the Airflow classes in hooks/, operators/, sensors/ and triggers/ adapt
it to Airflow. Importing the package changes nothing outside it.
"""
