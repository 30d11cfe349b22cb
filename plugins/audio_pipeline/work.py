"""The work one file took: its audio's length, the endpoint's time on it, and Bedrock's tokens for its
summary, each named with where it comes from. Nothing here imports Airflow or boto3."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SOURCES = {
    "audio_seconds": "the model server's output (the transcript JSON's duration_seconds: the decoded audio's length)",
    "processing_seconds": "the model server's output (processing_seconds: the request's wall-clock time in the model)",
    "concurrent_requests": "the model server's output (concurrent_requests: how many requests share its instance)",
    "input_tokens": "Bedrock Converse's usage.inputTokens, summed over the summary's requests",
    "output_tokens": "Bedrock Converse's usage.outputTokens, summed over the summary's requests",
}
"""Where each figure of :class:`FileWork` comes from, for the run manifest and the report."""
_SECONDS = ("audio_seconds", "processing_seconds")


@dataclass(frozen=True)
class FileWork:
    """One file's figures; None where nothing reported one (an older transcript format, no summary)."""

    audio_seconds: float | None = None
    processing_seconds: float | None = None
    concurrent_requests: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> FileWork:
        """The figures among ``values`` (a record's attributes, a manifest entry), as numbers."""
        known: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = values.get(f.name)
            if value is not None:
                known[f.name] = float(value) if f.name in _SECONDS else int(value)
        return cls(**known)

    @property
    def transcribed(self) -> bool:
        """Whether the endpoint's figures are known."""
        return self.audio_seconds is not None

    def combined(self, other: FileWork) -> FileWork:
        """These figures, with ``other``'s where these have none."""
        mine, theirs = self.report(), other.report()
        return FileWork(**{**theirs, **mine})

    def report(self) -> dict[str, Any]:
        """The known figures by name."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
