"""Submitting claimed files to a SageMaker asynchronous inference endpoint."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.config import UnusableInputError
from audio_pipeline.ledger import Accepted, Invocation, Ledger, NotSent, Refused, Status, Unclear
from audio_pipeline.pinning import VersionGoneError, pin
from audio_pipeline.transient import is_transient

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_sagemaker import SageMakerClient

    from audio_pipeline.hooks.sagemaker_async import SageMakerAsyncInferenceHook

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "webm": "audio/webm",
    "aac": "audio/aac",
}


class EndpointNotFoundError(UnusableInputError, LookupError):
    """The configured endpoint does not exist in this account and region."""


class EndpointMismatchError(UnusableInputError):
    """The endpoint is not asynchronous, or writes its results where the pipeline does not read them."""


def check_endpoint(sagemaker_client: SageMakerClient, endpoint_name: str, output_path: str) -> None:
    """Fail fast, naming the endpoint, when it does not exist, cannot take requests, is not an
    asynchronous inference endpoint, or whose ``S3OutputPath`` is not ``output_path`` (where the
    pipeline records results from: a success elsewhere would be refused, and its file failed hours
    later at its deadline)."""
    try:
        described = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ValidationException":  # throttled, say: retry
            raise
        raise EndpointNotFoundError(
            f"SageMaker endpoint {endpoint_name!r} does not exist ({err}); set endpoint_name in the Airflow "
            "Variable audio_pipeline_config to an asynchronous inference endpoint in this region"
        ) from err
    status = described["EndpointStatus"]
    if status not in ("InService", "Updating", "SystemUpdating"):  # Creating, say: a retry may find it ready
        raise RuntimeError(f"SageMaker endpoint {endpoint_name!r} is {status}, not InService")
    config_name = described["EndpointConfigName"]
    async_config = sagemaker_client.describe_endpoint_config(EndpointConfigName=config_name).get("AsyncInferenceConfig")
    if async_config is None:
        raise EndpointMismatchError(
            f"SageMaker endpoint {endpoint_name!r} is not an asynchronous inference endpoint (its endpoint "
            f"config {config_name!r} has no AsyncInferenceConfig)"
        )
    written = async_config["OutputConfig"].get("S3OutputPath", "")
    if written.rstrip("/") != output_path.rstrip("/"):
        raise EndpointMismatchError(
            f"SageMaker endpoint {endpoint_name!r} writes its results to {written} (S3OutputPath of its endpoint "
            f"config {config_name!r}), but the pipeline records results only from {output_path}: set "
            "output_bucket and transcripts_prefix in the Airflow Variable audio_pipeline_config to match it"
        )


def content_type_for(uri: str) -> str:
    extension = uri.rsplit(".", 1)[-1].lower()
    return CONTENT_TYPES.get(extension, "application/octet-stream")


@dataclass(frozen=True)
class InvocationSettings:
    endpoint_name: str
    request_ttl_seconds: int
    invocation_timeout_seconds: int
    result_window_seconds: int
    """How long after its submission a file's result may still arrive (``PipelineConfig.result_window_seconds``)."""
    inputs_path: str
    """Where each file version is copied before it is sent (:mod:`audio_pipeline.pinning`)."""


UNCLEAR = "the endpoint may have accepted it"


class UnclearInvocationError(Exception):
    """An invocation went out and no answer came back (a read timeout, a closed connection): SageMaker
    may have accepted it. A refused connection or an error answer is clear: nothing was accepted."""


@dataclass(frozen=True)
class AsyncInvocation:
    """The endpoint's answer to an accepted invocation: where its result will be written."""

    inference_id: str | None
    output_location: str | None
    failure_location: str | None


@dataclass
class SubmissionReport:
    submitted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    already_done: int = 0
    unclear: list[tuple[str, str]] = field(default_factory=list)
    """Files recorded ``submitted`` without a clear answer: their result may still arrive, and they
    are never invoked again (a second invocation would transcribe them twice)."""


GROUP_SIZE = 25
"""Files marked ``invoking_since`` and invoked together, their outcomes written in one batch."""


