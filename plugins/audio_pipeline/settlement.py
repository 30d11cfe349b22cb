"""The end of a run: what it left in flight fails, what it transcribed but never summarised is
told why, and every file's final state is read, logged and written to the run manifest."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from itertools import batched
from typing import TYPE_CHECKING, Any, NamedTuple

from audio_pipeline.reporting import RunReport
from audio_pipeline.state_machine import IN_FLIGHT, Status, Transition
from audio_pipeline.status import NEVER_SENT, StatusTable, utcnow

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

REPORTED_ATTRIBUTES = (
    "status",
    "output_location",
    "summary_location",
    "summary_opening",
    "failure_reason",
    "summary_error",
)
SETTLE_CHUNK = 1000
"""Files settled, read and reported at a time: a run's end holds this many, whatever its size."""
MANIFEST_SPOOL_BYTES = 8 * 1024 * 1024
"""A run manifest larger than this is written to a temporary file, not memory, before its upload."""


class Settled(NamedTuple):
    files: list[dict[str, Any]]
    """Each file's final state (``uri`` and its :data:`REPORTED_ATTRIBUTES`), in URI order
    within the chunk (the chunks come in the run index's order)."""
    abandoned: int
    """How many of them were still in flight, and are failed now."""


def settle_run(table: StatusTable, run_id: str, reason: str, chunk: int = SETTLE_CHUNK) -> Iterator[Settled]:
    """Fail every file of ``run_id`` still in flight, then read every file's final state, a
    chunk of ``chunk`` files at a time.

    A file the run never sent to the endpoint is failed :data:`NEVER_SENT`: the next run claims
    it again without ``reprocess_failed``, as nothing of it can have been transcribed.

    A file transcribed but neither summarised nor given a ``summary_error`` (its summarising
    task never ran) gets one now, so that a later run takes it for its summary.
    """
    no_summary = f"run {run_id} ended before summarising it"
    for claimed in batched(table.run_items(run_id), chunk):
        abandoned = _fail_leftovers(table, [i for i in claimed if i.get("status") in IN_FLIGHT], run_id, reason)
        items = table.get_many([i["uri"] for i in claimed], (*REPORTED_ATTRIBUTES, "inference_id", "run_id"))
        unsummarized = [
            # required: still this run's, not a file a later run has taken since
            Transition.without_summary(uri, item["inference_id"], no_summary, require={"run_id": run_id})
            for uri, item in items.items()
            if item.get("status") == Status.COMPLETED and "summary_error" not in item and item.get("run_id") == run_id
        ]
        for uri in table.apply(unsummarized).applied:
            items[uri]["summary_error"] = no_summary
        files = [
            {"uri": uri, **{k: item.get(k) for k in REPORTED_ATTRIBUTES if item.get(k) is not None}}
            for uri, item in sorted(items.items())
        ]
        yield Settled(files, abandoned)


def _fail_leftovers(table: StatusTable, in_flight: list[dict[str, Any]], run_id: str, reason: str) -> int:
    """Fail the files a run left in flight; returns how many. A file never sent (``processing``
    with no ``invoking_since`` mark) is failed :data:`NEVER_SENT`, for the next run to claim again."""
    if not in_flight:
        return 0
    processing = [i["uri"] for i in in_flight if i["status"] == Status.PROCESSING]
    marks = table.get_many(processing, ("status", "invoking_since"))
    unsent = {
        uri for uri, item in marks.items() if item.get("status") == Status.PROCESSING and "invoking_since" not in item
    }
    never_sent = {
        "failure_reason": f"run {run_id} ended before sending it to the endpoint; the next run claims it again",
        NEVER_SENT: True,
        "failed_at": utcnow(),
    }
    unmarked = {"invoking_since": None}  # as read: no submitting task has marked it since
    failed = set(
        table.apply(
            Transition(
                i["uri"], i["inference_id"], Status.FAILED, never_sent, expect=(Status.PROCESSING,), require=unmarked
            )
            for i in in_flight
            if i["uri"] in unsent
        ).applied
    )
    ended = {"failure_reason": reason, "failed_at": utcnow()}
    failed.update(
        table.apply(
            Transition(i["uri"], i["inference_id"], Status.FAILED, ended) for i in in_flight if i["uri"] not in failed
        ).applied
    )
    return len(failed)


def settle_and_report(
    table: StatusTable, s3: S3Client, run_id: str, bucket_uri: str | None, manifest: tuple[str, str], reason: str
) -> RunReport:
    """Settle ``run_id`` (see :func:`settle_run`), log a line per file and the run's counts, and
    upload the run manifest to ``manifest`` (bucket, key)."""
    with tempfile.SpooledTemporaryFile(MANIFEST_SPOOL_BYTES) as out:
        report = RunReport(run_id, bucket_uri, out)
        for settled in settle_run(table, run_id, reason):
            for line in report.add(settled.files, settled.abandoned):
                log.info("%s", line)
        for line in report.close():
            log.info("%s", line)
        out.seek(0)
        s3.upload_fileobj(out, *manifest, ExtraArgs={"ContentType": "application/json"})
    log.info("Run manifest: s3://%s/%s", *manifest)
    return report
