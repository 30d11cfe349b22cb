"""The end of a run: what it left in flight fails, what it transcribed but never summarised is
told why, and every file's final state and work is read, logged and written to the run manifest.

A file's work figures are recorded with its summary (the summariser reads its transcript and
Converse's usage anyway: no call of its own); a transcript without a summary (summaries off, a
summary error) is read here for its endpoint figures, one ``GetObject`` each."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import batched
from typing import TYPE_CHECKING, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from audio_pipeline.costs import Rates
from audio_pipeline.ledger import FileRecord, Ledger, Status
from audio_pipeline.reporting import RunReport, transcribed_by
from audio_pipeline.s3_uris import split_s3_uri
from audio_pipeline.transcripts import TranscriptFormatError, read_transcript
from audio_pipeline.work import FileWork

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

SETTLE_CHUNK = 1000
"""Files settled, read and reported at a time: a run's end holds this many, whatever its size."""
MANIFEST_SPOOL_BYTES = 8 * 1024 * 1024
"""A run manifest larger than this is written to a temporary file, not memory, before its upload."""
READ_CONCURRENCY = 16
"""Transcripts read at once for their endpoint figures."""


class Settled(NamedTuple):
    files: list[FileRecord]
    """Each file's final state, in URI order within the chunk (the chunks come in the run index's order)."""
    abandoned: int
    """How many of them were still in flight, and are failed now."""


def settle_run(ledger: Ledger, run_id: str, reason: str, chunk: int = SETTLE_CHUNK) -> Iterator[Settled]:
    """Fail every file of ``run_id`` still in flight (:meth:`Ledger.fail_leftovers`: one never sent
    is claimed again by the next run), then read every file's final state, a chunk of ``chunk``
    files at a time.

    A file transcribed but neither summarised nor given a ``summary_error`` (its summarising task
    never ran) gets one now, so that a later run takes it for its summary.
    """
    no_summary = f"run {run_id} ended before summarising it"
    for held in batched(ledger.run_records(run_id), chunk):
        abandoned = ledger.fail_leftovers(held, run_id, reason)
        records = ledger.get(r.uri for r in held)
        unsummarized = [
            r
            for r in records.values()
            if r.status == Status.COMPLETED and r.summary_error is None and r.run_id == run_id
        ]
        left = set(ledger.leave_without_summary(unsummarized, run_id, no_summary))
        if left:
            records = {**records, **ledger.get(left)}
        files = [record for _, record in sorted(records.items())]
        yield Settled(files, abandoned)


def unrecorded_work(s3: S3Client, files: Sequence[FileRecord], run_id: str) -> Mapping[str, FileWork]:
    """The endpoint's figures of the transcripts ``run_id`` produced that have none recorded (no
    summary), read from each transcript; one that cannot be read is left out, saying why."""

    def read(f: FileRecord) -> tuple[str, FileWork | str]:
        assert f.output_location is not None
        bucket, key = split_s3_uri(f.output_location)
        try:
            return f.uri, read_transcript(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).work
        except (ClientError, BotoCoreError, TranscriptFormatError) as err:
            return f.uri, f"{f.output_location}: {err}"

    todo = [
        f
        for f in files
        if f.status in (Status.COMPLETED, Status.SUMMARIZED)
        and f.output_location
        and not f.work.transcribed
        and transcribed_by(f, run_id)
    ]
    if not todo:
        return {}
    with ThreadPoolExecutor(min(READ_CONCURRENCY, len(todo)), thread_name_prefix="read-transcript") as pool:
        found = dict(pool.map(read, todo))
    unread = [why for why in found.values() if isinstance(why, str)]
    if unread:
        log.warning("the work of %d transcripts is unknown, not read (first: %s)", len(unread), unread[0])
    return {uri: work for uri, work in found.items() if isinstance(work, FileWork)}


def settle_and_report(
    ledger: Ledger,
    s3: S3Client,
    run_id: str,
    bucket_uri: str | None,
    manifest: tuple[str, str],
    reason: str,
    rates: Rates,
) -> RunReport:
    """Settle ``run_id`` (see :func:`settle_run`), log a line per file with its work and estimated
    cost and the run's counts, and upload the run manifest to ``manifest`` (bucket, key). The run's
    work and estimated cost are the report's ``costs`` (:meth:`RunCosts.lines`), for the caller to log last."""
    with tempfile.SpooledTemporaryFile(MANIFEST_SPOOL_BYTES) as out:
        report = RunReport(run_id, bucket_uri, out, rates)
        for settled in settle_run(ledger, run_id, reason):
            read = unrecorded_work(s3, settled.files, run_id)
            for line in report.add(settled.files, settled.abandoned, read):
                log.info("%s", line)
        for line in report.close():
            log.info("%s", line)
        out.seek(0)
        s3.upload_fileobj(out, *manifest, ExtraArgs={"ContentType": "application/json"})
    log.info("Run manifest: s3://%s/%s", *manifest)
    return report
