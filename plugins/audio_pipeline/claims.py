"""Filter the listing against the status table and claim what is new, page by page."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.config import UnusableInputError
from audio_pipeline.ledger import FileRecord, Ledger, Skipped, Status, inference_id_for
from audio_pipeline.listing import AudioObject, ListingReport, iter_audio_objects
from audio_pipeline.pinning import pin_overhead
from audio_pipeline.s3_uris import S3Location, object_exists

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

T = TypeVar("T")
RunEnded = Callable[[str], bool]
"""Whether the DAG run with this run id has ended (success or failed)."""

LOOKUP_CHUNK = 1000
"""Listed objects looked up (10 BatchGetItem calls) and claimed (10 transactions) at a time."""


class NothingToListError(UnusableInputError):
    """The bucket URI holds no audio file at all: a mistyped prefix, a glob, a relative path."""


@dataclass
class ClaimReport:
    claimed: int = 0
    not_claimed: Counter[str] = field(default_factory=Counter)
    abandoned: int = 0
    """Claimed although in flight: the run that held them ended without settling them."""
    for_summary: int = 0
    """Transcribed before but never summarised (summaries off, or failed): taken for their summary alone."""
    adopted: int = 0
    """In flight for a run that has ended: taken over as they are (same inference id, never sent twice)."""
    skipped: int = 0
    """Audio files the endpoint cannot take, recorded ``skipped`` with their reason by this run."""
    waiting: list[str] = field(default_factory=list)
    """Of ``for_summary``, the files found in the waiting index, not in this run's listing: transcribed
    by an earlier run under any prefix, waiting for their summary."""
    listing: ListingReport = field(default_factory=ListingReport)

    def lines(self) -> list[str]:
        out = self.listing.lines()
        out += [f"not claimed: {n} {reason}" for reason, n in sorted(self.not_claimed.items())]
        out.append(f"claimed {self.claimed} files for this run")
        if self.abandoned:
            out.append(f"{self.abandoned} of them were left in flight past their deadline by an earlier run")
        if self.for_summary:
            out.append(f"{self.for_summary} of them were transcribed before and need only their summary")
        if self.waiting:
            examples = ", ".join(self.waiting[:3]) + (", ..." if len(self.waiting) > 3 else "")
            out.append(
                f"{len(self.waiting)} of those were waiting for their summary outside this bucket URI (transcribed by "
                f"an earlier run, whatever prefix it listed), and are taken for it: {examples}"
            )
        if self.adopted:
            out.append(f"{self.adopted} of them were in flight for a run that has ended, and are awaited as they are")
        if self.skipped:
            out.append(f"{self.skipped} audio files the endpoint cannot take are recorded skipped, with why")
        return out


def _as_recorded(obj: AudioObject, record: FileRecord) -> ClaimedFile:
    """The claim of a file as the table records it: its own inference id, so nothing is sent twice."""
    assert record.inference_id is not None
    return ClaimedFile(uri=obj.uri, etag=obj.etag, size=obj.size, inference_id=record.inference_id)


def _result_in_s3(s3_client: S3Client, record: FileRecord, etag: str, now: float, reprocess_failed: bool) -> bool:
    """Whether a file about to be claimed again (failed, with ``reprocess_failed``; or left in
    flight past its deadline) has its result in S3 after all: it came late, or its notification
    was lost with nobody left to look. Transcribing it again would do the work twice."""
    if record.etag != etag or not record.output_location:
        return False
    given_up = (record.status == Status.FAILED and reprocess_failed) or (
        record.status == Status.SUBMITTED and record.abandoned(now)
    )
    return given_up and object_exists(s3_client, record.output_location)


def _wants_summary(
    record: FileRecord, etag: str, run_id: str, now: float, run_ended: RunEnded | None, reprocess_failed: bool = False
) -> bool:
    """Transcribed (of ``etag``) and nobody summarising it: its summary failed (given up: only with
    ``reprocess_failed``) or was never tried, the run that held it let its lease expire, or
    (``run_ended``) that run has ended."""
    if record.needs_summary(etag, now, reprocess_failed):
        return True
    left = record.left_by_ended_run(etag, run_id) and run_ended is not None and run_ended(record.run_id or "")
    return left and record.status == Status.COMPLETED


def _record_late_result(ledger: Ledger, record: FileRecord) -> FileRecord:
    """Record the result found in S3: ``completed``, free for any run to take for its summary."""
    reason = f"its result was found in S3 after the file was {record.status} by run {record.run_id}; no summary yet"
    if not ledger.record_found_result(record, reason):
        return record
    log.info("%s: %s; kept, not transcribed again", record.uri, reason)
    return ledger.get([record.uri]).get(record.uri, record)


def _chunks(objects: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(objects)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def nothing_listed(location: S3Location, listing: ListingReport, extensions: frozenset[str]) -> str:
    """Why a bucket URI gave no audio file, in words that say what to change."""
    what = f"{location.uri}: listed {listing.objects} objects, no audio file ({', '.join(sorted(extensions))})"
    hints = []
    if any(c in location.prefix for c in "*?["):
        hints.append("S3 prefixes are literal: '*', '?' and '[' match only keys that contain them")
    if any(part in ("..", ".") for part in location.prefix.split("/")):
        hints.append("'..' and '.' are characters of the key in S3, not folders")
    if listing.objects:
        hints += [
            f"skipped {n} ({reason}), e.g. {', '.join(listing.examples[reason])}"
            for reason, n in sorted(listing.skipped.items())
        ]
    else:
        hints.append("no key starts with this prefix (a trailing '/' was added to make it a folder)")
    return f"{what}: {'; '.join(hints)}"


class ResetTableError(UnusableInputError):
    """The status table is empty although earlier runs claimed files: it was deleted and recreated."""


def refuse_reset_table(ledger: Ledger, s3_client: S3Client, output_bucket: str, runs_prefix: str) -> None:
    """Raise :class:`ResetTableError` when the status table holds nothing while an earlier run's batch
    manifests exist (written only by a run that claimed files): every object in the bucket would
    look new and be transcribed again."""
    if not ledger.empty():
        return
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=output_bucket, Prefix=runs_prefix)
    earlier = next((o["Key"] for page in pages for o in page.get("Contents", []) if "/batches/" in o["Key"]), None)
    if earlier:
        raise ResetTableError(
            f"the status table {ledger.table_name!r} is empty, but earlier runs claimed files (their batch "
            f"manifests are under s3://{output_bucket}/{runs_prefix}, e.g. {earlier}): the table was deleted and "
            "recreated, and every audio file would be transcribed again. Restore the table (point-in-time "
            "recovery), or trigger with accept_empty_status_table=true to transcribe everything again"
        )


def claim_new_files(
    s3_client: S3Client,
    ledger: Ledger,
    location: S3Location,
    extensions: frozenset[str],
    run_id: str,
    claimed: Callable[[ClaimedFile], None],
    *,
    inputs_path: str,
    lease_seconds: int,
    reprocess_failed: bool = False,
    summarize: bool = True,
    max_files: int = 0,
    run_ended: RunEnded | None = None,
) -> ClaimReport:
    """Claim every audio file under ``location`` that is new, changed, abandoned, failed before it
    was ever sent, or (optionally) failed, handing each to ``claimed`` as it is claimed (``inputs_path``:
    where the submitter will copy what it sends, whose longer names some keys cannot take).

    With ``summarize``, a file transcribed before but left without a summary (summaries were
    off, Bedrock failed, or the run that held it died before summarising it and its lease
    expired) is taken over as it is, transcript and inference id kept, for its summary alone; so
    is every such file under any other prefix (the ledger's waiting index), once the listing is
    done and within ``max_files``, and the report names them.
    With ``reprocess_failed``, a failed file whose result is in S3 after all (it came late) is
    recorded ``completed`` and taken for its summary, not transcribed again.
    With ``run_ended`` (run id -> whether that DAG run has ended), the work a run left behind
    when it ended without settling it (marked failed by hand, its scheduler gone) is taken over
    at once, before its lease expires: same inference id, nothing sent or transcribed twice.
    Audio the endpoint cannot take (empty, over 1 GB, a key it cannot be sent under) is recorded
    ``skipped`` with the reason, once per ETag. Safe to retry: files this run claimed or took on an
    earlier attempt are claimed again without a write. A file claimed by a concurrent run loses
    the conditional write here and is left to that run.

    Raises :class:`NothingToListError` when ``location`` holds no audio file at all.
    """
    report = ClaimReport()
    objects = iter_audio_objects(s3_client, location, extensions, report.listing, pin_overhead(inputs_path))

    def room() -> int:
        return max(0, max_files - report.claimed) if max_files else LOOKUP_CHUNK

    taken_uris: set[str] = set()

    def take(files: list[ClaimedFile]) -> None:
        for f in files:
            claimed(f)
            taken_uris.add(f["uri"])
        report.claimed += len(files)

    for chunk in _chunks(objects, LOOKUP_CHUNK):
        current = ledger.get(o.uri for o in chunk)
        now = ledger.clock()
        candidates: list[ClaimedFile] = []
        skipped: list[Skipped] = []
        for_summary: list[tuple[ClaimedFile, FileRecord]] = []
        adopt: list[tuple[ClaimedFile, FileRecord]] = []
        for obj in chunk:
            record = current.get(obj.uri)
            if obj.skip_reason:
                if record is not None and record.etag == obj.etag:
                    report.not_claimed[f"already {record.status}"] += 1
                else:
                    skipped.append(Skipped(obj.uri, obj.etag, obj.size, obj.skip_reason))
                continue
            if record is None:
                iid = inference_id_for(obj.uri, obj.etag, run_id)
                candidates.append(ClaimedFile(uri=obj.uri, etag=obj.etag, size=obj.size, inference_id=iid))
                continue
            if record.held_by(run_id, obj.etag):
                take([_as_recorded(obj, record)])  # its own inference id: never sent twice
                continue
            if _result_in_s3(s3_client, record, obj.etag, now, reprocess_failed):
                record = _record_late_result(ledger, record)
            left = (
                record.left_by_ended_run(obj.etag, run_id) and run_ended is not None and run_ended(record.run_id or "")
            )
            if left and record.in_flight:
                adopt.append((_as_recorded(obj, record), record))
                continue
            if summarize and _wants_summary(record, obj.etag, run_id, now, run_ended, reprocess_failed):
                for_summary.append((_as_recorded(obj, record), record))
                continue
            reason = record.why_not_claimable(obj.etag, reprocess_failed, now)
            if reason:
                report.not_claimed[reason] += 1
                continue
            iid = inference_id_for(obj.uri, obj.etag, run_id)
            candidates.append(ClaimedFile(uri=obj.uri, etag=obj.etag, size=obj.size, inference_id=iid))
        report.skipped += len(ledger.record_skipped(skipped, run_id).applied)
        candidates = candidates[: room()]
        written = set(
            ledger.claim(candidates, run_id, lease_seconds=lease_seconds, reprocess_failed=reprocess_failed).applied
        )
        take([f for f in candidates if f["uri"] in written])
        report.abandoned += sum(1 for uri in written if uri in current and current[uri].abandoned(now))
        for_summary = for_summary[: room()]
        taken = set(ledger.take_for_summary([r for _, r in for_summary], run_id, lease_seconds))
        take([f for f, _ in for_summary if f["uri"] in taken])
        report.for_summary += len(taken)
        adopt = adopt[: room()]
        adopted = set(ledger.adopt([r for _, r in adopt], run_id))
        take([f for f, _ in adopt if f["uri"] in adopted])
        report.adopted += len(adopted)
        lost = len(candidates) - len(written) + len(for_summary) - len(taken) + len(adopt) - len(adopted)
        if lost:
            report.not_claimed["claimed by a concurrent run"] += lost
        if max_files and report.claimed >= max_files:
            log.info("Stopped at max_files=%d", max_files)
            break
    if not report.listing.audio:
        raise NothingToListError(nothing_listed(location, report.listing, extensions))
    if summarize and not (max_files and report.claimed >= max_files):
        _take_waiting(ledger, run_id, lease_seconds, run_ended, taken_uris, take, room, report)
    return report


def _take_waiting(
    ledger: Ledger,
    run_id: str,
    lease_seconds: int,
    run_ended: RunEnded | None,
    taken_uris: set[str],
    take: Callable[[list[ClaimedFile]], None],
    room: Callable[[], int],
    report: ClaimReport,
) -> None:
    """Take for their summary the files of the waiting index that nobody is summarising, whatever
    prefix they are under (oldest transcript first, within ``room``): those this run holds already
    (a retry) without a write. A file listed and taken above is not taken twice."""
    for chunk in _chunks(ledger.waiting_for_summary(), LOOKUP_CHUNK):
        now = ledger.clock()
        held: list[FileRecord] = []
        wanted: list[FileRecord] = []
        for r in chunk:
            if r.uri in taken_uris or r.etag is None:
                continue
            if r.held_by(run_id, r.etag):
                held.append(r)
            elif _wants_summary(r, r.etag, run_id, now, run_ended):
                wanted.append(r)
        take([_as_waiting(r) for r in held])
        wanted = wanted[: room()]
        taken = set(ledger.take_for_summary(wanted, run_id, lease_seconds))
        take([_as_waiting(r) for r in wanted if r.uri in taken])
        report.for_summary += len(taken)
        report.waiting += [r.uri for r in wanted if r.uri in taken]
        if len(wanted) > len(taken):
            report.not_claimed["taken for its summary by a concurrent run"] += len(wanted) - len(taken)
        if not room():
            break


def _as_waiting(record: FileRecord) -> ClaimedFile:
    """The claim of a waiting file as the table records it (its content as it was transcribed)."""
    assert record.etag is not None and record.inference_id is not None
    return ClaimedFile(uri=record.uri, etag=record.etag, size=record.size or 0, inference_id=record.inference_id)
