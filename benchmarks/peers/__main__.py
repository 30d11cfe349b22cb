"""``make bench-peers`` (``python -m benchmarks.peers [--files N]``): three designs side by side (issue 22).

One local stack, the model server's fixed-latency backend (0.2 s per file, concurrency 4, as
``make bench``), and three designs run one after another over N files each, on a prefix of
their own: the original's design (``benchmarks.peers.original``), the stock-provider DAG
(``benchmarks/peers/dags/``, loaded as a DAG bundle of the benchmark's stack only) and this
package's DAG. Then a second pass over N new files each, with the SageMaker-async emulator
restarted to drop 30% of its notifications and publish 30% twice. For each design and pass:
end-to-end and endpoint wall time against the ideal, utilisation, AWS calls per file by
operation (moto's count by caller, plus InvokeEndpointAsync and the Bedrock calls from the
emulators' journals), Airflow task instances, XCom bytes, CPU seconds of the scheduler (its task
processes included) and of all of Airflow, and, from the witnesses, files lost and processed
twice. Writes ``benchmarks/results/peers-N<files>.json`` and the table in docs/benchmarks.md.

``--designs`` and ``--passes`` measure part of it again on a fresh stack (say, this package's
faults pass after a fix) into the existing results file of that N: each new row carries the
date it was measured (``remeasured``), which the table states under it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from audio_pipeline.config import PipelineConfig, StackNames
from benchmarks.peers import report
from benchmarks.peers.designs import DESIGNS, Design, _tree_cpu
from benchmarks.peers.witnessed import endpoint_time, judge
from benchmarks.report import ROOT
from benchmarks.run import BUCKET, _stop
from local.stack.launcher import Stack
from local.stack.services import Ports, Settings, runtime_service

PEER_DAGS = Path(__file__).resolve().parent / "dags"
FAULTS = ("--fault-drop-notifications", "0.3", "--fault-duplicate-notifications", "0.3")
AIRFLOW = ("scheduler", "triggerer", "api-server", "dag-processor")
PASSES = ("clean", "faults")


def _post(url: str) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=3600) as response:
        return json.loads(response.read())


def fill(stack: Stack, prefix: str, n: int) -> list[str]:
    """N distinct 1 KB objects under the prefix (in moto's process), and their URIs."""
    body = json.dumps({"bucket": BUCKET, "prefix": prefix, "count": n, "size": 1024, "distinct": True}).encode()
    moto = stack.settings.url(stack.settings.ports.moto)
    request = urllib.request.Request(f"{moto}/_emulator/s3/fill", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=3600) as response:
        response.read()
    return [f"s3://{BUCKET}/{prefix}{i:06d}.wav" for i in range(n)]


def cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each Airflow service and its descendants (the scheduler's task processes)."""
    out = {}
    for name, pid in stack.running().items():
        if name in AIRFLOW:
            try:
                out[name] = _tree_cpu(psutil.Process(pid))
            except psutil.Error:
                continue
    return out


def drain(sqs: Any) -> int:
    """Delete what an earlier design left unread in the notification queue (PurgeQueue allows one a minute)."""
    url = sqs.get_queue_url(QueueName=PipelineConfig().notification_queue)["QueueUrl"]
    drained = 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        drained += len(messages)
    return drained


def measure(
    stack: Stack, design: Design, n: int, label: str, service_seconds: float, concurrency: int, deadline: float
) -> dict:
    settings = stack.settings
    session = stack.aws_session()
    drain(session.client("sqs"))
    prefix = f"peers-{label}-{design.name}/"
    uris = fill(stack, prefix, n)
    moto = settings.url(settings.ports.moto)
    _post(f"{moto}/_emulator/calls/reset")
    load_before, cpu_before = os.getloadavg()[0], cpu(stack)
    own = design.run(stack, BUCKET, prefix, deadline)
    cpu_after, load_after = cpu(stack), os.getloadavg()[0]
    with urllib.request.urlopen(f"{moto}/_emulator/calls", timeout=30) as response:
        by_caller = json.loads(response.read())
    caller = "original" if design.name == "original" else "airflow"
    verdict = judge(settings.witness_dir, session.client("s3"), uris)
    calls = {**by_caller.get(caller, {}), **verdict.pop("emulator_calls")}
    airflow_cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_after.items()}
    return {
        "design": design.name,
        **own,
        **endpoint_time(settings.witness_dir, f"s3://{BUCKET}/{prefix}", concurrency),
        "ideal_s": round(n * service_seconds / concurrency, 1),
        "calls_per_file": round(sum(calls.values()) / n, 2),
        "calls": dict(sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))),
        "scheduler_cpu_s": round(airflow_cpu.get("scheduler", 0.0), 1),
        "airflow_cpu_s": round(sum(airflow_cpu.values()), 1),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        **verdict,
    }


