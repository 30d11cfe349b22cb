"""One local stack and one run on real clips for every end-to-end test that needs them (the
pipeline's own checks, its task logs, the browser and the airflow CLI), started once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from local.stack.airflow_api import AirflowApi
from local.stack.demo import SAMPLES, results, run_pipeline, upload
from local.stack.launcher import Stack
from local.stack.services import Ports, Settings

REFERENCES = json.loads((SAMPLES / "references.json").read_text())
EXAMPLE_DAGS = Path(__file__).resolve().parent / "dags"
CONSUMER_DAG_ID = "run_manifest_consumer"
MODELS = Path(__file__).resolve().parents[2] / ".local" / "models"


def reuse_models(state_dir: Path) -> None:
    """Give a new stack's state folder this checkout's assembled Whisper model, when there is one,
    rather than have the stack build its 140 MB again."""
    if MODELS.is_dir():
        shutil.copytree(MODELS, state_dir / "models")


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("stack")
    reuse_models(state)
    ports = Ports.free()
    stack = Stack(Settings(state_dir=state, ports=ports, dag_bundles={"examples": EXAMPLE_DAGS}))
    try:
        stack.up()
        yield stack
    finally:
        stopped = stack.down()
        assert "triggerer" in stopped and not stack.running()


@pytest.fixture(scope="package")
def outcome(stack, tmp_path_factory):
    audio = tmp_path_factory.mktemp("audio")
    for clip in REFERENCES:
        shutil.copy(SAMPLES / clip, audio / clip)
    (audio / "broken").mkdir()
    (audio / "broken" / "not-really.wav").write_bytes(b"this is not audio at all, only text\n" * 50)
    (audio / "notes.txt").write_text("meeting notes, not audio")
    session = stack.aws_session()
    keys = upload(session.client("s3"), audio, "audio-transcription-input", "e2e/")
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    api.wait_for_dag(dag_id=CONSUMER_DAG_ID)
    api.unpause(CONSUMER_DAG_ID)  # scheduled on the run manifests' Asset
    run_id, state, _ = run_pipeline(api, "s3://audio-transcription-input/e2e/", timeout=600)
    rows = {r.uri.rsplit("/", 1)[-1]: r for r in results(session, "audio-transcription-input", keys)}
    return {"run_id": run_id, "state": state, "rows": rows, "session": session, "api": api, "keys": keys}
