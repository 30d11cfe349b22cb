"""README's local-stack commands exactly as written: ``make demo``, then ``make up``, the "Trigger a
run" shell block, ``airflow dags list-runs ... -o json`` and ``make down``, in a copy of the
checkout (its own ``.local/``, the default ports README's UI link names), from shells that sourced
nothing else.

The DAG must start unpaused (as on MWAA; nothing here unpauses it), the upload, trigger and
list-runs must work as a user types them, ``list-runs -o json`` must print JSON alone on stdout
(jq reads it), and ``make down`` must leave nothing running."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from dataclasses import astuple
from pathlib import Path

import pytest

from audio_pipeline.ledger import Ledger
from local.stack.airflow_api import AirflowApi
from local.stack.demo import SAMPLES
from local.stack.launcher import Stack
from local.stack.services import Ports, Settings
from tests.e2e.conftest import reuse_models

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STATES = {"queued", "running", "success", "failed"}
CLIPS = [clip.name for clip in sorted(SAMPLES.iterdir()) if clip.suffix != ".json"]
"""The sample clips README's commands upload (``samples/`` without its references file)."""


def readme_block() -> str:
    """The shell block of README's "Trigger a run" section."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Trigger a run\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    return block


def _in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _shell(checkout: Path, script: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``script`` in bash from the checkout, with nothing in the environment but PATH and HOME."""
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=checkout,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _copy_checkout(path: Path) -> Path:
    """The project's files as git knows them (committed or not, ignored ones left out), modification
    times kept so make finds the virtualenv current; the virtualenv itself and the assembled Whisper
    model shared with this checkout rather than rebuilt."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    (path / ".venv").symlink_to(REPO / ".venv")
    reuse_models(path / ".local")
    return path


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A copy of the checkout and a HOME of its own, where README's default ports are free."""
    busy = [port for port in astuple(Ports()) if _in_use(port)]
    if busy:
        pytest.skip(f"ports {busy} are taken (a stack of your own is up?): README's commands need them")
    return _copy_checkout(tmp_path_factory.mktemp("checkout")), tmp_path_factory.mktemp("home")


def _settings(checkout: Path) -> Settings:
    """The settings of the stack ``make`` runs in ``checkout`` (its own ``.local/``, default ports)."""
    return Settings(state_dir=(checkout / ".local").resolve())


def _stopped(settings: Settings) -> bool:
    return not Stack(settings).running() and not [p for p in astuple(Ports()) if _in_use(p)]


def test_make_demo_runs_as_written_from_a_fresh_checkout(checkout):
    """README's first command: its own stack up, the sample clips transcribed and summarised through
    the real Airflow, every file's outcome printed, the stack down again."""
    path, home = checkout
    demo = _shell(path, "make demo", home, timeout=900)
    assert demo.returncode == 0, f"{demo.stdout[-3000:]}\n{demo.stderr[-3000:]}"
    rows = [line for line in demo.stdout.splitlines() if any(clip in line for clip in CLIPS)]
    assert len(rows) == len(CLIPS) and all("summarized" in row for row in rows), demo.stdout[-3000:]
    assert re.search(r"^run \S+: success in \d+s", demo.stdout, re.MULTILINE), demo.stdout[-2000:]
    assert _stopped(_settings(path)), "make demo stops the stack it started"


@pytest.fixture(scope="module")
def made_up(checkout):
    """The checkout's stack, started by ``make up``, and its settings; ``make down`` stops it."""
    path, home = checkout
    settings = _settings(path)
    try:
        up = _shell(path, "make up", home)
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        assert "Airflow UI: http://localhost:8080" in up.stdout, up.stdout[-2000:]
        yield path, home, settings
    finally:
        down = _shell(path, "make down", home)
        assert down.returncode == 0, down.stderr[-3000:]
        assert "triggerer" in down.stdout, down.stdout
        assert _stopped(settings), "make down stops all"


def test_readmes_trigger_block_runs_as_written_after_make_up(made_up):
    checkout, home, settings = made_up
    api = AirflowApi(settings.url(settings.ports.airflow))
    api.wait_for_dag()
    assert not api.is_paused(), "make up creates the DAG unpaused, as MWAA's deploy does"
    block = readme_block()
    assert "airflow dags trigger audio_transcription" in block and "-o json | jq" in block

    result = _shell(checkout, block, home, timeout=300)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.stdout.splitlines()[-1] in STATES, result.stdout[-2000:]

    conf = json.loads(re.search(r"--conf '([^']+)'", block).group(1))
    (run,) = [r for r in api.dag_runs() if r["conf"] == conf]
    assert api.wait_for_run(run["dag_run_id"], timeout=600) == "success"
    bucket, _, prefix = conf["bucket_uri"].removeprefix("s3://").partition("/")
    uploaded = [f"s3://{bucket}/{prefix}{clip}" for clip in CLIPS]
    assert uploaded and set(uploaded) <= set(result.stdout.splitlines()), "the upload prints each object"
    ledger = Ledger(Stack(settings).aws_session().client("dynamodb"), "audio-transcription-status")
    assert {uri: record.status for uri, record in ledger.get(uploaded).items()} == dict.fromkeys(uploaded, "summarized")


def test_list_runs_prints_clean_json_on_stdout(made_up):
    """No warning before the JSON (the CLI's graphviz import logged one on stdout)."""
    checkout, home, _ = made_up
    result = _shell(checkout, "source .local/stack.env && airflow dags list-runs audio_transcription -o json", home)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout)
    assert isinstance(runs, list) and all(r["dag_id"] == "audio_transcription" for r in runs)
