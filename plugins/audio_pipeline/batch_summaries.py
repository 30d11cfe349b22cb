"""Summarise the completed files of one batch and record each result."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.claims import take_for_summary
from audio_pipeline.s3_uris import split_s3_uri
from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import DEFAULT_LEASE_SECONDS, StatusTable, utcnow
from audio_pipeline.summaries import Summarizer, SummaryError, first_sentence, summary_location
from audio_pipeline.transcripts import parse_transcript

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

FLUSH_EVERY = 20


@dataclass(frozen=True)
class SummaryFailure:
    uri: str
    reason: str
    retryable: bool
    """A later attempt may succeed: throttling that outlasted the retries, an S3 or network error."""


@dataclass
class BatchSummaryReport:
    summarized: int = 0
    errors: list[SummaryFailure] = field(default_factory=list)
    not_completed: int = 0
    """Files this run does not summarise: no transcript of this claim, or another run took them for their summary."""

    @property
    def retryable(self) -> bool:
        """Whether running the batch again may summarise some of the files that failed."""
        return any(e.retryable for e in self.errors)


def _is_retryable(err: Exception) -> bool:
    if isinstance(err, SummaryError):
        return err.retryable
    return isinstance(err, (ClientError, BotoCoreError))


def completed_files(
    table: StatusTable, files: Sequence[ClaimedFile], run_id: str
) -> list[tuple[ClaimedFile, dict[str, Any]]]:
    """The files of a batch whose transcript their claim completed, each with its item, less those a
    run other than ``run_id`` has taken for its summary since."""
    items = table.get_many(
        [f["uri"] for f in files], ("status", "inference_id", "run_id", "deadline", "summary_error", "output_location")
    )
    return [
        (f, items[f["uri"]])
        for f in files
        if f["uri"] in items
        and items[f["uri"]].get("status") == Status.COMPLETED
        and items[f["uri"]].get("inference_id") == f["inference_id"]
        and items[f["uri"]].get("run_id") == run_id
    ]


def record_no_summary(table: StatusTable, files: Sequence[ClaimedFile], run_id: str, reason: str) -> int:
    """Record on each completed file of ``run_id`` why it has no summary; a later run with summaries on takes it."""
    moves = [
        Transition.without_summary(f["uri"], f["inference_id"], reason, require={"run_id": run_id})
        for f, _ in completed_files(table, files, run_id)
    ]
    return len(table.apply(moves).applied)


class BatchSummarizer:
    """Reads each completed file's transcript, summarises it, stores the summary next to it.

    Summary work is leased: before summarising, the run takes its completed files again
    (conditional on still holding them, a new ``deadline``), so a retry of its task never takes
    back a file another run has taken since, and two runs never both summarise one file.
    """

    def __init__(
        self,
        table: StatusTable,
        s3_client: S3Client,
        summarizer: Summarizer,
        *,
        run_id: str,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        concurrency: int = 4,
    ) -> None:
        self.table = table
        self.s3 = s3_client
        self.summarizer = summarizer
        self.run_id = run_id
        self.lease_seconds = lease_seconds
        self.concurrency = max(1, concurrency)

    def run(self, files: Sequence[ClaimedFile]) -> BatchSummaryReport:
        report = BatchSummaryReport()
        completed = completed_files(self.table, files, self.run_id)
        taken = set(take_for_summary(self.table, completed, self.run_id, self.lease_seconds))
        todo = [(f, item) for f, item in completed if f["uri"] in taken]
        report.not_completed = len(files) - len(todo)
        pending: list[Transition] = []
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="summarise") as pool:
            for transition, failure in pool.map(lambda pair: self._summarise(*pair), todo):
                if failure:
                    report.errors.append(failure)
                else:
                    report.summarized += 1
                pending.append(transition)
                if len(pending) >= FLUSH_EVERY:
                    self.table.apply(pending)
                    pending.clear()
        self.table.apply(pending)
        return report

    def _summarise(self, f: ClaimedFile, item: dict[str, Any]) -> tuple[Transition, SummaryFailure | None]:
        output = item.get("output_location")
        try:
            if not output:
                raise ValueError("no output location was recorded for this file")
            bucket, key = split_s3_uri(output)
            transcript = parse_transcript(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            summary = self.summarizer.summarize(transcript)
            target = summary_location(output)
            target_bucket, target_key = split_s3_uri(target)
            self.s3.put_object(
                Bucket=target_bucket, Key=target_key, Body=summary.to_json().encode(), ContentType="application/json"
            )
        except Exception as err:  # every failure is recorded on the file; the transcript stays completed
            reason = f"{type(err).__name__}: {err}"
            log.warning("summary failed for %s: %s", f["uri"], reason)
            recorded = Transition.without_summary(f["uri"], f["inference_id"], reason, require=self._holder)
            return recorded, SummaryFailure(f["uri"], reason, _is_retryable(err))
        log.info("summarized %s -> %s", f["uri"], target)
        summarized = Transition(
            f["uri"],
            f["inference_id"],
            Status.SUMMARIZED,
            {
                "summary_location": target,
                "summary_opening": first_sentence(summary.summary),  # for the run's report, without a read
                "summary_model_id": summary.model_id,
                "summarized_at": utcnow(),
            },
            remove=("summary_error",),
            require=self._holder,
        )
        return summarized, None

    @property
    def _holder(self) -> dict[str, str]:
        """A result is written only while this run still holds the file."""
        return {"run_id": self.run_id}
