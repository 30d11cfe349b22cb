"""``python -m benchmarks.peers.map_limit [--files 1025]``: the stock-provider DAG past Airflow's default
``max_map_length`` (1,024), on a fresh local stack.

Triggers ``peers_stock_provider`` over more keys than the mapping may take and records what
happened: the run's state, ``list_audio``'s tries and the error its log ends with, and how many
requests the endpoint accepted for those files (its journal). Writes
``benchmarks/results/peers-map-limit.json``; ``python -m benchmarks.peers.report`` puts it in the doc.
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.peers import report
from benchmarks.peers.__main__ import fill, stack_settings
from benchmarks.peers.designs import run_stock
from benchmarks.run import BUCKET
from local.stack.launcher import Stack
from local.witness import Witnesses

RESULT = report.RESULTS / "peers-map-limit.json"


def last_error(stack: Stack, task_id: str) -> str:
    """The last error line of the task's last try's log (the stock DAG's only run)."""
    logs = sorted((stack.settings.airflow_home / "logs").rglob(f"task_id={task_id}/attempt=*.log"))
    for line in reversed(logs[-1].read_text(errors="replace").splitlines() if logs else []):
        event = json.loads(line) if line.startswith("{") else {}
        for detail in event.get("error_detail") or []:
            return f"{detail.get('exc_type')}: {detail.get('exc_value')}"
    return "no error logged"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1025)
    args = parser.parse_args(argv)
    stack = Stack(stack_settings(0.2, 4, 180))
    try:
        stack.up()
        prefix = "peers-map-limit/"
        fill(stack, prefix, args.files)
        own = run_stock(stack, BUCKET, prefix)
        accepted = sum(
            1
            for a in Witnesses.load(stack.settings.witness_dir).accepted
            if (a.get("input_location") or "").startswith(f"s3://{BUCKET}/{prefix}")
        )
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "files": args.files,
            "run_state": own["run_state"],
            "end_to_end_s": own["end_to_end_s"],
            "task_instances": own["task_instances"],
            "list_audio_error": last_error(stack, "list_audio"),
            "requests_accepted": accepted,
        }
    finally:
        stack.down()
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    report.main()


if __name__ == "__main__":
    main()
