"""What each task of the ``audio_transcription`` DAG does: one function per task, called by the DAG's
``@task`` functions with what Airflow hands them.

A function raises ``AirflowFailException`` when a retry would meet the same input (an unusable
configuration, a bucket URI without audio, a prompt template to fix, a summary Bedrock refuses),
``AirflowSkipException`` when the run has nothing to do, and anything else to be retried.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from audio_pipeline.batch_summaries import SUMMARY_ATTEMPTS, BatchSummarizer, record_no_summary
from audio_pipeline.batches import BatchManifests, BatchRef, ClaimSpool, read_manifest
from audio_pipeline.claims import RunEnded, claim_new_files, refuse_reset_table
from audio_pipeline.config import CONFIG_VARIABLE, PipelineConfig, UnusableInputError
from audio_pipeline.costs import Rates
from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook
from audio_pipeline.hooks.status_table import StatusTableHook
from audio_pipeline.listing import check_bucket
from audio_pipeline.metrics_names import NAMESPACE
from audio_pipeline.prompt_templates import load_prompts
from audio_pipeline.run_metrics import publish_run_metrics, run_metrics
from audio_pipeline.s3_uris import parse_bucket_uri
from audio_pipeline.settlement import settle_and_report
from audio_pipeline.submission import check_endpoint
from audio_pipeline.summaries import Summarizer
from audio_pipeline.summary_retries import SummariesThrottled, gives_up, giving_up

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

    from audio_pipeline.ledger import Ledger

AWS_CONN_ID = "aws_default"
# the tasks log through logging, not print: printed lines reach the task log late, after
# the task's own end (inside the UI's folded "Post Execute" group)
log = logging.getLogger(__name__)


class RunStates(Protocol):
    """The part of Airflow's task instance that tells another run's state."""

    dag_id: str

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str: ...


@dataclass(frozen=True)
class RunServices:
    """A run's settings and the AWS clients its tasks share, opened once per task."""

    config: PipelineConfig
    s3: S3Client
    ledger: Ledger

    @classmethod
    def open(cls, config: PipelineConfig) -> RunServices:
        """S3 and the status table's ledger through the ``aws_default`` connection."""
        ledger = StatusTableHook(aws_conn_id=AWS_CONN_ID, status_table=config.status_table).ledger
        return cls(config, S3Hook(aws_conn_id=AWS_CONN_ID).conn, ledger)

    @classmethod
    def of_run(cls, run: dict[str, Any]) -> RunServices:
        """:meth:`open` with the settings of the run's first task's XCom."""
        return cls.open(PipelineConfig.from_run(run))


def resolve_run(params: dict[str, Any], run_type: str | None) -> dict[str, Any]:
    """The run's inputs, read once: its bucket URI and every setting (``PipelineConfig.run_xcom``);
    the bucket and endpoint must exist, and an empty status table is refused after earlier runs
    unless ``params["accept_empty_status_table"]``.

    The bucket URI is ``params["bucket_uri"]``, else the configured ``schedule_bucket_uri``; a
    scheduled run with neither is skipped, saying so (a manual run without one fails).
    """
    try:
        config = PipelineConfig.from_variable()
        uri = params.get("bucket_uri") or config.schedule_bucket_uri
        if not uri and run_type == "scheduled":
            why = (
                f"no bucket URI for the nightly run: set schedule_bucket_uri (s3://bucket/prefix/) in the "
                f"Airflow Variable {CONFIG_VARIABLE}, or trigger the DAG with conf bucket_uri"
            )
            log.info("%s", why)  # the task log shows a skip without its reason
            raise AirflowSkipException(why)
        location = parse_bucket_uri(uri)
        run = RunServices.open(config)
        check_bucket(run.s3, location)
        check_endpoint(SageMakerHook(aws_conn_id=AWS_CONN_ID).conn, config.endpoint_name, config.output_path)
        if not params.get("accept_empty_status_table"):
            refuse_reset_table(run.ledger, run.s3, config.output_bucket, config.runs_prefix)
    except UnusableInputError as err:
        raise AirflowFailException(str(err)) from err  # a retry would say the same
    log.info("Processing %s with endpoint %s", location.uri, config.endpoint_name)
    return config.run_xcom(location.uri)


def run_ended(ti: RunStates | None) -> RunEnded | None:
    """Whether a run of this DAG has ended (success or failed), asked of Airflow once per run id.

    When Airflow cannot tell (the run was deleted, say), the run counts as not ended: its files
    wait for their lease to end.
    """
    if ti is None:
        return None

    @functools.cache
    def ended(run_id: str) -> bool:
        try:
            return ti.get_dagrun_state(dag_id=ti.dag_id, run_id=run_id) in ("success", "failed")
        except Exception as err:  # any answer but a state leaves the decision to the lease
            log.warning("state of run %s unknown (%s); its files wait for their deadline", run_id, err)
            return False

    return ended


def claim_new_audio(
    run: dict[str, Any], params: dict[str, Any], run_id: str, run_type: str | None, ti: RunStates | None
) -> list[BatchRef]:
    """Claim the new audio files under the run's bucket URI and split them into batch manifests.

    A scheduled run without ``params["max_files"]`` claims at most ``schedule_max_files``; a bucket
    URI without audio fails the task at once.
    """
    services = RunServices.of_run(run)
    config = services.config
    max_files = params["max_files"]
    if not max_files and run_type == "scheduled":
        max_files = config.schedule_max_files
        log.info("nightly run: claiming at most %d files (schedule_max_files)", max_files)
    with ClaimSpool() as claimed:
        try:
            report = claim_new_files(
                services.s3,
                services.ledger,
                parse_bucket_uri(run["bucket_uri"]),
                config.extensions,
                run_id,
                claimed.add,
                inputs_path=config.inputs_path,
                lease_seconds=config.result_window_seconds,
                reprocess_failed=params["reprocess_failed"],
                summarize=params["summarize"],
                max_files=max_files,
                run_ended=run_ended(ti),
            )
        except UnusableInputError as err:
            raise AirflowFailException(str(err)) from err  # a retry would list the same
        for line in report.lines():
            log.info("%s", line)
        manifests = BatchManifests(services.s3, config.output_bucket, config.run_prefix(run_id))
        return manifests.write(claimed, claimed.count, params["batch_size"], config.max_batches)


