"""Every change to the status table, each operation with the conditions it requires in one place.

One item per audio file, keyed by its ``s3://bucket/key`` URI::

    processing --> submitted --> completed --> summarized
        |              |           ^  |
        +--> failed <--+-----------+  +--(summary error recorded, stays completed)
    skipped (never claimable as it is: over 1 GB, empty, a key InvokeEndpointAsync cannot take)

Who may write what:

- A **claim** (:meth:`Ledger.claim`) is the only write that creates a holder: it replaces an item
  only when nobody can still be working on it (absent, a new ETag of a settled file, a lease past
  its deadline, failed before it was sent, or failed with ``reprocess_failed``). A claim is a
  lease: its ``deadline`` ends it.
- A **run's own steps** (marking, adopting, taking for a summary, recording a summary, failing what
  it left) require that the run still holds the file (``run_id``) under the same claim
  (``inference_id``), so a run that lost a file to another never writes it again.
- **Results** (notifications, objects found in S3) are the endpoint's word on one claim: they
  require only that claim's ``inference_id`` (a file adopted by another run still gets its result)
  and the output location recorded when it was sent.
- **Invoking** requires the lease to be live and no other mark present, and renews the lease, so
  two submitters never both send one file and no claim takes a file being sent.

A file is in the waiting index (``awaiting_summary``) exactly while it is ``completed`` and its
summary not given up: the two writes that complete a file set the attribute, and so does taking
it for its summary; the ones that record its summary or give it up remove it, and a claim's put
replaces the whole item. :meth:`Ledger.waiting_for_summary` reads it.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.ledger._conditions import Absent, AtLeast, Below, Condition, In, Is, IsNot, Not, Present
from audio_pipeline.ledger._store import (
    CONCURRENCY,
    PARTITION_KEY,
    WAITING,
    WAITING_VALUE,
    Put,
    Store,
    Update,
    Write,
    WriteResult,
)
from audio_pipeline.ledger.records import IN_FLIGHT, FileRecord, Status
from audio_pipeline.work import FileWork

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient


_WAITING_CHUNK = 1000
"""Waiting files read at a time (ten ``BatchGetItem`` calls)."""


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def inference_id_for(uri: str, etag: str, run_id: str) -> str:
    """The claim's InferenceId: deterministic, so a retried task reuses it (at most 64 chars)."""
    return hashlib.sha256(f"{uri}\n{etag}\n{run_id}".encode()).hexdigest()[:40]


def _failure(reason: str, **extra: Any) -> dict[str, Any]:
    """The failure record: why, and when."""
    return {"status": Status.FAILED.value, "failure_reason": reason, "failed_at": utcnow(), **extra}


def _claim_of(f: ClaimedFile | FileRecord) -> Condition:
    """Still the claim that ``f`` names."""
    iid = f["inference_id"] if isinstance(f, dict) else f.inference_id
    return Is("inference_id", iid)


def _uri(f: ClaimedFile | FileRecord) -> str:
    return f["uri"] if isinstance(f, dict) else f.uri


def _completed(**extra: Any) -> dict[str, Any]:
    """The record of a transcribed file: ``completed``, now, and in the waiting index until summarised."""
    return {"status": Status.COMPLETED.value, "completed_at": utcnow(), WAITING: WAITING_VALUE, **extra}


@dataclass(frozen=True)
class Skipped:
    """A listed object the endpoint cannot take, and why."""

    uri: str
    etag: str
    size: int
    reason: str


@dataclass(frozen=True)
class Accepted:
    """The endpoint accepted the file (sent as ``input_location``) under the mark ``since``."""

    file: ClaimedFile
    since: int
    input_location: str
    output_location: str | None
    failure_location: str | None


@dataclass(frozen=True)
class Unclear:
    """The file may have reached the endpoint (no answer came): awaited, never sent again."""

    file: ClaimedFile
    since: int
    reason: str


