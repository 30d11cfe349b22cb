"""Audio transcription pipeline for Amazon MWAA: the plugins the ``audio_transcription`` DAG uses.

Plain logic lives in the modules of this package (listing, status, batches, submission,
notifications, batch_watcher, transcripts, summaries); the Airflow classes in hooks/,
operators/, sensors/ and triggers/ only adapt it to Airflow.
"""

import warnings

# Amazon provider 9.34 (MWAA's) reads its own version for the User-Agent through
# ProvidersManager().hooks, which Airflow 3.3 deprecates inside tasks: every task and trigger
# log would open with that DeprecatedImportWarning (a FutureWarning). Ignore exactly that
# message, raised from exactly that module; any other warning still shows. Provider 9.39 asks
# ProvidersManagerTaskRuntime instead (the cause fixed): drop this once MWAA runs it.
warnings.filterwarnings(
    "ignore",
    message=r"ProvidersManager\.hooks is deprecated",
    category=FutureWarning,
    module=r"airflow\.providers\.amazon\.aws\.hooks\.base_aws",
)
