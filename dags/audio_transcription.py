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

import functools
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.sdk import Param, dag, get_current_context, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from audio_pipeline.alerts import OperationsNotifier
from audio_pipeline.assets import RUN_MANIFESTS
from audio_pipeline.batch_summaries import BatchSummarizer, record_no_summary
from audio_pipeline.batches import BatchManifests, BatchRef, ClaimSpool, read_manifest
from audio_pipeline.claims import claim_new_files, refuse_reset_table
from audio_pipeline.config import CONFIG_VARIABLE, PipelineConfig, UnusableInputError
from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook
from audio_pipeline.hooks.status_table import StatusTableHook
from audio_pipeline.listing import check_bucket
from audio_pipeline.metrics_names import NAMESPACE
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from audio_pipeline.prompt_templates import load_prompts
from audio_pipeline.run_metrics import publish_run_metrics, run_metrics
from audio_pipeline.s3_uris import parse_bucket_uri
from audio_pipeline.sensors.transcription_batch import TranscriptionBatchSensor
from audio_pipeline.settlement import settle_and_report
from audio_pipeline.submission import check_endpoint
from audio_pipeline.summaries import Summarizer

AWS_CONN_ID = "aws_default"
SCHEDULE = os.environ.get("AUDIO_PIPELINE_SCHEDULE", "0 2 * * *")
BATCH_LABEL = "{{ task.batch['label'] }}"
DAG_FOLDER = Path(__file__).parent
PROMPTS = next(
    (folder / "include" / "prompts" for folder in (DAG_FOLDER, DAG_FOLDER.parent) if (folder / "include").is_dir()),
    DAG_FOLDER / "include" / "prompts",
)
"""Prompt templates a user edits without a code release: the project's ``include/``, deployed into
the DAG folder on MWAA (.airflowignore keeps the DAG processor out of it), read beside the DAG
folder in a checkout (the local stack) and in docker compose."""
RESOLVE_RUN = "resolve_run"
# the tasks log through logging, not print: printed lines reach the task log late, after
# the task's own end (inside the UI's folded "Post Execute" group)
log = logging.getLogger("audio_pipeline.tasks")


@task(task_id=RESOLVE_RUN, multiple_outputs=True)
def resolve_run(params: dict | None = None, dag_run=None) -> dict:
    """The run's inputs, read once: its bucket URI and every setting (``PipelineConfig.run_xcom``),
    each also an XCom of its own that operators take; the bucket and endpoint must exist.

    The bucket URI is conf ``bucket_uri``, else the configured ``schedule_bucket_uri``; a
    scheduled run with neither is skipped, saying so (a manual run without one fails).
    """
    try:
        config = PipelineConfig.from_variables()
        uri = params.get("bucket_uri") or config.schedule_bucket_uri
        if not uri and dag_run is not None and dag_run.run_type == "scheduled":
            why = (
                f"no bucket URI for the nightly run: set schedule_bucket_uri (s3://bucket/prefix/) in the "
                f"Airflow Variable {CONFIG_VARIABLE}, or trigger the DAG with conf bucket_uri"
            )
            log.info("%s", why)  # the task log shows a skip without its reason
            raise AirflowSkipException(why)
        location = parse_bucket_uri(uri)
        s3 = S3Hook(aws_conn_id=AWS_CONN_ID).conn
        check_bucket(s3, location)
        check_endpoint(SageMakerHook(aws_conn_id=AWS_CONN_ID).conn, config.endpoint_name)
        if not params.get("accept_empty_status_table"):
            ledger = StatusTableHook(aws_conn_id=AWS_CONN_ID, status_table=config.status_table).ledger
            refuse_reset_table(ledger, s3, config.output_bucket, config.runs_prefix)
    except UnusableInputError as err:
        raise AirflowFailException(str(err)) from err  # a retry would say the same
    log.info("Processing %s with endpoint %s", location.uri, config.endpoint_name)
    return config.run_xcom(location.uri)


def _run_ended(ti: Any) -> Callable[[str], bool] | None:
    """Whether a run of this DAG has ended (success or failed), asked of Airflow once per run id."""
    if ti is None:
        return None

    @functools.cache
    def ended(run_id: str) -> bool:
        try:
            return ti.get_dagrun_state(dag_id=ti.dag_id, run_id=run_id) in ("success", "failed")
        except Exception as err:  # a run deleted, say: its lease still decides
            log.warning("state of run %s unknown (%s); its files wait for their deadline", run_id, err)
            return False

    return ended


