"""``python -m benchmarks.run [--files N ...]``: the pipeline at scale on the local stack.

The model server runs its fixed-latency ``benchmark`` backend (a set service time per file,
a fixed transcript), so the pipeline is measured, not the model. For each N it reports:
AWS API calls per file made by the DAG (counted at the moto server, by operation; the
InvokeEndpointAsync and Bedrock calls go to the emulators and are not in it), secret lookups
(SSM ``GetParameter`` calls by any process from the trigger to the run's end: Variables and
connections come from SSM Parameter Store, as on MWAA; the nightly run the unpaused DAG gets on
its first parse has ended before the stack is up, so the window holds the measured run's reads),
Airflow task instances and XCom bytes per run, endpoint utilisation (model busy time / (concurrency x
wall time from first submission to last completion)) against the ideal
N x service time / concurrency, and the run's end-to-end wall time; then a second run over
the same files, with nothing new, and its time and calls per file.

The endpoint serves 0.2 s x 4 (20 files a second) at every N unless ``--service-seconds`` and
``--concurrency`` say otherwise: about what the local stack feeds on 2 cores. Asked for 0.05 s x 16
at N = 10,000, it fed the endpoint 14 files a second (moto's CPU, ~40 ms per file, is the
limit), so a faster endpoint measures the emulators, not the pipeline; N = 100,000 takes about
two hours. Results go to ``benchmarks/results/N<files>.json`` (a run at other settings is named
for them: ``result_name``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import psutil

from audio_pipeline.config import StackNames
from benchmarks import report
from local.stack.airflow_api import AirflowApi
from local.stack.launcher import Stack
from local.stack.services import Ports, Settings
from local.witness import Witnesses

RESULTS = Path(__file__).resolve().parent / "results"
STANDARD = {"service_seconds": 0.2, "concurrency": 4, "batch_size": 100}
"""The endpoint and batch size of the tables' columns (docs/benchmarks.md)."""
BUCKET = "audio-transcription-input"