def summarise(
    batch: BatchRef,
    run: dict[str, Any],
    params: dict[str, Any],
    run_id: str,
    prompts_folder: Path,
    try_number: int = 1,
) -> dict[str, int]:
    """Summarise each completed transcript of the batch with Bedrock (Converse), with the prompt
    templates in ``prompts_folder``.

    With ``params["summarize"]`` off, the batch's transcripts are recorded as waiting for a run
    with summaries on, and the task is skipped. Summaries that failed are recorded
    ``summary_error``; when a retry may succeed (throttling past botocore's retries, say) the task
    raises :class:`~audio_pipeline.summary_retries.SummariesThrottled` for its next retry, and on
    its last try (``try_number``) it is skipped, the transcripts left waiting for the next run;
    it fails at once when a retry cannot help.
    """
    services = RunServices.of_run(run)
    config = services.config
    files = read_manifest(services.s3, batch["manifest"])
    if not params["summarize"]:
        reason = f"summaries were off for run {run_id} (summarize=false)"
        waiting = record_no_summary(services.ledger, files, run_id, reason)
        raise AirflowSkipException(
            f"summaries are off for this run (summarize=false): {waiting} transcripts wait for a run with them on"
        )
    try:
        prompts = load_prompts(prompts_folder)
    except UnusableInputError as err:
        raise AirflowFailException(str(err)) from err  # the template needs fixing; a retry would say the same
    summarizer = Summarizer(
        AdaptiveBedrockRuntimeHook(aws_conn_id=AWS_CONN_ID),
        config.bedrock_model_id,
        chunk_chars=config.summary_chunk_chars,
        max_tokens=config.summary_max_tokens,
        prompts=prompts,
    )
    report = BatchSummarizer(
        services.ledger,
        services.s3,
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
        if gives_up(try_number):
            why = giving_up(len(report.errors), config.summary_retry_seconds)
            log.warning("%s", why)  # the task log shows a skip without its reason
            raise AirflowSkipException(why)
        raise SummariesThrottled(len(report.errors), try_number, config.summary_retry_seconds)
    if report.errors:
        # the transcripts stay completed with their summary_error: the next run takes them for their
        # summary, unless given up (rejected by SUMMARY_ATTEMPTS runs)
        given_up = sum(1 for e in report.errors if e.given_up)
        raise AirflowFailException(
            f"{len(report.errors)} summaries failed with errors a retry cannot fix (recorded as summary_error)"
            + (
                f"; {given_up} of them given up after {SUMMARY_ATTEMPTS} attempts: no later run takes them for "
                "their summary unless triggered with reprocess_failed"
                if given_up
                else ""
            )
        )
    return {"summarized": report.summarized, "not_completed": report.not_completed}


@dataclass(frozen=True)
class RunOutcome:
    """What ``report_run`` returns and what the run manifests' Asset event carries."""

    counts: dict[str, int]
    """Files of the run by final status."""
    asset_extra: dict[str, Any]
    """The run manifest's URI, the run id, the bucket URI, the counts, and the run's work and estimated
    cost with the estimate's prices and sources (:meth:`RunCosts.totals`)."""


def report_run(run: dict[str, Any], run_id: str, started: datetime | None, prices: Path) -> RunOutcome:
    """Settle what is still in flight, log a line per file with its work and estimated cost, write the
    run manifest to S3, and publish the run's figures (``started``: when the run began; now when
    unknown) to CloudWatch (the failed-files alarm's metric, the estimated cost); the log's last lines
    are the run's work, its estimated cost and that of an audio hour, at the prices in ``prices``.
    A price table it cannot read fails the task, naming what it needs, once all that is done without
    estimated costs."""
    services = RunServices.of_run(run)
    config = services.config
    unusable: UnusableInputError | None = None
    try:
        rates = Rates.load(prices, config.endpoint_instance_type, config.bedrock_model_id)
    except UnusableInputError as err:  # settled and reported all the same: only the estimate is missing
        unusable, rates = err, Rates.unpriced(config.endpoint_instance_type, config.bedrock_model_id, "unusable")
    key = f"{config.run_prefix(run_id)}manifest.json"
    reason = f"run {run_id} ended before a result was recorded"
    report = settle_and_report(
        services.ledger, services.s3, run_id, run["bucket_uri"], (config.output_bucket, key), reason, rates
    )
    now = datetime.now(UTC)
    metrics = run_metrics(report.counts, (now - (started or now)).total_seconds(), report.costs)
    publish_run_metrics(AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="cloudwatch").conn, metrics)
    log.info("published to CloudWatch (%s): %s", NAMESPACE, ", ".join(f"{k} {v:g}" for k, v in metrics.items()))
    for line in report.costs.lines():
        log.info("%s", line)
    if unusable:  # the price table needs fixing; a retry would say the same
        raise AirflowFailException(f"{unusable}; the run is settled and its manifest written, without estimated costs")
    counts = dict(report.counts)
    extra = {
        "manifest": f"s3://{config.output_bucket}/{key}",
        "run_id": run_id,
        "bucket_uri": run["bucket_uri"],
        "counts": counts,
        **report.costs.totals(),
    }
    return RunOutcome(counts, extra)