class BatchSubmitter:
    """Invokes the endpoint at most once per claimed file and records each outcome in the ledger.

    Before a group of ``flush_every`` files is invoked, each is marked (:meth:`Ledger.mark_invoking`:
    only a live claim of ``run_id`` without another submitter's mark); after, the group's outcomes
    are written in one batch. A retry of the task (after a crash, a kill) invokes only files still
    ``processing`` without a mark. A marked file may or may not have reached the endpoint (the task
    died in between), so like a file whose invocation got no clear answer (a read timeout) it is
    recorded ``submitted``, never invoked again: its result is recorded if it comes, and it fails at
    its deadline if not. On an orderly exit (an exception, SIGTERM) the mark is taken off the files
    not invoked.
    """

    def __init__(
        self,
        ledger: Ledger,
        endpoint: SageMakerAsyncInferenceHook,
        s3_client: S3Client,
        settings: InvocationSettings,
        run_id: str,
        *,
        flush_every: int = GROUP_SIZE,
    ) -> None:
        self.ledger = ledger
        self.endpoint = endpoint
        self.s3 = s3_client
        self.settings = settings
        self.run_id = run_id
        self.flush_every = flush_every

    def submit(self, files: Sequence[ClaimedFile]) -> SubmissionReport:
        report = SubmissionReport()
        current = self.ledger.get(f["uri"] for f in files)
        todo: list[ClaimedFile] = []
        interrupted: list[Invocation] = []
        for f in files:
            record = current.get(f["uri"])
            if (
                record is None
                or record.inference_id != f["inference_id"]
                or record.status != Status.PROCESSING
                or record.run_id != self.run_id
            ):
                report.already_done += 1
            elif record.invoking_since is not None:
                # sent, if at all, between its mark and now: its result may come until a window after the mark
                why = "the submitting task stopped while invoking it"
                interrupted.append(self._unclear(f, why, record.invoking_since, report))
            else:
                todo.append(f)
        if report.already_done:
            log.info(
                "%d files of this batch were submitted, settled or taken over before this attempt", report.already_done
            )
        self._flush(interrupted)
        for start in range(0, len(todo), self.flush_every):
            self._submit_group(todo[start : start + self.flush_every], report)
        return report

    def _submit_group(self, group: Sequence[ClaimedFile], report: SubmissionReport) -> None:
        since, marked = self.ledger.mark_invoking(group, self.run_id, self.settings.result_window_seconds)
        if len(marked) < len(group):  # settled meanwhile (the run ended), or marked by another submitter
            log.info("%d files of this group are no longer this submitter's to send", len(group) - len(marked))
        pending: list[Invocation] = []
        untouched = [f for f in group if f["uri"] in set(marked)]
        try:
            while untouched:
                f = untouched[0]  # while it is invoked, it keeps its mark: the request may reach the endpoint
                pending.append(self._invoke(f, since, report))
                untouched.pop(0)
        finally:
            # stopped midway (SIGTERM, say): the file being sent keeps its mark, those never sent lose it
            pending += [NotSent(f, since) for f in untouched[1:]]
            self._flush(pending)

    def _unclear(self, f: ClaimedFile, why: str, since: int, report: SubmissionReport) -> Unclear:
        reason = f"{why}; {UNCLEAR}, so it is not invoked again and its result is awaited until its deadline"
        log.warning("%s: %s", f["uri"], reason)
        report.unclear.append((f["uri"], reason))
        return Unclear(f, since, reason)

    def _invoke(self, f: ClaimedFile, since: int, report: SubmissionReport) -> Invocation:
        try:
            pinned = pin(self.s3, f, self.settings.inputs_path)
        except (VersionGoneError, ClientError, BotoCoreError) as err:
            why = (
                str(err) if isinstance(err, VersionGoneError) else f"could not copy the claimed version to send: {err}"
            )
            return self._refused(f, since, f"not sent: {why}", err, report)
        try:
            answer = self.endpoint.invoke_async(
                endpoint_name=self.settings.endpoint_name,
                input_location=pinned,
                content_type=content_type_for(f["uri"]),
                inference_id=f["inference_id"],
                request_ttl_seconds=self.settings.request_ttl_seconds,
                invocation_timeout_seconds=self.settings.invocation_timeout_seconds,
            )
        except UnclearInvocationError as err:
            return self._unclear(f, str(err), since, report)
        except (ClientError, BotoCoreError) as err:
            return self._refused(f, since, f"InvokeEndpointAsync failed: {err}", err, report)
        if answer.inference_id not in (None, f["inference_id"]):
            log.warning("%s: endpoint answered inference id %s", f["uri"], answer.inference_id)
        report.submitted += 1
        return Accepted(f, since, pinned, answer.output_location, answer.failure_location)

    def _refused(self, f: ClaimedFile, since: int, reason: str, err: Exception, report: SubmissionReport) -> Refused:
        """Not accepted; a passing error (:func:`is_transient`) leaves the file to the next run."""
        resend = is_transient(err)
        if resend:
            reason = f"{reason}; a passing error, so the next run sends it again"
        log.warning("%s: %s", f["uri"], reason)
        report.failed.append((f["uri"], reason))
        return Refused(f, since, reason, resend=resend)

    def _flush(self, pending: list[Invocation]) -> None:
        if not pending:
            return
        written = self.ledger.record_invocations(pending, self.settings.result_window_seconds)
        for uri in written.rejected:
            log.info("%s settled before its submission was recorded (a fast notification)", uri)
        pending.clear()
