"""The end of a run: settle what is still in flight, count, and write the run manifest."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from audio_pipeline.state_machine import IN_FLIGHT, Status, Transition, describe_counts
from audio_pipeline.status import StatusTable, utcnow

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


def settle_run(table: StatusTable, run_id: str, bucket_uri: str | None, reason: str) -> RunReport:
    """Fail every file of ``run_id`` still in flight, then read every file's final state.

    A file transcribed but neither summarised nor given a ``summary_error`` (its summarising
    task never ran) gets one now, so that a later run takes it for its summary.
    """
    claimed = list(table.run_items(run_id))
    leftovers = [
        Transition(i["uri"], i["inference_id"], Status.FAILED, {"failure_reason": reason, "failed_at": utcnow()})
        for i in claimed
        if i.get("status") in IN_FLIGHT
    ]
    abandoned = len(table.apply(leftovers).applied) if leftovers else 0
    items = table.get_many([i["uri"] for i in claimed], (*REPORTED_ATTRIBUTES, "inference_id", "run_id"))
    no_summary = f"run {run_id} ended before summarising it"
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
    return RunReport(run_id=run_id, bucket_uri=bucket_uri, files=files, abandoned=abandoned)
