"""``python -m benchmarks.timeline STATE_DIR [--interval s] [--out F]``: where a running
benchmark stack's CPU goes, and how busy its endpoint is, minute by minute.

Beside a running ``benchmarks.run`` (its stack's state directory, ``/tmp/bench-*``), it samples
every ``--interval`` seconds: the machine's busy cores, each stack process's CPU (moto, the
emulators, the model server, Airflow's scheduler, triggerer, API server, DAG processor, and the
task processes as one "tasks" row), and the SageMaker-async emulator's counters (files
completed, model busy time). Each sample is one JSON line in ``--out``. ``--summary F`` reads
such a file and prints one row a window: endpoint utilisation, files a second, and the cores
each part of the stack used, which says whether the endpoint was under-fed because the
machine was full, because one process (moto, a single Python thread) was, or because the
pipeline did not ask.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.request
from pathlib import Path

import psutil

_PORT = re.compile(r"--port (\d+)")
_PARTS = (
    ("moto", re.compile(r"local\.moto_server")),
    ("sagemaker-runtime", re.compile(r"local\.sagemaker_async")),
    ("bedrock-runtime", re.compile(r"local\.bedrock_runtime")),
    ("model-server", re.compile(r"-m model_server")),
    ("tasks", re.compile(r"airflow worker|airflow task|supervisor")),
    ("scheduler", re.compile(r"airflow scheduler")),
    ("triggerer", re.compile(r"airflow triggerer")),
    ("api-server", re.compile(r"api.server|serve-logs")),
    ("dag-processor", re.compile(r"dag-processor")),
)


def part_of(cmdline: str) -> str | None:
    return next((name for name, pattern in _PARTS if pattern.search(cmdline)), None)


def _endpoint_url(state_dir: Path) -> str:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "local.sagemaker_async" in cmdline and str(state_dir) in cmdline and (port := _PORT.search(cmdline)):
            return f"http://127.0.0.1:{port[1]}/_emulator/health"
    raise SystemExit(f"no SageMaker-async emulator of {state_dir} is running")


def sample(health_url: str) -> dict:
    """One sample: cumulative CPU seconds by part (live processes), the machine's, the endpoint's."""
    cpu: dict[str, float] = {}
    for process in psutil.process_iter(["cmdline", "cpu_times"]):
        part = part_of(" ".join(process.info["cmdline"] or []))
        times = process.info["cpu_times"]
        if part and times:
            cpu[f"{part}:{process.pid}"] = times.user + times.system
    machine = psutil.cpu_times()
    with urllib.request.urlopen(health_url, timeout=30) as response:
        # no endpoint until the first invocation reaches the emulator
        endpoint = next(iter(json.loads(response.read())["endpoints"].values()), {})
    return {
        "t": time.time(),
        "machine_busy": machine.user + machine.system + machine.nice + machine.irq + machine.softirq,
        "cpu": cpu,
        "completed": endpoint.get("completed", 0),
        "model_busy_seconds": endpoint.get("model_busy_seconds", 0.0),
        "concurrency": endpoint.get("concurrency"),
    }


def record(state_dir: Path, out: Path, interval: float) -> None:
    health = _endpoint_url(state_dir)
    with out.open("a") as f:
        while (state_dir / "run" / "moto.pid").exists():
            try:
                f.write(json.dumps(sample(health)) + "\n")
                f.flush()
            except OSError:  # the stack went down between samples
                return
            time.sleep(interval)


def windows(samples: list[dict], seconds: float) -> list[dict]:
    """Per window of about ``seconds``: utilisation, files/s and cores used by each part (a
    process's CPU counted from its first to its last sample in the window)."""
    rows, start = [], samples[0]
    for end in samples[1:]:
        span = end["t"] - start["t"]
        if span < seconds and end is not samples[-1]:
            continue
        cores: dict[str, float] = {}
        for key, used in end["cpu"].items():
            part = key.split(":", 1)[0]
            cores[part] = cores.get(part, 0.0) + (used - start["cpu"].get(key, 0.0)) / span
        busy = end["model_busy_seconds"] - start["model_busy_seconds"]
        rows.append(
            {
                "minute": round((start["t"] - samples[0]["t"]) / 60),
                "utilisation": busy / (end["concurrency"] * span) if end["concurrency"] else 0.0,
                "files_per_s": (end["completed"] - start["completed"]) / span,
                "machine_cores": (end["machine_busy"] - start["machine_busy"]) / span,
                "cores": cores,
            }
        )
        start = end
    return rows


def summary(path: Path, seconds: float) -> str:
    samples = [json.loads(line) for line in path.read_text().splitlines() if line]
    names = [name for name, _ in _PARTS]
    header = f"{'min':>4} {'util':>5} {'files/s':>7} {'machine':>7} " + " ".join(f"{n[:9]:>9}" for n in names)
    lines = [header]
    for row in windows(samples, seconds):
        lines.append(
            f"{row['minute']:>4} {row['utilisation']:5.2f} {row['files_per_s']:7.1f} {row['machine_cores']:7.2f} "
            + " ".join(f"{row['cores'].get(n, 0.0):9.2f}" for n in names)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dir", type=Path, nargs="?")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summary", type=Path, help="print a recorded timeline, one row a window")
    parser.add_argument("--window", type=float, default=600.0, help="the summary's window, seconds")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(args.summary, args.window))
    elif args.state_dir and args.out:
        record(args.state_dir.resolve(), args.out, args.interval)
    else:
        parser.error("give STATE_DIR and --out to record, or --summary F to print")


if __name__ == "__main__":
    sys.exit(main())
