"""Summarise the completed files of one batch and record each result."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.ledger import FileRecord, Ledger, Status, Summarized, SummaryFailed
from audio_pipeline.s3_uris import split_s3_uri
from audio_pipeline.summaries import Summarizer, SummaryError, first_sentence, summary_location
from audio_pipeline.transcripts import read_transcript
from audio_pipeline.work import FileWork

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummaryFailure:
    uri: str
    reason: str
    retryable: bool
    """A later attempt may succeed: throttling that outlasted the retries, an S3 or network error."""
    given_up: bool = False
    """No later run takes the file for its summary (:data:`SUMMARY_ATTEMPTS`)."""


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


SUMMARY_ATTEMPTS = 3
"""Runs whose summary of a file may fail with an error a retry cannot fix before it is given up
(:attr:`FileRecord.summary_given_up`): one transcript Bedrock always rejects does not fail every
later run."""


def completed_files(ledger: Ledger, files: Sequence[ClaimedFile], run_id: str) -> list[FileRecord]:
    """The records of a batch's files whose transcript their claim completed, less those a run other
    than ``run_id`` has taken for its summary since."""
    records = ledger.get(f["uri"] for f in files)
    return [
        record
        for f in files
        if (record := records.get(f["uri"])) is not None
        and record.status == Status.COMPLETED
        and record.inference_id == f["inference_id"]
        and record.run_id == run_id
    ]


def record_no_summary(ledger: Ledger, files: Sequence[ClaimedFile], run_id: str, reason: str) -> int:
    """Record on each completed file of ``run_id`` why it has no summary; a later run with summaries on takes it."""
    waiting = [r for r in completed_files(ledger, files, run_id) if not r.summary_given_up]
    return len(ledger.leave_without_summary(waiting, run_id, reason))


class BatchSummarizer:
    """Reads each completed file's transcript, summarises it, stores the summary next to it, and
    records it in the ledger as soon as it is stored.

    Summary work is leased: before summarising, the run takes its completed files again
    (:meth:`Ledger.take_for_summary`), so a retry of its task never takes back a file another run
    has taken since, and two runs never both summarise one file. A file taken before (a task killed
    between storing a summary and recording it) is looked for in S3 first, so its summary is
    recorded, not asked of Bedrock again.
    """

    def __init__(
        self,
        ledger: Ledger,
        s3_client: S3Client,
        summarizer: Summarizer,
        *,
        run_id: str,
        lease_seconds: int,
        concurrency: int = 4,
    ) -> None:
        self.ledger = ledger
        self.s3 = s3_client
        self.summarizer = summarizer
        self.run_id = run_id
        self.lease_seconds = lease_seconds
        self.concurrency = max(1, concurrency)

    def run(self, files: Sequence[ClaimedFile]) -> BatchSummaryReport:
        report = BatchSummaryReport()
        completed = completed_files(self.ledger, files, self.run_id)
        # given up by an earlier try of this run (the only run holding it so): not asked again, still failed
        given_up = [r for r in completed if r.summary_given_up]
        report.errors += [SummaryFailure(r.uri, r.summary_error or "", False, given_up=True) for r in given_up]
        asked = [r for r in completed if not r.summary_given_up]
        taken = set(self.ledger.take_for_summary(asked, self.run_id, self.lease_seconds))
        todo = [r for r in asked if r.uri in taken]
        report.not_completed = len(files) - len(todo) - len(given_up)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="summarise") as pool:
            for failure in pool.map(self._summarise, todo):
                if failure:
                    report.errors.append(failure)
                else:
                    report.summarized += 1
        return report

    def _summarise(self, record: FileRecord) -> SummaryFailure | None:
        """Summarise one file and record the outcome at once (a kill loses no stored summary)."""
        try:
            outcome: Summarized | SummaryFailed = self._summary(record)
            failure = None
        except Exception as err:  # every failure is recorded on the file; the transcript stays completed
            reason = f"{type(err).__name__}: {err}"
            retryable = _is_retryable(err)
            rejections = record.summary_rejections + (not retryable and record.counts_a_rejection(self.run_id))
            give_up = not retryable and rejections >= SUMMARY_ATTEMPTS
            if give_up:
                reason = (
                    f"{reason} (given up after {rejections} attempts: no run takes it for its summary again "
                    "unless triggered with reprocess_failed)"
                )
            log.warning("summary failed for %s: %s", record.uri, reason)
            outcome = SummaryFailed(record, reason, rejected=not retryable, give_up=give_up)
            failure = SummaryFailure(record.uri, reason, retryable, given_up=give_up)
        self.ledger.record_summaries([outcome], self.run_id)
        return failure

    def _summary(self, record: FileRecord) -> Summarized:
        output = record.output_location
        if not output:
            raise ValueError("no output location was recorded for this file")
        target = summary_location(output)
        stored = self._stored(target) if record.summary_attempts else None
        if stored is not None:
            log.info("summary of %s found in S3 (%s), stored by an earlier attempt", record.uri, target)
            usage = stored.get("usage") or {}
            # the report reads the transcript's figures, not read here
            tokens = FileWork(input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens"))
            return Summarized(record, target, first_sentence(stored["summary"]), stored["model_id"], tokens)
        bucket, key = split_s3_uri(output)
        transcript = read_transcript(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        summary = self.summarizer.summarize(transcript.text)
        target_bucket, target_key = split_s3_uri(target)
        self.s3.put_object(
            Bucket=target_bucket, Key=target_key, Body=summary.to_json().encode(), ContentType="application/json"
        )
        log.info("summarized %s -> %s", record.uri, target)
        # the summary's opening and the file's work, for the run's report without a read
        tokens = FileWork(input_tokens=summary.input_tokens, output_tokens=summary.output_tokens)
        return Summarized(
            record, target, first_sentence(summary.summary), summary.model_id, transcript.work.combined(tokens)
        )

    def _stored(self, uri: str) -> dict[str, Any] | None:
        """The summary document at ``uri``, or None when there is none."""
        bucket, key = split_s3_uri(uri)
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        stored: dict[str, Any] = json.loads(body)
        return stored
