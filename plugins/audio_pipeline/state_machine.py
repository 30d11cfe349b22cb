"""A file's states in the status table and the moves allowed between them (the table's
access, in :mod:`audio_pipeline.status`, enforces them with conditional writes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PROCESSING = "processing"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    SUMMARIZED = "summarized"
    FAILED = "failed"


IN_FLIGHT = (Status.PROCESSING, Status.SUBMITTED)
SETTLED = (Status.COMPLETED, Status.SUMMARIZED, Status.FAILED)

TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.PROCESSING: (Status.SUBMITTED, Status.COMPLETED, Status.FAILED),
    Status.SUBMITTED: (Status.COMPLETED, Status.FAILED),
    Status.COMPLETED: (Status.SUMMARIZED,),
    Status.SUMMARIZED: (),
    Status.FAILED: (Status.COMPLETED,),
}
"""Allowed moves of one claim. A new claim (``processing``) may replace a settled item.
``failed -> completed`` is a late result for the same inference id: the transcript exists, keep it."""


@dataclass(frozen=True)
class Transition:
    """Move one claimed file (identified by ``uri`` and ``inference_id``) to ``to``."""

    uri: str
    inference_id: str
    to: Status
    attributes: Mapping[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    expect: tuple[Status, ...] = ()
    """Statuses the item may be in; by default every status that :data:`TRANSITIONS` lets move to ``to``."""
    require: Mapping[str, Any] = field(default_factory=dict)
    """Attributes that must still hold these values (as read; ``None``: still absent): the write
    loses to any change since."""

    @classmethod
    def without_summary(
        cls, uri: str, inference_id: str, reason: str, *, require: Mapping[str, Any] | None = None
    ) -> Transition:
        """Record why a ``completed`` file has no summary; it stays ``completed`` for a later run to take."""
        return cls(
            uri,
            inference_id,
            Status.COMPLETED,
            {"summary_error": reason},
            expect=(Status.COMPLETED,),
            require=require or {},
        )

    @property
    def allowed_from(self) -> tuple[Status, ...]:
        return self.expect or tuple(s for s, targets in TRANSITIONS.items() if self.to in targets)