def with_faults(stack: Stack) -> Stack:
    """The same stack with its SageMaker-async emulator restarted to drop and duplicate notifications."""
    settings = dataclasses.replace(stack.settings, emulator_flags=FAULTS)
    service = runtime_service(settings)
    stack.processes.kill(service.name)
    stack.processes.start(service)
    stack.processes.wait_healthy([service])
    return stack


def stack_settings(service_seconds: float, concurrency: int, wait_timeout: int) -> Settings:
    """A fresh stack's settings: the benchmark backend, the endpoint's concurrency, the peer DAGs' bundle."""
    return Settings(
        state_dir=Path(tempfile.mkdtemp(prefix="bench-peers-")),
        ports=Ports.free(),
        model_backend="benchmark",
        extra_env={
            "BENCHMARK_SERVICE_SECONDS": str(service_seconds),
            "PEERS_WAIT_TIMEOUT_SECONDS": str(wait_timeout),
        },
        names=StackNames(max_concurrent_invocations_per_instance=concurrency),
        dag_bundles={"peers": PEER_DAGS},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--service-seconds", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--wait-timeout", type=int, default=180, help="the stock DAG's sensor timeout, seconds")
    parser.add_argument(
        "--deadline",
        type=int,
        default=4 * 3600,
        help="seconds an Airflow design's run may take; one still going then is marked failed and measured as it is",
    )
    parser.add_argument("--designs", nargs="+", choices=[d.name for d in DESIGNS], help="only these designs")
    parser.add_argument("--passes", nargs="+", choices=PASSES, help="only these passes")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    n, service_seconds, concurrency = args.files, args.service_seconds, args.concurrency
    designs = [d for d in DESIGNS if not args.designs or d.name in args.designs]
    passes = [p for p in PASSES if not args.passes or p in args.passes]
    out = report.RESULTS / f"peers-N{n}.json"
    partly = len(designs) < len(DESIGNS) or len(passes) < len(PASSES)
    if partly and not out.exists():
        parser.error(f"--designs/--passes measure part of a run again, and {out.name} does not exist")
    stack = Stack(stack_settings(service_seconds, concurrency, args.wait_timeout))
    result: dict[str, Any] = (
        json.loads(out.read_text())
        if partly
        else {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, shared with "
            "other engineers' tests; every process of the stack on it",
            "N": n,
            "service_seconds": service_seconds,
            "concurrency": concurrency,
            "stock_wait_timeout_s": args.wait_timeout,
            "deadline_s": args.deadline,
            "fault_flags": " ".join(FAULTS),
        }
    )
    if partly and (result["service_seconds"], result["concurrency"]) != (service_seconds, concurrency):
        parser.error(f"{out.name} was measured at {result['service_seconds']} s x {result['concurrency']}")
    partial = ROOT / ".local" / f"peers-N{n}.partial.json"
    partial.parent.mkdir(exist_ok=True)
    try:
        stack.up()
        for label in passes:
            if label == "faults":
                with_faults(stack)
            result.setdefault(label, {})
            for design in designs:
                print(f"{label}: {design.name}, {n} files", flush=True)
                row = measure(stack, design, n, label, service_seconds, concurrency, args.deadline)
                if partly:
                    row["remeasured"] = time.strftime("%Y-%m-%d")
                print(json.dumps(row), flush=True)
                result[label][design.name] = row
                partial.write_text(json.dumps(result, indent=1) + "\n")
    finally:
        stack.down()
    report.RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    report.main()


if __name__ == "__main__":
    main()
