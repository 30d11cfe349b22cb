"""The airflow CLI against the running local stack, after one line: ``source .local/stack.env``.

It must reach the stack's own database and parse the same DAG and plugin folders, so that
``dags list-runs`` sees the stack's runs, ``dags trigger`` starts a run the scheduler executes,
and ``dags test`` (the usual debugging habit) runs the whole DAG in the CLI's process.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from audio_pipeline.config import PipelineConfig
from audio_pipeline.ledger import Ledger
from local.stack.demo import SAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def airflow(stack, tmp_path_factory):
    """Run ``airflow ARGS`` in a shell that has only sourced stack.env (no venv, a fresh HOME)."""
    home = tmp_path_factory.mktemp("home")
    env_file = stack.settings.state_dir / "stack.env"

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        script = f"source {shlex.quote(str(env_file))} && airflow {shlex.join(args)}"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=timeout)
        assert result.returncode == 0, f"airflow {shlex.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert not (home / "airflow").exists(), "the CLI made an Airflow home of its own"
        return result

    return run


def json_output(result: subprocess.CompletedProcess) -> list[dict]:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("[")]
    return json.loads(line)


def upload_clip(stack, prefix: str) -> str:
    key = f"{prefix}news-brief.wav"
    stack.aws_session().client("s3").upload_file(str(SAMPLES / "news-brief.wav"), "audio-transcription-input", key)
    return f"s3://audio-transcription-input/{key}"


def status_of(stack, uri: str) -> str:
    ledger = Ledger(stack.aws_session().client("dynamodb"), PipelineConfig().status_table)
    return ledger.get([uri])[uri].status.value


def test_list_runs_sees_the_stacks_runs(airflow, outcome):
    runs = json_output(airflow("dags", "list-runs", "audio_transcription", "-o", "json"))
    assert outcome["run_id"] in {r["run_id"] for r in runs}


def test_trigger_starts_a_run_the_stack_executes(airflow, stack, outcome):
    uri = upload_clip(stack, "cli-trigger/")
    conf = json.dumps({"bucket_uri": "s3://audio-transcription-input/cli-trigger/"})
    (run,) = json_output(airflow("dags", "trigger", "audio_transcription", "--conf", conf, "-o", "json"))
    assert outcome["api"].wait_for_run(run["dag_run_id"], timeout=600) == "success"
    assert status_of(stack, uri) == "summarized"


def test_dags_test_runs_the_dag_in_the_cli_against_the_stack(airflow, stack, outcome):
    uri = upload_clip(stack, "cli-test/")
    conf = json.dumps({"bucket_uri": "s3://audio-transcription-input/cli-test/"})
    airflow("dags", "pause", "audio_transcription")  # else the stack's scheduler runs the test run's tasks too
    try:
        result = airflow("dags", "test", "audio_transcription", "--conf", conf)
    finally:
        airflow("dags", "unpause", "audio_transcription")
    assert "state=success" in result.stdout + result.stderr
    assert status_of(stack, uri) == "summarized"
    runs = json_output(airflow("dags", "list-runs", "audio_transcription", "-o", "json"))
    assert len(runs) >= 3, "the test run is in the stack's database too"