@task
def claim_new_audio(
    run: dict, params: dict | None = None, run_id: str | None = None, ti: Any = None, dag_run: Any = None
) -> list[BatchRef]:
    """Claim the new audio files under the bucket URI and split them into batch manifests."""
    config = PipelineConfig.from_run(run)
    s3 = S3Hook(aws_conn_id=AWS_CONN_ID).conn
    ledger = StatusTableHook(aws_conn_id=AWS_CONN_ID, status_table=config.status_table).ledger
    max_files = params["max_files"]
    if not max_files and dag_run is not None and dag_run.run_type == "scheduled":
        max_files = config.schedule_max_files
        log.info("nightly run: claiming at most %d files (schedule_max_files)", max_files)
    with ClaimSpool() as claimed:
        try:
            report = claim_new_files(
                s3,
                ledger,
                parse_bucket_uri(run["bucket_uri"]),
                config.extensions,
                run_id,
                claimed.add,
                inputs_path=config.inputs_path,
                lease_seconds=config.result_window_seconds,
                reprocess_failed=params["reprocess_failed"],
                summarize=params["summarize"],
                max_files=max_files,
                run_ended=_run_ended(ti),
            )
        except UnusableInputError as err:
            raise AirflowFailException(str(err)) from err  # a retry would list the same
        for line in report.lines():
            log.info("%s", line)
        manifests = BatchManifests(s3, config.output_bucket, config.run_prefix(run_id))
        return manifests.write(claimed, claimed.count, params["batch_size"], config.max_batches)


@task(map_index_template="{{ batch_label }}")
def summarise(batch: BatchRef, run: dict, params: dict | None = None, run_id: str | None = None) -> dict[str, int]:
    """Summarise each completed transcript of the batch with Bedrock (Converse)."""
    get_current_context()["batch_label"] = batch["label"]
    config = PipelineConfig.from_run(run)
    s3 = S3Hook(aws_conn_id=AWS_CONN_ID).conn
    ledger = StatusTableHook(aws_conn_id=AWS_CONN_ID, status_table=config.status_table).ledger
    files = read_manifest(s3, batch["manifest"])
    if not params["summarize"]:
        waiting = record_no_summary(ledger, files, run_id, f"summaries were off for run {run_id} (summarize=false)")
        raise AirflowSkipException(
            f"summaries are off for this run (summarize=false): {waiting} transcripts wait for a run with them on"
        )
    try:
        prompts = load_prompts(PROMPTS)
    except UnusableInputError as err:
        raise AirflowFailException(str(err)) from err  # the template needs fixing; a retry would say the same
    summarizer = Summarizer(
        AdaptiveBedrockRuntimeHook(aws_conn_id=AWS_CONN_ID).conn,
        config.bedrock_model_id,
        chunk_chars=config.summary_chunk_chars,
        max_tokens=config.summary_max_tokens,
        prompts=prompts,
    )
    report = BatchSummarizer(
        ledger,
        s3,
        summarizer,
        run_id=run_id,
        lease_seconds=config.result_window_seconds,
        concurrency=config.summary_concurrency,
    ).run(files)
    for failure in report.errors:
        log.warning("summary failed: %s: %s", failure.uri, failure.reason)
    log.info(
        "%s: %d summarized, %d summary errors, %d without a transcript or taken by another run for its summary",
        batch["label"],
        report.summarized,
        len(report.errors),
        report.not_completed,
    )
    if report.retryable:
        raise RuntimeError(f"{len(report.errors)} summaries failed (recorded as summary_error); retrying them")
    if report.errors:
        # the transcripts stay completed with their summary_error: the next run takes them for their summary
        raise AirflowFailException(
            f"{len(report.errors)} summaries failed with errors a retry cannot fix (recorded as summary_error)"
        )
    return {"summarized": report.summarized, "not_completed": report.not_completed}


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
        result_grace_seconds=run["result_grace_seconds"],
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
    """Settle what is still in flight, log a line per file, write the run manifest to S3, publish the
    run's figures to CloudWatch (the failed-files alarm's metric), and emit an event of the run
    manifests' Asset for DAGs scheduled on new transcripts."""
    config = PipelineConfig.from_run(run)
    ledger = StatusTableHook(aws_conn_id=AWS_CONN_ID, status_table=config.status_table).ledger
    key = f"{config.run_prefix(run_id)}manifest.json"
    reason = f"run {run_id} ended before a result was recorded"
    s3 = S3Hook(aws_conn_id=AWS_CONN_ID).conn
    report = settle_and_report(ledger, s3, run_id, run["bucket_uri"], (config.output_bucket, key), reason)
    started = dag_run.start_date if dag_run is not None and dag_run.start_date else pendulum.now("UTC")
    metrics = run_metrics(report.counts, (pendulum.now("UTC") - started).total_seconds())
    publish_run_metrics(AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="cloudwatch").conn, metrics)
    log.info("published to CloudWatch (%s): %s", NAMESPACE, ", ".join(f"{k} {v:g}" for k, v in metrics.items()))
    manifest = f"s3://{config.output_bucket}/{key}"
    outlet_events[RUN_MANIFESTS].extra = {
        "manifest": manifest,
        "run_id": run_id,
        "bucket_uri": run["bucket_uri"],
        "counts": dict(report.counts),
    }
    return dict(report.counts)


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
            description="s3://bucket/prefix/ to process. Empty: the configured schedule_bucket_uri.",
        ),
        "batch_size": Param(
            100,
            type="integer",
            minimum=1,
            maximum=10000,
            description="Files per mapped batch; batches grow when a run would exceed audio_pipeline_max_batches.",
        ),
        "max_files": Param(0, type="integer", minimum=0, description="Claim at most this many files (0 = all)."),
        "reprocess_failed": Param(
            False, type="boolean", description="Claim files whose earlier processing failed, too."
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
