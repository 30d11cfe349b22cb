"""``make demo`` through the docker compose stack: ``python -m local.stack.compose [--audio-dir DIR]``.

Finds the ports docker compose published (``docker compose port``; docker-compose.yaml
binds them to 127.0.0.1, each overridable), then runs what ``make demo`` runs against
them: upload the audio to the input bucket, trigger ``audio_transcription`` through
Airflow's REST API, wait, print each file's outcome. Exits 0 only when every file is
``summarized``. The stack must be up (``docker compose up -d --wait``).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
from pathlib import Path

from local.bootstrap import INPUT_BUCKET
from local.stack.airflow_api import AirflowApi
from local.stack.demo import SAMPLES, run_demo
from local.stack.launcher import aws_session
from local.stack.services import REPO, Ports, Settings


def published(service: str, port: int, compose: list[str]) -> tuple[str, int]:
    """Host address and port where docker compose publishes ``service``'s container ``port``."""
    out = subprocess.run(
        [*compose, "port", service, str(port)], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    host, _, number = out.rpartition(":")
    return ("127.0.0.1" if host in ("0.0.0.0", "") else host), int(number)


def compose_settings(compose: list[str]) -> Settings:
    """The stack's Settings with the addresses compose published."""
    host, moto = published("moto", 5000, compose)
    ports = Ports(
        moto=moto,
        sagemaker_runtime=published("sagemaker-runtime", 5001, compose)[1],
        bedrock_runtime=published("bedrock-runtime", 5002, compose)[1],
        model=published("model-server", 8081, compose)[1],
        airflow=published("airflow-apiserver", 8080, compose)[1],
    )
    return Settings(ports=ports, host=host)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack.compose")
    parser.add_argument("--audio-dir", type=Path, default=SAMPLES)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--compose", default="docker compose", help="the compose command (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    settings = compose_settings(args.compose.split())
    # containers on a small machine answer slower than the native stack's processes
    api = AirflowApi(settings.url(settings.ports.airflow), timeout=60)
    logs = f"`{args.compose} logs airflow-scheduler`, the task logs in the Airflow UI at {api.base_url}"
    return run_demo(aws_session(settings), api, INPUT_BUCKET, args.audio_dir, args.report, args.timeout, logs)


if __name__ == "__main__":
    raise SystemExit(main())
