"""Filter the listing against the status table and claim what is new, page by page."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.listing import AudioObject, ListingReport, iter_audio_objects
from audio_pipeline.s3_uris import S3Location, object_exists
from audio_pipeline.state_machine import IN_FLIGHT, Status, Transition
from audio_pipeline.status import DEFAULT_LEASE_SECONDS, NEVER_SENT, StatusTable, inference_id_for, utcnow

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

RunEnded = Callable[[str], bool]
"""Whether the DAG run with this run id has ended (success or failed)."""

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
    adopted: int = 0
    """In flight for a run that has ended: taken over as they are (same inference id, never sent twice)."""
    listing: ListingReport = field(default_factory=ListingReport)

    def lines(self) -> list[str]:
        out = self.listing.lines()
        out += [f"not claimed: {n} {reason}" for reason, n in sorted(self.not_claimed.items())]
        out.append(f"claimed {len(self.claimed)} files for this run")
        if self.abandoned:
            out.append(f"{self.abandoned} of them were left in flight past their deadline by an earlier run")
        if self.for_summary:
            out.append(f"{self.for_summary} of them were transcribed before and need only their summary")
        if self.adopted:
            out.append(f"{self.adopted} of them were in flight for a run that has ended, and are awaited as they are")
        return out


def _abandoned(item: dict[str, Any], now: float) -> bool:
    """In flight past its deadline: the run holding it ended without settling it."""
    return item.get("status") in IN_FLIGHT and "deadline" in item and item["deadline"] < int(now)


def _needs_summary(item: dict[str, Any] | None, etag: str, now: float) -> TypeGuard[dict[str, Any]]:
    """Transcribed, same content, and no run summarising it: its summary failed (a ``summary_error``
    recorded why), or the run that held it died before summarising (its lease expired)."""
    if not item or item.get("status") != Status.COMPLETED or item.get("etag") != etag:
        return False
    return "summary_error" in item or _lease_expired(item, now)


def _ours_already(item: dict[str, Any] | None, etag: str, run_id: str) -> TypeGuard[dict[str, Any]]:
    """Claimed, adopted or taken for its summary by ``run_id`` (an earlier attempt of its claim
    task), and not settled since: in flight with the same content, or transcribed with no summary yet."""
    if item is None or item.get("run_id") != run_id:
        return False
    if item.get("status") in IN_FLIGHT:
        return item.get("etag") == etag
    return item.get("status") == Status.COMPLETED and "summary_error" not in item


def _as_recorded(obj: AudioObject, item: dict[str, Any]) -> ClaimedFile:
    """The claim of a file as the table records it: its own inference id, so nothing is sent twice."""
    return ClaimedFile(uri=obj.uri, etag=obj.etag, size=obj.size, inference_id=item["inference_id"])


def _lease_expired(item: dict[str, Any], now: float) -> bool:
    return "deadline" in item and item["deadline"] < int(now)


def _result_in_s3(
    s3_client: S3Client, item: dict[str, Any] | None, etag: str, now: float, reprocess_failed: bool
) -> bool:
    """Whether a file about to be claimed again (failed, with ``reprocess_failed``; or left in
    flight past its deadline) has its result in S3 after all: it came late, or its notification
    was lost with nobody left to look. Transcribing it again would do the work twice."""
    if not item or item.get("etag") != etag or not item.get("output_location"):
        return False
    status = item.get("status")
    if not ((status == Status.FAILED and reprocess_failed) or (status == Status.SUBMITTED and _abandoned(item, now))):
        return False
    return object_exists(s3_client, item["output_location"])


def _held_by_ended_run(
    item: dict[str, Any] | None, etag: str, run_id: str, run_ended: RunEnded | None
) -> TypeGuard[dict[str, Any]]:
    """In flight, or transcribed and not yet summarised, for a run that has ended (marked failed by
    hand, say) although its lease runs on: nobody will finish that work but a later run."""
    if run_ended is None or not item or item.get("etag") != etag or item.get("run_id") in (None, run_id):
        return False
    if item.get("status") not in (*IN_FLIGHT, Status.COMPLETED) or "summary_error" in item:
        return False
    return run_ended(item["run_id"])


def _adopt(table: StatusTable, files: Sequence[tuple[ClaimedFile, Mapping[str, Any]]], run_id: str) -> list[str]:
    """Hand in-flight files of an ended run to ``run_id`` as they are: same inference id, status and
    deadline, so a submitted file is awaited (never invoked again) and a file never sent is sent once."""
    moves = [
        Transition(
            f["uri"],
            f["inference_id"],
            Status(item["status"]),
            {"run_id": run_id},
            expect=(Status(item["status"]),),
            require={"run_id": item["run_id"]},
        )
        for f, item in files
    ]
    return table.apply(moves).applied


def _record_late_result(table: StatusTable, item: dict[str, Any]) -> dict[str, Any]:
    """Record the result found in S3: ``completed``, free for any run to take for its summary."""
    reason = f"its result was found in S3 after the file was {item['status']} by run {item['run_id']}; no summary yet"
    late = Transition(
        item["uri"],
        item["inference_id"],
        Status.COMPLETED,
        {"completed_at": utcnow(), "summary_error": reason},
        expect=(Status(item["status"]),),
        require={"run_id": item["run_id"]},
    )
    if not table.apply([late]).applied:
        return item
    log.info("%s: %s; kept, not transcribed again", item["uri"], reason)
    return {**item, "status": Status.COMPLETED, "summary_error": reason}


def take_for_summary(
    table: StatusTable,
    files: Sequence[tuple[ClaimedFile, Mapping[str, Any]]],
    run_id: str,
    lease_seconds: int,
) -> list[str]:
    """Hand transcribed files (each with its item as read) to ``run_id`` for their summary, leased
    for ``lease_seconds``; their ``summary_error`` is cleared until the summary settles again.

    Each write requires the owner and the ``summary_error`` or ``deadline`` that were read, so
    of runs that read the same item one wins, and a run's retry cannot take back a file another
    run took since. Returns the URIs taken.
    """
    deadline = int(table.clock()) + lease_seconds
    moves = []
    for f, item in files:
        require = {"run_id": item["run_id"]}
        if "summary_error" in item:
            require["summary_error"] = item["summary_error"]
        elif "deadline" in item:
            require["deadline"] = item["deadline"]
        moves.append(
            Transition(
                f["uri"],
                f["inference_id"],
                Status.COMPLETED,
                {"run_id": run_id, "deadline": deadline},
                remove=("summary_error",),
                expect=(Status.COMPLETED,),
                require=require,
            )
        )
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
        if reprocess_failed or item.get(NEVER_SENT):
            return None
        return "failed before (trigger with reprocess_failed to retry)"
    return f"already {status}"


def _chunks(objects: Iterable[AudioObject], size: int) -> Iterator[list[AudioObject]]:
    iterator = iter(objects)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def claim_new_files(
    s3_client: S3Client,
    table: StatusTable,
    location: S3Location,
    extensions: frozenset[str],
    run_id: str,
    *,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    reprocess_failed: bool = False,
    summarize: bool = True,
    max_files: int = 0,
    run_ended: RunEnded | None = None,
) -> ClaimReport:
    """Claim every audio file under ``location`` that is new, changed, abandoned, failed before it
    was ever sent, or (optionally) failed.

    With ``summarize``, a file transcribed before but left without a summary (summaries were
    off, Bedrock failed, or the run that held it died before summarising it and its lease
    expired) is taken over as it is, transcript and inference id kept, for its summary alone.
    With ``reprocess_failed``, a failed file whose result is in S3 after all (it came late) is
    recorded ``completed`` and taken for its summary, not transcribed again.
    With ``run_ended`` (run id -> whether that DAG run has ended), the work a run left behind
    when it ended without settling it (marked failed by hand, its scheduler gone) is taken over
    at once, before its lease expires: same inference id, nothing sent or transcribed twice.
    Safe to retry: files this run claimed or took on an earlier attempt are claimed again
    without a write. A file claimed by a concurrent run loses the conditional write here and
    is left to that run.
    """
    report = ClaimReport()
    objects = iter_audio_objects(s3_client, location, extensions, report.listing)
    for chunk in _chunks(objects, LOOKUP_CHUNK):
        current = table.get_many(
            [o.uri for o in chunk],
            ("status", "etag", "run_id", "inference_id", "deadline", "summary_error", "output_location", NEVER_SENT),
        )
        now = table.clock()
        candidates: list[ClaimedFile] = []
        for_summary: list[tuple[ClaimedFile, dict[str, Any]]] = []
        adopt: list[tuple[ClaimedFile, dict[str, Any]]] = []
        for obj in chunk:
            iid = inference_id_for(obj.uri, obj.etag, run_id)
            file = ClaimedFile(uri=obj.uri, etag=obj.etag, size=obj.size, inference_id=iid)
            item = current.get(obj.uri)
            if _ours_already(item, obj.etag, run_id):
                report.claimed.append(_as_recorded(obj, item))  # its own inference id: never sent twice
                continue
            if item is not None and _result_in_s3(s3_client, item, obj.etag, now, reprocess_failed):
                item = _record_late_result(table, item)
            if _held_by_ended_run(item, obj.etag, run_id, run_ended) and item["status"] in IN_FLIGHT:
                adopt.append((_as_recorded(obj, item), item))
                continue
            if summarize and (
                _needs_summary(item, obj.etag, now) or _held_by_ended_run(item, obj.etag, run_id, run_ended)
            ):
                for_summary.append((_as_recorded(obj, item), item))
                continue
            reason = _why_not(item, obj.etag, reprocess_failed, now)
            if reason:
                report.not_claimed[reason] += 1
                continue
            candidates.append(file)
        if max_files:
            candidates = candidates[: max(0, max_files - len(report.claimed))]
            for_summary = for_summary[: max(0, max_files - len(report.claimed) - len(candidates))]
            adopt = adopt[: max(0, max_files - len(report.claimed) - len(candidates) - len(for_summary))]
        written = set(
            table.claim(candidates, run_id, lease_seconds=lease_seconds, reprocess_failed=reprocess_failed).applied
        )
        report.claimed.extend(f for f in candidates if f["uri"] in written)
        report.abandoned += sum(1 for uri in written if current.get(uri) and _abandoned(current[uri], now))
        taken = set(take_for_summary(table, for_summary, run_id, lease_seconds))
        report.claimed.extend(f for f, _ in for_summary if f["uri"] in taken)
        report.for_summary += len(taken)
        adopted = set(_adopt(table, adopt, run_id))
        report.claimed.extend(f for f, _ in adopt if f["uri"] in adopted)
        report.adopted += len(adopted)
        lost = len(candidates) - len(written) + len(for_summary) - len(taken) + len(adopt) - len(adopted)
        if lost:
            report.not_claimed["claimed by a concurrent run"] += lost
        if max_files and len(report.claimed) >= max_files:
            log.info("Stopped at max_files=%d", max_files)
            break
    return report
