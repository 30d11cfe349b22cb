"""README's "Trigger a run" shell block, exactly as written, on the package's fresh local stack.

It runs in a shell that has sourced nothing else, from a folder laid out like a checkout whose
``.local/`` is this stack's state folder: the DAG must start unpaused (as on MWAA; nothing here
unpauses it), the upload, trigger and list-runs must work as a user types them, and
``list-runs -o json`` must print JSON alone on stdout (jq reads it)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from audio_pipeline.ledger import Ledger
from local.stack.airflow_api import AirflowApi
from local.stack.demo import SAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STATES = {"queued", "running", "success", "failed"}


def readme_block() -> str:
    """The shell block of README's "Trigger a run" section."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Trigger a run\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    return block


def checkout(stack, path: Path) -> Path:
    """A folder with the project's own folders, its ``.local`` the stack's state folder."""
    path.mkdir()
    for name in ("dags", "include", "plugins", "local", "samples"):
        (path / name).symlink_to(REPO / name)
    (path / ".local").symlink_to(stack.settings.state_dir)
    return path


def test_readmes_trigger_block_runs_as_written_on_a_fresh_stack(stack, tmp_path):
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    api.wait_for_dag()
    assert not api.is_paused(), "the stack creates the DAG unpaused, as MWAA's deploy does"
    block = readme_block()
    assert "airflow dags trigger audio_transcription" in block and "-o json | jq" in block

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    script = "set -euo pipefail\n" + block
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=checkout(stack, tmp_path / "project"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.stdout.splitlines()[-1] in STATES, result.stdout[-2000:]

    conf = json.loads(re.search(r"--conf '([^']+)'", block).group(1))
    (run,) = [r for r in api.dag_runs() if r["conf"] == conf]
    assert api.wait_for_run(run["dag_run_id"], timeout=600) == "success"
    bucket, _, prefix = conf["bucket_uri"].removeprefix("s3://").partition("/")
    uploaded = [f"s3://{bucket}/{prefix}{clip.name}" for clip in sorted(SAMPLES.iterdir()) if clip.suffix != ".json"]
    assert uploaded and set(uploaded) <= set(result.stdout.splitlines()), "the upload prints each object"
    ledger = Ledger(stack.aws_session().client("dynamodb"), "audio-transcription-status")
    assert {uri: record.status for uri, record in ledger.get(uploaded).items()} == dict.fromkeys(uploaded, "summarized")


def test_list_runs_prints_clean_json_on_stdout(stack, tmp_path):
    """No warning before the JSON (the CLI's graphviz import logged one on stdout)."""
    env_file = stack.settings.state_dir / "stack.env"
    result = subprocess.run(
        ["bash", "-c", f"source {env_file} && airflow dags list-runs audio_transcription -o json"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout)
    assert isinstance(runs, list) and all(r["dag_id"] == "audio_transcription" for r in runs)