@dataclass(frozen=True)
class Refused:
    """The file was clearly not accepted (an error answer, or its content changed): failed; with
    ``resend`` (the error says nothing about the file: throttling, a 5xx, a refused connection)
    failed ``never_sent``, for the next run to claim again."""

    file: ClaimedFile
    since: int
    reason: str
    resend: bool = False


@dataclass(frozen=True)
class NotSent:
    """The submitting task stopped before sending the file: its mark goes, it stays ``processing``."""

    file: ClaimedFile
    since: int


Invocation = Accepted | Unclear | Refused | NotSent


@dataclass(frozen=True)
class Result:
    """The endpoint's outcome for one claim: transcribed (``output_location``) or failed (``failure_reason``).

    ``deadline``, when given, must still be the item's: a failure for silence past the deadline
    loses to a resubmission or a new claim since.
    """

    uri: str
    inference_id: str
    output_location: str | None = None
    failure_reason: str | None = None
    deadline: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.failure_reason is None


@dataclass(frozen=True)
class Summarized:
    record: FileRecord
    location: str
    opening: str
    model_id: str
    work: FileWork = FileWork()
    """The file's figures, recorded with the summary: the transcript's and Converse's."""


@dataclass(frozen=True)
class SummaryFailed:
    record: FileRecord
    reason: str
    rejected: bool = False
    """An error a retry cannot fix: counted in ``summary_rejections`` (once a run, the run named in
    ``summary_rejected_by``)."""
    give_up: bool = False
    """No run takes the file for its summary again unless triggered with ``reprocess_failed``."""


