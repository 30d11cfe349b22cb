"""A file's record in the status table, as the rest of the package reads it, and its states."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from audio_pipeline.work import FileWork


class Status(StrEnum):
    PROCESSING = "processing"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    SUMMARIZED = "summarized"
    FAILED = "failed"
    SKIPPED = "skipped"


IN_FLIGHT = (Status.PROCESSING, Status.SUBMITTED)
SETTLED = (Status.COMPLETED, Status.SUMMARIZED, Status.FAILED, Status.SKIPPED)


@dataclass(frozen=True)
class FileRecord:
    """One audio file's record: the claim that holds it, where its work stands, and why.

    Read-only: every change is an operation of :class:`~audio_pipeline.ledger.Ledger`.
    """

    uri: str
    status: Status
    etag: str | None = None
    size: int | None = None
    run_id: str | None = None
    """The DAG run holding the file: its claim, its summary work, or the last run that did either."""
    inference_id: str | None = None
    """The claim's ``InferenceId``: every result is recorded against it, never against another claim."""
    deadline: int | None = None
    """Epoch seconds the holder's lease ends: past it, nothing more of this claim can arrive."""
    invoking_since: int | None = None
    """Set while a submitting task invokes the file: it may have reached the endpoint."""
    input_location: str | None = None
    """The pinned copy of this ETag that was sent to the endpoint."""
    output_location: str | None = None
    failure_location: str | None = None
    submit_error: str | None = None
    failure_reason: str | None = None
    never_sent: bool = False
    """Failed before it reached the endpoint: any later run claims it again."""
    summary_error: str | None = None
    summary_location: str | None = None
    summary_opening: str | None = None
    summary_model_id: str | None = None
    summary_attempts: int = 0
    """How often a run took the file for its summary: past the first, its summary may exist already."""
    summary_rejections: int = 0
    """How often its summary failed with an error a retry cannot fix (a request Bedrock rejects), at
    most once a run."""
    summary_rejected_by: str | None = None
    """The run whose summary of it was last rejected so (a retry of its task is not counted again)."""
    summary_given_up: bool = False
    """Its summary was rejected too often: no run takes it for its summary unless triggered with
    ``reprocess_failed``."""
    skip_reason: str | None = None
    work: FileWork = FileWork()
    """The file's work figures, recorded with its summary (one map attribute); none before it."""

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> FileRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in item.items() if k in known}
        values["status"] = Status(values["status"])
        for number in ("size", "deadline", "invoking_since", "summary_attempts", "summary_rejections"):
            if values.get(number) is not None:
                values[number] = int(values[number])
        if values.get("work") is not None:
            values["work"] = FileWork.of(values["work"])
        return cls(**values)

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT

    def lease_expired(self, now: float) -> bool:
        return self.deadline is not None and self.deadline < int(now)

    def abandoned(self, now: float) -> bool:
        """In flight past its deadline: the run holding it ended without settling it."""
        return self.in_flight and self.lease_expired(now)

    def counts_a_rejection(self, run_id: str) -> bool:
        """Whether a summary rejection by ``run_id`` counts: once a run (a retry of its task does not)."""
        return self.summary_rejected_by != run_id

    def needs_summary(self, etag: str, now: float, reprocess_failed: bool = False) -> bool:
        """Transcribed, same content, and nobody summarising it: its summary failed (``summary_error``
        says why; once given up, only with ``reprocess_failed``) or the run that held it died before
        summarising it (its lease expired)."""
        if self.status != Status.COMPLETED or self.etag != etag:
            return False
        if self.summary_given_up:
            return reprocess_failed
        return self.summary_error is not None or self.lease_expired(now)

    def held_by(self, run_id: str, etag: str) -> bool:
        """Claimed, adopted or taken for its summary by ``run_id`` and not settled since: in flight
        with the same content, or transcribed with no summary yet."""
        if self.run_id != run_id:
            return False
        if self.in_flight:
            return self.etag == etag
        return self.status == Status.COMPLETED and self.summary_error is None

    def left_by_ended_run(self, etag: str, run_id: str) -> bool:
        """Work a run other than ``run_id`` holds on this content, in flight or transcribed and not
        yet summarised: if that run has ended, nobody but a later run will finish it."""
        if self.etag != etag or self.run_id in (None, run_id) or self.summary_error is not None:
            return False
        return self.in_flight or self.status == Status.COMPLETED

    def why_not_claimable(self, etag: str, reprocess_failed: bool, now: float) -> str | None:
        """Why the listed object (``etag``) cannot be claimed over this record, or None when it can."""
        if self.abandoned(now):
            return None
        if self.in_flight:
            return "in flight in another run"
        if self.etag != etag:
            return None
        if self.status == Status.FAILED:
            if reprocess_failed or self.never_sent:
                return None
            return "failed before (trigger with reprocess_failed to retry)"
        if self.summary_given_up:
            return "summary given up (trigger with reprocess_failed to retry)"
        return f"already {self.status}"

    def report(self) -> dict[str, Any]:
        """The file's entry in a run manifest: its URI, status and whichever of the locations, the
        summary's opening and the reasons it has."""
        entry: dict[str, Any] = {"uri": self.uri, "status": self.status.value}
        for name in _REPORTED:
            value = getattr(self, name)
            if value is not None:
                entry[name] = value
        return entry


_REPORTED = (
    "output_location",
    "summary_location",
    "summary_opening",
    "failure_reason",
    "summary_error",
    "skip_reason",
)
