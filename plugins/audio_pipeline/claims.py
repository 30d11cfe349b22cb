"""Filter the listing against the status table and claim what is new, page by page."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.listing import AudioObject, ListingReport, iter_audio_objects
from audio_pipeline.s3_uris import S3Location
from audio_pipeline.status import (
    DEFAULT_LEASE_SECONDS,
    IN_FLIGHT,
    Status,
    StatusTable,
    Transition,
    inference_id_for,
)

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 1000
"""Listed objects looked up (10 BatchGetItem calls) and claimed (10 transactions) at a time."""


@dataclass
class ClaimReport:
    claimed: list[ClaimedFile] = field(default_factory=list)
    not_claimed: Counter[str] = field(default_factory=Counter)
    abandoned: int = 0
    """Claimed although in flight: the run that held them ended without settling them."""
    for_summary: int = 0
    """Transcribed before but never summarised (summaries off, or failed): taken for their summary alone."""
    listing: ListingReport = field(default_factory=ListingReport)

    def lines(self) -> list[str]:
        out = self.listing.lines()
        out += [f"not claimed: {n} {reason}" for reason, n in sorted(self.not_claimed.items())]
        out.append(f"claimed {len(self.claimed)} files for this run")
        if self.abandoned:
            out.append(f"{self.abandoned} of them were left in flight past their deadline by an earlier run")
        if self.for_summary:
            out.append(f"{self.for_summary} of them were transcribed before and need only their summary")
        return out


def _abandoned(item: dict[str, Any], now: float) -> bool:
    """In flight past its deadline: the run holding it ended without settling it."""
    return item.get("status") in IN_FLIGHT and "deadline" in item and item["deadline"] < int(now)


def _needs_summary(item: dict[str, Any] | None, etag: str) -> bool:
    """Transcribed, same content, and a recorded reason why it has no summary (so no run is summarising it)."""
    return (
        bool(item) and item.get("status") == Status.COMPLETED and item.get("etag") == etag and "summary_error" in item
    )


def _take_for_summary(table: StatusTable, files: list[tuple[ClaimedFile, dict[str, Any]]], run_id: str) -> list[str]:
    """Hand transcribed files over to ``run_id``, their ``summary_error`` cleared until its summary
    settles again; each write requires the run and error that were read, so one run wins a file."""
    moves = [
        Transition(
            f["uri"],
            f["inference_id"],
            Status.COMPLETED,
            {"run_id": run_id},
            remove=("summary_error",),
            expect=(Status.COMPLETED,),
            require={"run_id": item["run_id"], "summary_error": item["summary_error"]},
        )
        for f, item in files
    ]
    return table.apply(moves).applied


def _why_not(item: dict[str, Any] | None, etag: str, reprocess_failed: bool, now: float) -> str | None:
    """Why a listed file is not claimable, or None when it is."""
    if item is None or _abandoned(item, now):
        return None
    status = item.get("status")
    if status in IN_FLIGHT:
        return "in flight in another run"
    if item.get("etag") != etag:
        return None
    if status == Status.FAILED:
        return None if reprocess_failed else "failed before (trigger with reprocess_failed to retry)"
    return f"already {status}"


def _chunks(objects: Iterable[AudioObject], size: int) -> Iterator[list[AudioObject]]:
    iterator = iter(objects)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def claim_new_files(
    s3_client: Any,
    table: StatusTable,
    location: S3Location,
    extensions: frozenset[str],
    run_id: str,
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    reprocess_failed: bool = False,
    summarize: bool = True,
    max_files: int = 0,
) -> ClaimReport:
    """Claim every audio file under ``location`` that is new, changed, abandoned or (optionally) failed.

    With ``summarize``, a file transcribed before but left without a summary (summaries were
    off, or Bedrock failed) is taken over as it is, transcript and inference id kept, for its
    summary alone. Safe to retry: files this run claimed on an earlier attempt are claimed
    again without a write. A file claimed by a concurrent run loses the conditional write
    here and is left to that run.
    """
    report = ClaimReport()
    objects = iter_audio_objects(s3_client, location, extensions, report.listing)
    for chunk in _chunks(objects, LOOKUP_CHUNK):
        current = table.get_many(
            [o.uri for o in chunk], ("status", "etag", "run_id", "inference_id", "deadline", "summary_error")
        )
        now = table.clock()
        candidates: list[ClaimedFile] = []
        for_summary: list[tuple[ClaimedFile, dict[str, Any]]] = []
        for obj in chunk:
            iid = inference_id_for(obj.uri, obj.etag, run_id)
            file = ClaimedFile(uri=obj.uri, etag=obj.etag, size=obj.size, inference_id=iid)
            item = current.get(obj.uri)
            if item and item.get("inference_id") == iid and item.get("status") == Status.PROCESSING:
                report.claimed.append(file)  # claimed by an earlier attempt of this task
                continue
            if summarize and _needs_summary(item, obj.etag):
                for_summary.append(
                    (ClaimedFile(uri=obj.uri, etag=obj.etag, size=obj.size, inference_id=item["inference_id"]), item)
                )
                continue
            reason = _why_not(item, obj.etag, reprocess_failed, now)
            if reason:
                report.not_claimed[reason] += 1
                continue
            candidates.append(file)
        if max_files:
            candidates = candidates[: max(0, max_files - len(report.claimed))]
            for_summary = for_summary[: max(0, max_files - len(report.claimed) - len(candidates))]
        written = set(
            table.claim(candidates, run_id, lease_seconds=lease_seconds, reprocess_failed=reprocess_failed).applied
        )
        report.claimed.extend(f for f in candidates if f["uri"] in written)
        report.abandoned += sum(1 for uri in written if current.get(uri) and _abandoned(current[uri], now))
        taken = set(_take_for_summary(table, for_summary, run_id))
        report.claimed.extend(f for f, _ in for_summary if f["uri"] in taken)
        report.for_summary += len(taken)
        lost = len(candidates) - len(written) + len(for_summary) - len(taken)
        if lost:
            report.not_claimed["claimed by a concurrent run"] += lost
        if max_files and len(report.claimed) >= max_files:
            log.info("Stopped at max_files=%d", max_files)
            break
    return report