class Ledger:
    """The status table: reads as :class:`FileRecord`, and the operations that change it.

    Every write is conditional; an operation returns the URIs it changed (``applied``) and those
    whose condition no longer held (``rejected``: another run, a newer claim, a settled file).
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
        backoff_base: float = 0.05,
        concurrency: int = CONCURRENCY,
        page_size: int | None = None,
    ) -> None:
        self.store = Store(client, table_name, backoff_base=backoff_base, concurrency=concurrency, page_size=page_size)
        self.clock = clock

    @property
    def table_name(self) -> str:
        return self.store.table_name

    def _now(self) -> int:
        return int(self.clock())

    def _write(self, writes: Iterable[Write]) -> WriteResult:
        now = utcnow()
        stamped: list[Write] = []
        for w in writes:
            if isinstance(w, Update):
                w = Update(w.uri, w.when, {**w.set, "updated_at": now}, w.remove, w.add)
            stamped.append(w)
        return self.store.write(stamped)

    # ----------------------------------------------------------------- reads

    def get(self, uris: Iterable[str]) -> dict[str, FileRecord]:
        """The records of ``uris`` (strongly consistent); absent URIs are omitted."""
        return {uri: FileRecord.from_item(item) for uri, item in self.store.get(uris).items()}

    def run_records(self, run_id: str) -> Iterator[FileRecord]:
        """Every file ``run_id`` holds, from the run index (``uri``, ``status``, ``inference_id``,
        ``run_id`` only; eventually consistent: a write made a moment ago may not show yet)."""
        for item in self.store.query_run(run_id):
            yield FileRecord.from_item(item)

    def waiting_for_summary(self) -> Iterator[FileRecord]:
        """Every file transcribed and not yet summarised, whatever its prefix, oldest transcript
        first: the waiting index (eventually consistent), each record then read strongly consistent
        (one that was summarised meanwhile is no longer ``completed``)."""
        uris = self.store.query_waiting()
        while chunk := list(itertools.islice(uris, _WAITING_CHUNK)):
            records = self.get(chunk)
            yield from (records[uri] for uri in chunk if uri in records)

    def empty(self) -> bool:
        return self.store.empty()

    # ---------------------------------------------------------------- claims

    def claim(
        self, files: Sequence[ClaimedFile], run_id: str, *, lease_seconds: int, reprocess_failed: bool = False
    ) -> WriteResult:
        """Claim ``files`` for ``run_id`` until ``lease_seconds`` from now.

        Requires that nobody can still be working on the file: no item; a new ETag of a file not
        in flight; in flight past its deadline (a lease renewed by every invocation, so never a
        file being sent); failed before it was ever sent; or failed, with ``reprocess_failed``.
        """
        now = self._now()
        in_flight = In("status", [s.value for s in IN_FLIGHT])
        failed_again: Condition = Is("status", Status.FAILED.value)
        if not reprocess_failed:
            failed_again = failed_again & Is("never_sent", True)
        stamp = utcnow()
        writes: list[Write] = []
        for f in files:
            claimable = (
                Absent(PARTITION_KEY)
                | (IsNot("etag", f["etag"]) & Not(in_flight))
                | (in_flight & Below("deadline", now))
                | (failed_again & Is("etag", f["etag"]))
            )
            item = {
                PARTITION_KEY: f["uri"],
                "status": Status.PROCESSING.value,
                "etag": f["etag"],
                "size": f["size"],
                "run_id": run_id,
                "inference_id": f["inference_id"],
                "claimed_at": stamp,
                "updated_at": stamp,
                "deadline": now + lease_seconds,
            }
            writes.append(Put(item, claimable))
        return self.store.write(writes)

    def record_skipped(self, objects: Sequence[Skipped], run_id: str) -> WriteResult:
        """Record listed objects the endpoint cannot take as ``skipped``, with why; requires that no
        record of their content exists and nothing is in flight (a skip is recorded once per ETag)."""
        stamp = utcnow()
        writes: list[Write] = []
        for o in objects:
            item = {
                PARTITION_KEY: o.uri,
                "status": Status.SKIPPED.value,
                "etag": o.etag,
                "size": o.size,
                "run_id": run_id,
                "skip_reason": o.reason,
                "updated_at": stamp,
            }
            new = Absent(PARTITION_KEY) | (IsNot("etag", o.etag) & Not(In("status", [s.value for s in IN_FLIGHT])))
            writes.append(Put(item, new))
        return self.store.write(writes)

    def adopt(self, records: Sequence[FileRecord], run_id: str) -> list[str]:
        """Hand in-flight files of an ended run to ``run_id`` as they are (same claim, status and
        deadline: a submitted file is awaited, never invoked again). Requires each record as read:
        its holder, status, claim and ETag."""
        writes = [
            Update(
                r.uri,
                _claim_of(r)
                & Is("run_id", r.run_id)
                & Is("status", r.status.value)
                & Is("etag", r.etag)
                & In("status", [s.value for s in IN_FLIGHT]),
                {"run_id": run_id},
            )
            for r in records
        ]
        return self._write(writes).applied

    def record_found_result(self, record: FileRecord, reason: str) -> bool:
        """Record a result found in S3 for a claim given up on (failed, or abandoned in flight):
        ``completed``, with ``reason`` as its summary error so any run takes it for its summary.
        Requires the record as read: claim, holder, status and output location."""
        given_up = In("status", [Status.FAILED.value, *(s.value for s in IN_FLIGHT)])
        when = (
            _claim_of(record)
            & Is("run_id", record.run_id)
            & Is("status", record.status.value)
            & given_up
            & Is("output_location", record.output_location)
        )
        return bool(self._write([Update(record.uri, when, _completed(summary_error=reason))]).applied)

    def take_for_summary(self, records: Sequence[FileRecord], run_id: str, lease_seconds: int) -> list[str]:
        """Lease transcribed files to ``run_id`` for their summary until ``lease_seconds`` from now.

        Requires each record as read (claim, ETag, holder, and the ``summary_error`` or ``deadline``
        read), so of runs that read the same record one wins, and a run's retry never takes back a
        file another run took since. Counts the attempt (``summary_attempts``).
        """
        deadline = self._now() + lease_seconds
        writes = []
        for r in records:
            when = _claim_of(r) & Is("status", Status.COMPLETED.value) & Is("run_id", r.run_id) & Is("etag", r.etag)
            when = when & (Is("summary_error", r.summary_error) if r.summary_error else Is("deadline", r.deadline))
            change = {"run_id": run_id, "deadline": deadline, WAITING: WAITING_VALUE}  # back, if given up
            writes.append(Update(r.uri, when, change, ("summary_error", "summary_given_up"), {"summary_attempts": 1}))
        return self._write(writes).applied

    # ------------------------------------------------------------ submission

    def mark_invoking(self, files: Sequence[ClaimedFile], run_id: str, window_seconds: int) -> tuple[int, list[str]]:
        """Mark ``files`` as being invoked now; returns the mark and the URIs marked.

        Requires the claim, still ``processing``, held by ``run_id`` within its lease, and no mark:
        of two submitters only one marks a file, and a claim whose lease ran out is never sent.
        Renews the lease to ``window_seconds`` from now, so no claim takes a file being sent.
        """
        since = self._now()
        when = Is("status", Status.PROCESSING.value) & Is("run_id", run_id) & Absent("invoking_since")
        when = when & AtLeast("deadline", since)
        writes = [
            Update(f["uri"], _claim_of(f) & when, {"invoking_since": since, "deadline": since + window_seconds})
            for f in files
        ]
        return since, self._write(writes).applied

    def record_invocations(self, outcomes: Sequence[Invocation], window_seconds: int) -> WriteResult:
        """Record how each marked file's invocation went; requires the claim, ``processing`` and the
        submitter's own mark (``since``), which goes. Accepted and unclear files are ``submitted``
        with a deadline ``window_seconds`` from now (their result may come that long after the
        request). An unclear file keeps the mark, so that the mark's owner, if still sending, may
        replace that record with the endpoint's answer or its refusal."""
        stamp = utcnow()
        deadline = self._now() + window_seconds
        writes = []
        for o in outcomes:
            mine = _claim_of(o.file) & Is("invoking_since", o.since)
            when = mine & Is("status", Status.PROCESSING.value)
            change: dict[str, Any]
            if isinstance(o, Accepted | Refused):
                # or over what another submitter recorded, unclear, from this mark alone: this says more
                unclear = Is("status", Status.SUBMITTED.value) & Absent("output_location") & Present("submit_error")
                when = mine & (Is("status", Status.PROCESSING.value) | unclear)
            if isinstance(o, Accepted):
                change = {
                    "status": Status.SUBMITTED.value,
                    "input_location": o.input_location,
                    "output_location": o.output_location,
                    "failure_location": o.failure_location,
                    "submitted_at": stamp,
                    "deadline": deadline,
                }
            elif isinstance(o, Unclear):
                change = {
                    "status": Status.SUBMITTED.value,
                    "submit_error": o.reason,
                    "submitted_at": stamp,
                    "deadline": deadline,
                }
                writes.append(Update(o.file["uri"], when, change))  # the mark stays: its owner may say more
                continue
            elif isinstance(o, Refused):
                change = _failure(o.reason, never_sent=True) if o.resend else _failure(o.reason)
            else:
                change = {}
            writes.append(Update(o.file["uri"], when, change, ("invoking_since", "submit_error")))
        return self._write(writes)

    # --------------------------------------------------------------- results

    def record_results(self, results: Sequence[Result], output_path: str | None = None) -> WriteResult:
        """Record the endpoint's outcomes. Requires the result's claim, in flight (or ``failed``, for
        a late success: the transcript exists, keep it), and for a success the output location
        recorded at submission; a success outside ``output_path`` (the endpoint's ``S3OutputPath``)
        is rejected without a write."""
        result = WriteResult()
        writes: list[Write] = []
        for r in results:
            when: Condition = Is("inference_id", r.inference_id)
            if r.deadline is not None:
                when = when & Is("deadline", r.deadline)
            if r.succeeded:
                if r.output_location and output_path and not r.output_location.startswith(output_path):
                    result.rejected.append(r.uri)
                    continue
                when = when & In("status", [Status.PROCESSING.value, Status.SUBMITTED.value, Status.FAILED.value])
                if r.output_location:
                    when = when & (Absent("output_location") | Is("output_location", r.output_location))
                change = _completed(output_location=r.output_location)
            else:
                when = when & In("status", [s.value for s in IN_FLIGHT])
                change = _failure(r.failure_reason or "the endpoint reported a failure without a reason")
            writes.append(Update(r.uri, when, change, ("invoking_since",)))
        result.add(self._write(writes))
        return result

    # ------------------------------------------------------------- summaries

    def record_summaries(self, outcomes: Sequence[Summarized | SummaryFailed], run_id: str) -> WriteResult:
        """Record each summary, or why there is none (the file stays ``completed``, for a later run
        unless given up); requires the claim, ``completed`` and ``run_id`` still holding it."""
        writes = []
        for o in outcomes:
            when = _claim_of(o.record) & Is("status", Status.COMPLETED.value) & Is("run_id", run_id)
            if isinstance(o, Summarized):
                change = {
                    "status": Status.SUMMARIZED.value,
                    "summary_location": o.location,
                    "summary_opening": o.opening,
                    "summary_model_id": o.model_id,
                    "summarized_at": utcnow(),
                    "work": {k: Decimal(str(v)) for k, v in o.work.report().items()},
                }
                writes.append(Update(o.record.uri, when, change, ("summary_error", "summary_rejected_by", WAITING)))
            else:
                failed: dict[str, Any] = {"summary_error": o.reason}
                if o.rejected:
                    failed["summary_rejected_by"] = run_id
                if o.give_up:
                    failed["summary_given_up"] = True
                # a retry of the task may ask again (after a fix, say) without counting again
                counted = {"summary_rejections": 1} if o.rejected and o.record.counts_a_rejection(run_id) else {}
                writes.append(Update(o.record.uri, when, failed, (WAITING,) if o.give_up else (), counted))
        return self._write(writes)

    def leave_without_summary(self, records: Sequence[FileRecord], run_id: str, reason: str) -> list[str]:
        """Record on transcribed files of ``run_id`` why they have no summary, for a later run to
        take them; requires the claim, ``completed`` and ``run_id`` still holding them."""
        return self.record_summaries([SummaryFailed(r, reason) for r in records], run_id).applied

    # -------------------------------------------------------------- the end

    def fail_unsent(self, records: Sequence[FileRecord], run_id: str, reason: str) -> list[str]:
        """Fail ``never_sent`` (for the next run to claim again) those of ``records`` never sent;
        requires the claim, ``processing`` without a mark, ``run_id`` still holding it and, when
        read, the deadline as read (a lease renewed since, by an adoption say, is not over)."""
        unsent = Is("run_id", run_id) & Is("status", Status.PROCESSING.value) & Absent("invoking_since")
        writes = []
        for r in records:
            if r.status != Status.PROCESSING:
                continue
            when = _claim_of(r) & unsent
            if r.deadline is not None:
                when = when & Is("deadline", r.deadline)
            writes.append(Update(r.uri, when, _failure(reason, never_sent=True)))
        return self._write(writes).applied

    def fail_leftovers(self, records: Sequence[FileRecord], run_id: str, reason: str) -> int:
        """Fail the files ``run_id`` leaves in flight at its end; returns how many.

        Requires the claim, in flight and ``run_id`` still holding it (a file another run adopted
        is that run's). A file never sent (``processing`` without a mark, required at the write)
        is failed ``never_sent``, for the next run to claim again; the rest with ``reason``.
        """
        in_flight = [r for r in records if r.in_flight]
        held = Is("run_id", run_id)
        unsent = f"run {run_id} ended before sending it to the endpoint; the next run claims it again"
        failed = set(self.fail_unsent(in_flight, run_id, unsent))
        rest = [
            Update(r.uri, _claim_of(r) & held & In("status", [s.value for s in IN_FLIGHT]), _failure(reason))
            for r in in_flight
            if r.uri not in failed
        ]
        failed.update(self._write(rest).applied)
        return len(failed)
