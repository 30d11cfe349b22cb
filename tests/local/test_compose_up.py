"""docker-compose.yaml for real: after `docker compose up --wait`, every service is healthy and
the demo through the compose stack summarizes every sample clip.

`make compose-test` (scripts/compose-test) installs Docker where missing, brings the stack
up, runs this module and tears the stack down (`down -v`). Anywhere else (plain `make test`,
or where Docker cannot start) these tests are skipped, and the skip says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from local.stack.demo import SAMPLES
from local.stack.services import REPO
from model_server.wer import word_error_rate

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("COMPOSE_STACK_UP"),
        reason=os.environ.get("COMPOSE_UNAVAILABLE")
        or "no docker compose stack is up: `make compose-test` brings one up and runs these",
    ),
]

SERVICES = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"]
JOBS = {"airflow-init", "bootstrap"}  # run once and exit; every other service runs on
REFERENCES = json.loads((SAMPLES / "references.json").read_text())
WER_BOUND = 0.35  # as in tests/e2e/test_pipeline_e2e.py (measured 0.00-0.12 per clip)


def compose(*args: str) -> str:
    return subprocess.run(["docker", "compose", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout


def test_every_service_is_healthy_and_the_jobs_succeeded():
    states = {c["Service"]: c for c in map(json.loads, compose("ps", "--all", "--format", "json").splitlines())}
    assert set(states) == set(SERVICES)
    for name, container in states.items():
        if name in JOBS:
            assert (container["State"], container["ExitCode"]) == ("exited", 0), name
        else:
            assert SERVICES[name].get("healthcheck"), f"{name} has no healthcheck"
            assert (container["State"], container["Health"]) == ("running", "healthy"), name


def test_published_ports_are_on_loopback_only():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            container_port = port.rsplit(":", 1)[-1]
            assert compose("port", name, container_port).strip().startswith("127.0.0.1:"), (name, port)


def test_the_demo_through_compose_summarizes_every_sample(tmp_path):
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "local.stack.compose", "--report", str(report)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(run.stdout, run.stderr[-3000:], sep="\n")  # the per-file table, in the CI log
    assert run.returncode == 0
    rows = {row["uri"].rsplit("/", 1)[-1]: row for row in json.loads(report.read_text())}
    assert set(rows) == set(REFERENCES)
    for clip, row in rows.items():
        assert row["status"] == "summarized", (clip, row)
        assert word_error_rate(REFERENCES[clip], row["transcript"]) < WER_BOUND, (clip, row["transcript"])
        assert row["summary"], clip
