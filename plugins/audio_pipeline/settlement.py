"""The end of a run: what it left in flight fails, what it transcribed but never summarised is
told why, and every file's final state is read for its report."""

from __future__ import annotations

from audio_pipeline.reporting import REPORTED_ATTRIBUTES, RunReport
from audio_pipeline.state_machine import IN_FLIGHT, Status, Transition
from audio_pipeline.status import StatusTable, utcnow


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
