"""The end of a run: what it left in flight fails, what it transcribed but never summarised is
told why, and every file's final state is read, logged and written to the run manifest."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from itertools import batched
from typing import TYPE_CHECKING, NamedTuple

from audio_pipeline.ledger import FileRecord, Ledger, Status
from audio_pipeline.reporting import RunReport

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

SETTLE_CHUNK = 1000
"""Files settled, read and reported at a time: a run's end holds this many, whatever its size."""
MANIFEST_SPOOL_BYTES = 8 * 1024 * 1024
"""A run manifest larger than this is written to a temporary file, not memory, before its upload."""


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


def settle_and_report(
    ledger: Ledger, s3: S3Client, run_id: str, bucket_uri: str | None, manifest: tuple[str, str], reason: str
) -> RunReport:
    """Settle ``run_id`` (see :func:`settle_run`), log a line per file and the run's counts, and
    upload the run manifest to ``manifest`` (bucket, key)."""
    with tempfile.SpooledTemporaryFile(MANIFEST_SPOOL_BYTES) as out:
        report = RunReport(run_id, bucket_uri, out)
        for settled in settle_run(ledger, run_id, reason):
            for line in report.add(settled.files, settled.abandoned):
                log.info("%s", line)
        for line in report.close():
            log.info("%s", line)
        out.seek(0)
        s3.upload_fileobj(out, *manifest, ExtraArgs={"ContentType": "application/json"})
    log.info("Run manifest: s3://%s/%s", *manifest)
    return report
