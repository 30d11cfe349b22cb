"""``python -m benchmarks.claim_phase [--files N] [--latency-ms MS] [--concurrency C]``: list +
filter + claim at scale, and the run's end, without Airflow.

Starts the project's moto server (``local.moto_server``) on a free port, creates the bucket
and the status table as the bootstrap does, writes N objects straight into moto's S3
(``/_emulator/s3/fill``), then runs ``claim_new_files`` into a ``ClaimSpool`` (what
``claim_new_audio`` runs) twice: a first run that claims all N files and, once the
benchmark has marked them ``summarized`` (as a finished run leaves them), a second run over
the same prefix with nothing new. Prints, for each: wall time, the CPU seconds of the claiming code and of the
moto server (which, on a shared machine, vary less than wall time), AWS calls per file by
operation (counted at the moto server), and the claimed / not-claimed figures.

Between the two, the first run's end as ``report_run`` does it (``settle_and_report``: its N
files still in flight are failed, read back, logged and written to the run manifest in S3),
with the same figures, the peak of the Python heap it allocated (``tracemalloc``, which slows
the settling code's own CPU) and the manifest's size.

``--latency-ms`` holds each AWS request for that round trip (``/_emulator/latency``), as a
client in an AWS region waits on each call; ``--concurrency`` is the status table's chunks in
flight at once (its default, or 1 to send them one after another). Results go to
``benchmarks/results/claim-N<N>-<MS>ms-c<C>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import boto3
import psutil

from audio_pipeline.batches import ClaimSpool
from audio_pipeline.claims import ClaimReport, claim_new_files
from audio_pipeline.config import PipelineConfig
from audio_pipeline.costs import Rates
from audio_pipeline.ledger import CONCURRENCY, Ledger, table_definition
from audio_pipeline.reporting import RunReport
from audio_pipeline.s3_uris import S3Location
from audio_pipeline.settlement import settle_and_report
from tests.moto_server import free_port

RESULTS = Path(__file__).resolve().parent / "results"
PRICES = Path(__file__).resolve().parents[1] / "include" / "prices.json"
BUCKET = "audio-transcription-input"
PREFIX = "claim-bench/"
T = TypeVar("T")


def _post(url: str, document: dict | None = None) -> dict:
    data = json.dumps(document or {}).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.loads(response.read())


def _calls(moto: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{moto}/_emulator/calls", timeout=30) as response:
        return json.loads(response.read()).get("other", {})


def _wait_up(moto: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the moto server exited at start")
        try:
            _calls(moto)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the moto server did not answer within 60 s")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measured_pass(moto: str, server: psutil.Process, n: int, work: Callable[[], T]) -> tuple[T, dict]:
    """Run ``work`` once, moto's call counter reset first; returns its result and the pass's
    wall time, CPU (this process's and moto's) and AWS calls (counted at moto)."""
    _post(f"{moto}/_emulator/calls/reset")
    me = psutil.Process()
    cpu_before = _cpu(me), _cpu(server)
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    client_cpu, server_cpu = _cpu(me) - cpu_before[0], _cpu(server) - cpu_before[1]
    calls = _calls(moto)
    return result, {
        "seconds": round(seconds, 1),
        "client_cpu_s": round(client_cpu, 1),
        "moto_cpu_s": round(server_cpu, 1),
        "calls_per_file": round(sum(calls.values()) / n, 4),
        "calls": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
    }


def one_pass(
    moto: str, server: psutil.Process, session: boto3.session.Session, run_id: str, n: int, concurrency: int
) -> dict:
    config = PipelineConfig()
    ledger = Ledger(session.client("dynamodb"), config.status_table, concurrency=concurrency)
    location = S3Location(BUCKET, PREFIX)

    def claim() -> tuple[ClaimReport, int]:
        with ClaimSpool() as claimed:
            report = claim_new_files(
                session.client("s3"),
                ledger,
                location,
                config.extensions,
                run_id,
                claimed.add,
                lease_seconds=config.result_window_seconds,
            )
            return report, claimed.count

    (report, spooled), figures = measured_pass(moto, server, n, claim)
    if spooled != report.claimed:
        raise RuntimeError(f"{run_id}: the claim reported {report.claimed} files but handed {spooled} to the spool")
    return {
        "run_id": run_id,
        **figures,
        "files_per_second": round(n / figures["seconds"]),
        "claimed": report.claimed,
        "not_claimed": dict(report.not_claimed),
    }


def settle_pass(
    moto: str, server: psutil.Process, session: boto3.session.Session, run_id: str, n: int, concurrency: int
) -> dict:
    config = PipelineConfig()
    ledger = Ledger(session.client("dynamodb"), config.status_table, concurrency=concurrency)
    s3 = session.client("s3")
    manifest = (BUCKET, f"runs/{run_id}/manifest.json")
    rates = Rates.load(PRICES, config.endpoint_instance_type, config.bedrock_model_id)

    def traced() -> tuple[RunReport, int]:
        tracemalloc.start()
        try:
            report = settle_and_report(
                ledger, s3, run_id, f"s3://{BUCKET}/{PREFIX}", manifest, "benchmark: ended", rates
            )
            return report, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    (report, peak), figures = measured_pass(moto, server, n, traced)
    size = s3.head_object(Bucket=manifest[0], Key=manifest[1])["ContentLength"]
    return {
        "run_id": run_id,
        **figures,
        "peak_heap_mb": round(peak / 2**20, 1),
        "manifest_mb": round(size / 2**20, 1),
        "settled": report.counts.total(),
        "abandoned": report.abandoned,
    }


def mark_summarized(session: boto3.session.Session, table_name: str) -> None:
    """Leave every file the way a finished run does (setup for the rerun, not measured)."""
    ddb = session.client("dynamodb")
    items = [i for page in ddb.get_paginator("scan").paginate(TableName=table_name) for i in page["Items"]]
    for item in items:
        item["status"] = {"S": "summarized"}
    for i in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[i : i + 25]]
        pending = {table_name: requests}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None


def measure(n: int, latency_ms: float = 0, concurrency: int = CONCURRENCY) -> dict:
    port = free_port()
    moto = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "local.moto_server", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_up(moto, process)
        server = psutil.Process(process.pid)
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        os.environ["AWS_ENDPOINT_URL"] = moto
        session.client("s3").create_bucket(Bucket=BUCKET)
        session.client("dynamodb").create_table(TableName=PipelineConfig().status_table, **table_definition())
        started = time.perf_counter()
        _post(f"{moto}/_emulator/s3/fill", {"bucket": BUCKET, "prefix": PREFIX, "count": n, "size": 1024})
        fill_seconds = time.perf_counter() - started
        _post(f"{moto}/_emulator/latency?ms={latency_ms}")
        first = one_pass(moto, server, session, "bench__first", n, concurrency)
        settle = settle_pass(moto, server, session, "bench__first", n, concurrency)
        _post(f"{moto}/_emulator/latency?ms=0")
        mark_summarized(session, PipelineConfig().status_table)
        _post(f"{moto}/_emulator/latency?ms={latency_ms}")
        rerun = one_pass(moto, server, session, "bench__rerun", n, concurrency)
        return {
            "date": time.strftime("%Y-%m-%d"),
            "load_average": round(os.getloadavg()[0], 1),
            "N": n,
            "latency_ms": latency_ms,
            "concurrency": concurrency,
            "fill_seconds": round(fill_seconds, 1),
            "first": first,
            "settle": settle,
            "rerun": rerun,
        }
    finally:
        process.terminate()
        process.wait(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=0, help="each AWS request's round trip (default 0)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="status table chunks in flight at once")
    args = parser.parse_args(argv)
    result = measure(args.files, args.latency_ms, args.concurrency)
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"claim-N{args.files}-{args.latency_ms:g}ms-c{args.concurrency}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    for name in ("first", "rerun"):
        r = result[name]
        print(
            f"claim phase N={args.files} {name} ({args.latency_ms:g} ms round trips, {args.concurrency} at once): "
            f"{r['seconds']} s (CPU: claiming {r['client_cpu_s']} s, "
            f"moto {r['moto_cpu_s']} s), {r['calls_per_file']} calls/file, {r['claimed']} claimed"
        )
    r = result["settle"]
    print(
        f"run's end N={args.files}: {r['seconds']} s (CPU: settling {r['client_cpu_s']} s, moto {r['moto_cpu_s']} s), "
        f"{r['calls_per_file']} calls/file, {r['settled']} settled, heap peak {r['peak_heap_mb']} MB, "
        f"manifest {r['manifest_mb']} MB"
    )


if __name__ == "__main__":
    main()
