"""Submitting claimed files to a SageMaker asynchronous inference endpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.config import UnusableInputError, result_window_seconds
from audio_pipeline.status import Status, StatusTable, Transition, utcnow

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


def check_endpoint(sagemaker_client: Any, endpoint_name: str) -> None:
    """Fail fast, naming the endpoint, when it does not exist or cannot take requests."""
    try:
        status = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)["EndpointStatus"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ValidationException":  # throttled, say: retry
            raise
        raise EndpointNotFoundError(
            f"SageMaker endpoint {endpoint_name!r} does not exist ({err}); set endpoint_name in the Airflow "
            "Variable audio_pipeline_config to an asynchronous inference endpoint in this region"
        ) from err
    if status not in ("InService", "Updating", "SystemUpdating"):  # Creating, say: a retry may find it ready
        raise RuntimeError(f"SageMaker endpoint {endpoint_name!r} is {status}, not InService")


def content_type_for(uri: str) -> str:
    extension = uri.rsplit(".", 1)[-1].lower()
    return CONTENT_TYPES.get(extension, "application/octet-stream")


@dataclass(frozen=True)
class InvocationSettings:
    endpoint_name: str
    request_ttl_seconds: int
    invocation_timeout_seconds: int
    result_grace_seconds: int

    @property
    def result_window_seconds(self) -> int:
        return result_window_seconds(
            self.request_ttl_seconds, self.invocation_timeout_seconds, self.result_grace_seconds
        )


@dataclass
class SubmissionReport:
    submitted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    already_done: int = 0


class BatchSubmitter:
    """Invokes the endpoint once per claimed file and records each outcome in the status table.

    Safe to re-run after a crash or a task retry: files whose claim already moved past
    ``processing`` are not submitted again. Status writes are batched and flushed every
    ``flush_every`` invocations and on the way out (also when the task is killed), so a
    retry re-submits at most the files invoked since the last flush before a hard kill.
    """

    def __init__(
        self,
        table: StatusTable,
        runtime_client: Any,
        settings: InvocationSettings,
        *,
        flush_every: int = 25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.runtime = runtime_client
        self.settings = settings
        self.flush_every = flush_every
        self.clock = clock

    def submit(self, files: Sequence[ClaimedFile]) -> SubmissionReport:
        report = SubmissionReport()
        current = self.table.get_many([f["uri"] for f in files], ("status", "inference_id"))
        todo = []
        for f in files:
            item = current.get(f["uri"])
            if item and item.get("inference_id") == f["inference_id"] and item["status"] == Status.PROCESSING:
                todo.append(f)
            else:
                report.already_done += 1
        if report.already_done:
            log.info("%d files of this batch were submitted or settled by an earlier attempt", report.already_done)
        pending: list[Transition] = []
        try:
            for f in todo:
                pending.append(self._invoke(f, report))
                if len(pending) >= self.flush_every:
                    self._flush(pending)
        finally:
            self._flush(pending)
        return report

    def _invoke(self, f: ClaimedFile, report: SubmissionReport) -> Transition:
        try:
            response = self.runtime.invoke_endpoint_async(
                EndpointName=self.settings.endpoint_name,
                InputLocation=f["uri"],
                ContentType=content_type_for(f["uri"]),
                InferenceId=f["inference_id"],
                RequestTTLSeconds=self.settings.request_ttl_seconds,
                InvocationTimeoutSeconds=self.settings.invocation_timeout_seconds,
            )
        except (ClientError, BotoCoreError) as err:
            reason = f"InvokeEndpointAsync failed: {err}"
            log.warning("%s: %s", f["uri"], reason)
            report.failed.append((f["uri"], reason))
            return Transition(
                f["uri"], f["inference_id"], Status.FAILED, {"failure_reason": reason, "failed_at": utcnow()}
            )
        if response.get("InferenceId") not in (None, f["inference_id"]):
            log.warning("%s: endpoint answered inference id %s", f["uri"], response.get("InferenceId"))
        report.submitted += 1
        return Transition(
            f["uri"],
            f["inference_id"],
            Status.SUBMITTED,
            {
                "output_location": response.get("OutputLocation"),
                "failure_location": response.get("FailureLocation"),
                "submitted_at": utcnow(),
                "deadline": int(self.clock() + self.settings.result_window_seconds),
            },
        )

    def _flush(self, pending: list[Transition]) -> None:
        if not pending:
            return
        written = self.table.apply(pending)
        for uri in written.rejected:
            log.info("%s settled before its submission was recorded (a fast notification)", uri)
        pending.clear()
