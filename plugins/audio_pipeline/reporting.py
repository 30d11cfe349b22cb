"""A run's report: one line per file for the task log, and the run manifest's JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from audio_pipeline.state_machine import Status, describe_counts
from audio_pipeline.status import utcnow

REPORTED_ATTRIBUTES = (
    "status",
    "output_location",
    "summary_location",
    "summary_opening",
    "failure_reason",
    "summary_error",
)


def file_line(f: dict[str, Any]) -> str:
    """One file of the run on one line: status, where its transcript and summary are, the
    summary's first sentence, or why it has none."""
    parts = [f"{f['status']:<10} {f['uri']}"]
    if f["status"] in (Status.COMPLETED, Status.SUMMARIZED) and f.get("output_location"):
        parts.append(f"transcript {f['output_location']}")  # a failed file's output location holds nothing
    if f.get("summary_location"):
        parts.append(f"summary {f['summary_location']}")
    if f.get("failure_reason"):
        parts.append(f"reason: {f['failure_reason']}")
    elif f.get("summary_error"):
        parts.append(f"summary error: {f['summary_error']}")
    if f.get("summary_opening"):
        parts.append(f'"{f["summary_opening"]}"')
    return "  ".join(parts)


@dataclass
class RunReport:
    run_id: str
    bucket_uri: str | None
    files: list[dict[str, Any]] = field(default_factory=list)
    abandoned: int = 0

    @property
    def counts(self) -> Counter[str]:
        return Counter(f["status"] for f in self.files)

    def lines(self) -> list[str]:
        counts = describe_counts(self.counts) or "no files"
        out = [f"run {self.run_id} over {self.bucket_uri or '(no bucket URI)'}: {counts}"]
        if self.abandoned:
            out.append(f"{self.abandoned} files were still in flight when the run ended and are now failed")
        out.extend(file_line(f) for f in self.files)
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "bucket_uri": self.bucket_uri,
                "counts": dict(self.counts),
                "abandoned": self.abandoned,
                "written_at": utcnow(),
                "files": self.files,
            },
            indent=1,
        )
