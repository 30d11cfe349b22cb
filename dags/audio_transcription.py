"""Turn a bucket of audio into transcripts (SageMaker asynchronous inference) and summaries (Bedrock).

1. ``resolve_run``: the run's configuration, read once (one Variable), and its ``s3://bucket/prefix/``
   (conf, or the configured prefix for the nightly run), checked; every later task gets both by XCom.
2. ``claim_new_audio``: list every page, keep audio, skip what the status table has done or in
   flight, claim the rest with conditional writes, and write batch manifests to S3.
3. ``transcribe`` (mapped over batches): submit each batch to the endpoint, wait in the triggerer
   for its notifications, summarise each transcript with Bedrock.
4. ``report_run``: settle anything left in flight, log one line per file, write the run manifest.

Configuration comes from the Airflow Variable ``audio_pipeline_config`` (see ``audio_pipeline.config``),
AWS access from the ``aws_default`` connection.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task, task_group

from audio_pipeline import tasks
from audio_pipeline.alerts import OperationsNotifier
from audio_pipeline.assets import RUN_MANIFESTS
from audio_pipeline.batches import BatchRef
from audio_pipeline.config import DEFAULTS, setting
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from audio_pipeline.sensors.transcription_batch import TranscriptionBatchSensor
from audio_pipeline.summary_retries import task_retries
from audio_pipeline.tasks import AWS_CONN_ID

SCHEDULE = os.environ.get("AUDIO_PIPELINE_SCHEDULE", "0 2 * * *") or None
"""The nightly run's cron; set empty, the DAG runs only when triggered."""
BATCH_LABEL = "{{ task.batch['label'] }}"
DAG_FOLDER = Path(__file__).parent
INCLUDE = next(
    (folder / "include" for folder in (DAG_FOLDER, DAG_FOLDER.parent) if (folder / "include").is_dir()),
    DAG_FOLDER / "include",
)
"""What a user edits without a code release: the project's ``include/``, deployed into the DAG folder
on MWAA (.airflowignore keeps the DAG processor out of it), read beside the DAG folder in a checkout
(the local stack) and in docker compose."""
PROMPTS = INCLUDE / "prompts"
"""The prompt templates."""
PRICES = INCLUDE / "prices.json"
"""The price table of the runs' cost estimates."""
RESOLVE_RUN = "resolve_run"


def _run_type(dag_run: Any) -> str | None:
    return dag_run.run_type if dag_run is not None else None


@task(task_id=RESOLVE_RUN, multiple_outputs=True)
def resolve_run(params: dict | None = None, dag_run: Any = None) -> dict:
    """The run's bucket URI and settings, checked; each also an XCom of its own that operators take."""
    return tasks.resolve_run(params or {}, _run_type(dag_run))


@task
def claim_new_audio(
    run: dict, params: dict | None = None, run_id: str | None = None, ti: Any = None, dag_run: Any = None
) -> list[BatchRef]:
    """Claim the new audio files under the bucket URI and split them into batch manifests."""
    return tasks.claim_new_audio(run, params or {}, run_id, _run_type(dag_run), ti)


@task(map_index_template="{{ batch_label }}", **task_retries(DEFAULTS.summary_retry_seconds))
def summarise(
    batch: BatchRef, run: dict, params: dict | None = None, run_id: str | None = None, ti: Any = None
) -> dict[str, int]:
    """Summarise each completed transcript of the batch with Bedrock (Converse); through Bedrock
    throttling, retry with exponential backoff for about ``summary_retry_seconds``."""
    get_current_context()["batch_label"] = batch["label"]
    return tasks.summarise(batch, run, params or {}, run_id, PROMPTS, ti.try_number if ti is not None else 1)


@task_group
def transcribe(batch: BatchRef, run: Any) -> None:
    """One batch: submit to the endpoint, wait for the results, summarise. ``run`` is the first
    task's output: ``run["endpoint_name"]`` is its XCom of that one setting."""
    submit = SubmitTranscriptionBatchOperator(
        task_id="submit",
        batch=batch,
        endpoint_name=run["endpoint_name"],
        status_table=run["status_table"],
        request_ttl_seconds=run["request_ttl_seconds"],
        invocation_timeout_seconds=run["invocation_timeout_seconds"],
        result_window_seconds=run["result_window_seconds"],
        inputs_path=run["inputs_path"],
        output_path=run["output_path"],
        aws_conn_id=AWS_CONN_ID,
        map_index_template=BATCH_LABEL,
        # batches go in nearly in order, so the first ones finish (and get summarised) while
        # later ones are still in the endpoint's queue; two at a time keep that queue full
        max_active_tis_per_dagrun=2,
    )
    wait = TranscriptionBatchSensor(
        task_id="await_transcripts",
        batch=batch,
        status_table=run["status_table"],
        notification_queue=run["notification_queue"],
        result_window_seconds=run["result_window_seconds"],
        reconcile_interval_seconds=run["reconcile_interval_seconds"],
        endpoint_name=run["endpoint_name"],
        output_path=run["output_path"],
        aws_conn_id=AWS_CONN_ID,
        deferrable=True,  # whatever operators.default_deferrable says: a batch waits for hours
        map_index_template=BATCH_LABEL,
    )
    submit >> wait >> summarise(batch, run)


@task(outlets=[RUN_MANIFESTS])
def report_run(run: dict, run_id: str | None = None, outlet_events: Any = None, dag_run: Any = None) -> dict[str, int]:
    """Settle what is still in flight, write the run manifest, publish the run's figures, and emit an
    event of the run manifests' Asset for DAGs scheduled on new transcripts."""
    outcome = tasks.report_run(run, run_id, dag_run.start_date if dag_run is not None else None, PRICES)
    outlet_events[RUN_MANIFESTS].extra = outcome.asset_extra
    return outcome.counts


@dag(
    dag_id="audio_transcription",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    on_failure_callback=OperationsNotifier(aws_conn_id=AWS_CONN_ID),  # to operations_topic_arn, if set
    tags=["audio", "sagemaker", "bedrock"],
    doc_md=__doc__,
    params={
        "bucket_uri": Param(
            None,
            type=["null", "string"],
            title="Bucket URI",
            description=f"s3://bucket/prefix/ to process. Empty: the configured {setting('schedule_bucket_uri')}.",
        ),
        "batch_size": Param(
            100,
            type="integer",
            minimum=1,
            maximum=10000,
            description=f"Files per mapped batch; batches grow when a run would exceed {setting('max_batches')} "
            "batches (a setting).",
        ),
        "max_files": Param(
            0,
            type="integer",
            minimum=0,
            description=f"Claim at most this many files (0 = all; a nightly run: {setting('schedule_max_files')}).",
        ),
        "reprocess_failed": Param(
            False,
            type="boolean",
            description="Claim the files under the bucket URI whose earlier processing failed, too, and take "
            "again those whose summary was given up.",
        ),
        "summarize": Param(True, type="boolean", description="Summarise each transcript with Amazon Bedrock."),
        "accept_empty_status_table": Param(
            False,
            type="boolean",
            description="Run although the status table is empty while earlier runs' manifests exist (the table "
            "was deleted and recreated): every audio file under the bucket URI is then transcribed again.",
        ),
    },
)
def audio_transcription() -> None:
    run = resolve_run()
    batches = claim_new_audio(run)
    work = transcribe.partial(run=run).expand(batch=batches)
    report = report_run(run)
    run >> batches >> work >> report.as_teardown(setups=run)


audio_transcription()