def _get(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class MemorySampler(threading.Thread):
    """Peak resident memory of each task process (``airflow worker -- <task instance id>``)
    and of the triggerer, sampled every half second."""

    _TASK = re.compile(r"airflow worker -- (?:LocalExecutor: )?([0-9a-f]{8}-[0-9a-f-]{27})")

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[str, int] = defaultdict(int)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            for process in psutil.process_iter(["cmdline", "memory_info"]):
                cmdline = " ".join(process.info["cmdline"] or []).strip()
                match = self._TASK.search(cmdline)
                key = match.group(1) if match else ("triggerer" if cmdline.endswith("airflow triggerer") else None)
                if key and process.info["memory_info"]:
                    self.peaks[key] = max(self.peaks[key], process.info["memory_info"].rss)


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time used so far by each service of the stack, its finished child processes included
    (the scheduler's task processes)."""
    out = {}
    for name, pid in stack.running().items():
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[name] = t.user + t.system + t.children_user + t.children_system
    return out


def peak_memory_mb(sampler: MemorySampler, task_instances: list[dict]) -> dict[str, float]:
    by_task: dict[str, int] = defaultdict(int)
    for ti in task_instances:
        by_task[ti["task_id"]] = max(by_task[ti["task_id"]], sampler.peaks.get(ti["id"], 0))
    by_task["triggerer (all sensors' triggers)"] = sampler.peaks.get("triggerer", 0)
    return {task: round(rss / 2**20, 1) for task, rss in sorted(by_task.items()) if rss}


def upload(moto: str, n: int, prefix: str) -> None:
    """N objects of 1 KB written into the moto server's S3 in-process (the benchmark backend
    does not decode audio; 100,000 uploads over HTTP took 266 s here)."""
    body = json.dumps({"bucket": BUCKET, "prefix": prefix, "count": n, "size": 1024}).encode()
    request = urllib.request.Request(f"{moto}/_emulator/s3/fill", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=3600) as response:
        json.loads(response.read())


def xcom_bytes(db: Path, run_id: str) -> int:
    with sqlite3.connect(db) as connection:
        row = connection.execute(
            "SELECT COALESCE(SUM(LENGTH(value)), 0), COUNT(*) FROM xcom WHERE run_id = ?", (run_id,)
        ).fetchone()
    return int(row[0])


def task_seconds(db: Path, run_id: str) -> dict[str, float]:
    """The longest instance of each task of the run, in seconds (``claim_new_audio``'s is the claim
    phase: list, filter, claim), from the metadata DB's ``task_instance`` table."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT task_id, MAX(duration) FROM task_instance WHERE run_id = ? AND duration IS NOT NULL "
            "GROUP BY task_id ORDER BY task_id",
            (run_id,),
        ).fetchall()
    return {task: round(seconds, 1) for task, seconds in rows}


def result_name(result: dict) -> str:
    """``N<files>.json`` for a run at the standard endpoint and batch size (a column of the tables);
    a run at other settings is named for them (``N10000-0.3s-c4-b100.json``) and kept out of them."""
    if all(result[k] == v for k, v in STANDARD.items()):
        return f"N{result['N']}.json"
    return f"N{result['N']}-{result['service_seconds']}s-c{result['concurrency']}-b{result['batch_size']}.json"


def run_timeout(n: int) -> float:
    """How long a run over ``n`` files may take: two hours and 0.2 s a file (N = 100,000 took 6,329 s
    on a quiet 2-core machine, and timed out at 7,200 s on a busy one)."""
    return 7200 + 0.2 * n


def _run(
    api: AirflowApi, moto: str, bucket_uri: str, batch_size: int, n: int
) -> tuple[str, str, float, dict[str, dict]]:
    """Trigger a run over ``n`` files and wait for it: run id, state, seconds, and the AWS calls it made by caller."""
    _get(f"{moto}/_emulator/calls/reset", "POST")
    started = time.monotonic()
    run_id = api.trigger({"bucket_uri": bucket_uri, "batch_size": batch_size})
    state = api.wait_for_run(run_id, timeout=run_timeout(n))
    return run_id, state, time.monotonic() - started, _get(f"{moto}/_emulator/calls")


def rerun(api: AirflowApi, moto: str, bucket_uri: str, batch_size: int, n: int) -> dict:
    """A second run over the same files with nothing new: what skipping all of them costs."""
    run_id, state, seconds, by_caller = _run(api, moto, bucket_uri, batch_size, n)
    calls = by_caller.get("airflow", {})
    return {
        "state": state,
        "end_to_end_s": round(seconds, 1),
        "calls_per_file": round(sum(calls.values()) / n, 4),
        "task_instances": len(api.task_instances(run_id)),
        "calls": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
    }


def measure(stack: Stack, n: int, batch_size: int, service_seconds: float) -> dict:
    settings = stack.settings
    prefix = f"bench-{n}-{int(time.time())}/"
    bucket_uri = f"s3://{BUCKET}/{prefix}"
    moto = settings.url(settings.ports.moto)
    upload(moto, n, prefix)
    api = AirflowApi(settings.url(settings.ports.airflow))
    api.wait_for_dag()
    sampler = MemorySampler()
    sampler.start()
    cpu_before = cpu_seconds(stack)
    run_id, state, end_to_end, by_caller = _run(api, moto, bucket_uri, batch_size, n)
    cpu_after = cpu_seconds(stack)
    sampler.stopped.set()
    calls = by_caller.get("airflow", {})
    endpoint = _get(f"{settings.url(settings.ports.sagemaker_runtime)}/_emulator/health")["endpoints"]
    stats = next(iter(endpoint.values()))
    wall = stats["last_finished_at"] - stats["first_accepted_at"]
    concurrency = stats["concurrency"]
    statuses = api.task_instances(run_id)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        "every process of the stack on it",
        "N": n,
        "state": state,
        "utilisation": round(stats["model_busy_seconds"] / (concurrency * wall), 3),
        "calls_per_file": round(sum(calls.values()) / n, 2),
        "secret_lookups": sum(c.get("ssm:GetParameter", 0) for c in by_caller.values()),
        "task_instances": len(statuses),
        "xcom_bytes": xcom_bytes(settings.airflow_home / "airflow.db", run_id),
        "task_seconds": task_seconds(settings.airflow_home / "airflow.db", run_id),
        "wall_s": round(wall, 1),
        "ideal_s": round(n * service_seconds / concurrency, 1),
        "end_to_end_s": round(end_to_end, 1),
        "completed": stats["completed"],
        "failed": stats["failed"],
        "processed_twice": processed_twice(stack, bucket_uri),
        "peak_memory_mb": peak_memory_mb(sampler, statuses),
        "cpu_seconds": {k: round(v - cpu_before.get(k, 0.0), 1) for k, v in sorted(cpu_after.items())},
        "calls": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
        "concurrency": concurrency,
        "service_seconds": service_seconds,
        "batch_size": batch_size,
        "rerun": rerun(api, moto, bucket_uri, batch_size, n),
    }


def processed_twice(stack: Stack, prefix: str) -> int:
    """File versions under ``prefix`` the model was called for more than once (the model server's journal)."""
    calls = Witnesses.load(stack.settings.witness_dir).calls_per_version()
    return sum(1 for (uri, _), n in calls.items() if uri.startswith(prefix) and n > 1)


def line(r: dict) -> str:
    return (
        f"N={r['N']} utilisation={r['utilisation']:.2f} calls_per_file={r['calls_per_file']:.1f} "
        f"task_instances={r['task_instances']} xcom_bytes={r['xcom_bytes']} secret_lookups={r['secret_lookups']} "
        f"wall_s={r['wall_s']:.1f} "
        f"ideal_s={r['ideal_s']:.1f} rerun_s={r['rerun']['end_to_end_s']:.1f} "
        f"rerun_calls_per_file={r['rerun']['calls_per_file']:.3f}"
    )


def _stop(signum: int, frame: object) -> None:
    """SIGTERM ends the benchmark as Ctrl-C does: its stack goes down with it."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1000])
    parser.add_argument(
        "--service-seconds", type=float, default=STANDARD["service_seconds"], help="the model's time per file"
    )
    parser.add_argument(
        "--concurrency", type=int, default=STANDARD["concurrency"], help="the endpoint's concurrent invocations"
    )
    parser.add_argument("--batch-size", type=int, default=STANDARD["batch_size"])
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    results = []
    service_seconds, concurrency = args.service_seconds, args.concurrency
    for n in args.files:  # a fresh stack for each N
        print(f"N={n}: the benchmark backend serves each file in {service_seconds} s, {concurrency} at a time")
        settings = Settings(
            state_dir=Path(tempfile.mkdtemp(prefix="bench-")),
            ports=Ports.free(),
            model_backend="benchmark",
            extra_env={"BENCHMARK_SERVICE_SECONDS": str(service_seconds)},
            names=StackNames(max_concurrent_invocations_per_instance=concurrency),
        )
        stack = Stack(settings)
        try:
            stack.up()
            result = measure(stack, n, args.batch_size, service_seconds)
        finally:
            stack.down()
        results.append(result)
        print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    for r in results:
        (RESULTS / result_name(r)).write_text(json.dumps(r, indent=1) + "\n")
    print(line(max(results, key=lambda r: r["N"])))
    report.main()


if __name__ == "__main__":
    main()
