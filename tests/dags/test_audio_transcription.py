"""The DAG as Airflow parses it: imports cleanly, reads like the design, and fails fast on bad input."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"


def dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag
    kwargs = {"dag_folder": str(DAGS)}
    if "include_examples" in inspect.signature(DagBag).parameters:
        kwargs["include_examples"] = False
    return DagBag(**kwargs)


@pytest.fixture(scope="module")
def dag():
    bag = dagbag()
    assert bag.import_errors == {}
    return bag.dags["audio_transcription"]


PARSE_OFFLINE = """
import json, socket, sys

attempts = []


def refuse(what):
    def blocked(*args, **kwargs):
        attempts.append(f"{what}{args[1:] if what == 'connect' else args[:2]}")
        raise OSError(f"network access while parsing the DAG: {what}")

    return blocked


socket.socket.connect = refuse("connect")
socket.socket.connect_ex = refuse("connect")
socket.getaddrinfo = refuse("getaddrinfo")
socket.create_connection = refuse("create_connection")

from airflow.sdk import Variable


def no_variable(key, *args, **kwargs):
    attempts.append(f"Variable.get({key!r})")
    raise AssertionError("top-level DAG code must not read Variables")


Variable.get = no_variable
from tests.dags.test_audio_transcription import dagbag

bag = dagbag()
print(json.dumps({"dags": sorted(bag.dags), "import_errors": bag.import_errors, "attempts": attempts}))
"""


def test_parsing_reads_no_variables_and_touches_no_network(tmp_path):
    """Parse as the DAG processor does, in a fresh interpreter (every module imported anew),
    with real AWS credentials' shape, no AWS mock and every socket refused: a Variable read or
    an AWS call at import is reported even when the DAG file swallows the error."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update(
        AWS_ACCESS_KEY_ID="AKIAPARSETEST",
        AWS_SECRET_ACCESS_KEY="parse-test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_MAX_ATTEMPTS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
    )
    run = subprocess.run(
        [sys.executable, "-c", PARSE_OFFLINE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    parsed = json.loads(run.stdout.strip().splitlines()[-1])
    assert parsed["attempts"] == []
    assert parsed["import_errors"] == {}
    assert parsed["dags"] == ["audio_transcription"]


def test_schedule_and_params(dag):
    assert dag.timetable.expression == "0 2 * * *"
    assert dag.catchup is False
    params = dag.params
    assert set(params.keys()) == {
        "bucket_uri",
        "batch_size",
        "max_files",
        "reprocess_failed",
        "summarize",
        "accept_empty_status_table",
    }
    for name in params:
        assert params.get_param(name).description, f"param {name} needs a description for the trigger form"
    assert params["batch_size"] == 100 and params["max_files"] == 0
    assert params["reprocess_failed"] is False and params["summarize"] is True
    assert params["accept_empty_status_table"] is False


def test_task_graph(dag):
    assert {t.task_id for t in dag.tasks} == {
        "resolve_run",
        "claim_new_audio",
        "transcribe.submit",
        "transcribe.await_transcripts",
        "transcribe.summarise",
        "report_run",
    }
    assert dag.get_task("transcribe.submit").upstream_task_ids == {"claim_new_audio", "resolve_run"}
    assert "transcribe.submit" in dag.get_task("transcribe.await_transcripts").upstream_task_ids
    assert "transcribe.await_transcripts" in dag.get_task("transcribe.summarise").upstream_task_ids
    report = dag.get_task("report_run")
    assert report.is_teardown and "transcribe.summarise" in report.upstream_task_ids


def test_operators_take_each_setting_as_an_xcom_of_the_first_task_of_its_own_type(dag):
    """No rendered template strings: each setting an operator takes is one key the first task
    pushes (multiple_outputs), so an int arrives as an int."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    from audio_pipeline.config import PipelineConfig

    pushed = PipelineConfig().run_xcom("s3://b/p/")
    assert dag.get_task("resolve_run").multiple_outputs
    for task_id in ("transcribe.submit", "transcribe.await_transcripts"):
        task = dag.get_task(task_id)
        settings = {
            name: getattr(task, name)
            for name in task.template_fields
            if isinstance(getattr(task, name, None), PlainXComArg) and name != "batch"
        }
        assert len(settings) >= 5, f"{task_id}: {sorted(settings)}"
        if task_id == "transcribe.submit":  # where it copies what it sends (pinning), from the first task
            assert {"inputs_path", "output_path"} <= set(settings), sorted(settings)
        for name, arg in settings.items():
            assert arg.operator.task_id == "resolve_run" and arg.key == name, f"{task_id}.{name}"
            assert name in pushed, f"{task_id}.{name} is no key of the first task's XCom"


def test_batches_are_mapped_with_readable_names(dag):
    for task_id in ("transcribe.submit", "transcribe.await_transcripts", "transcribe.summarise"):
        task = dag.get_task(task_id)
        assert task.map_index_template, f"{task_id} needs a map_index_template"
    assert dag.get_task("transcribe.await_transcripts").deferrable is True


def test_summaries_back_off_for_about_an_hour_with_the_worker_slot_free(dag):
    """Airflow's retries (the task ends between tries) with exponential backoff, from
    summary_retry_seconds; the other tasks keep the DAG's two one-minute retries."""
    from datetime import timedelta

    from audio_pipeline.summary_retries import RETRIES

    summarise = dag.get_task("transcribe.summarise")
    assert summarise.retries == RETRIES and summarise.retry_exponential_backoff == 2.0
    assert summarise.retry_delay == timedelta(minutes=1) and summarise.max_retry_delay == timedelta(minutes=15)
    assert getattr(summarise, "retry_policy", None) is not None or not hasattr(summarise, "has_retry_policy")
    assert dag.get_task("transcribe.submit").retries == 2


# -------------------------------------------------------- the first task, on moto


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}})
    )
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="audio-in")
        yield


def resolve(dag, bucket_uri, run_type="manual", **params):
    run = SimpleNamespace(run_type=run_type)
    return dag.get_task("resolve_run").python_callable(params={"bucket_uri": bucket_uri, **params}, dag_run=run)


def test_report_run_updates_the_run_manifests_asset(dag):
    from audio_pipeline.assets import RUN_MANIFESTS

    assert dag.get_task("report_run").outlets == [RUN_MANIFESTS]
    assert RUN_MANIFESTS.uri == "s3://audio-transcription-output/runs"


def test_a_nightly_run_without_a_bucket_uri_is_skipped_saying_why(dag, aws, caplog):
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="no bucket URI for the nightly run.*schedule_bucket_uri"):
        resolve(dag, None, run_type="scheduled")
    assert "no bucket URI for the nightly run" in caplog.text, "the task log says why, through the task's logger"


# ------------------------------------------------- the configuration, read once per run


def test_later_tasks_read_no_variable(dag, aws, monkeypatch, caplog):
    """Templated fields render the first task's XCom, and the tasks build their settings from it."""
    from airflow.sdk import Variable

    from audio_pipeline.assets import RUN_MANIFESTS
    from audio_pipeline.config import PipelineConfig
    from local.bootstrap import INPUT_BUCKET, bootstrap

    for task in dag.tasks:
        for name in task.template_fields:
            assert "var." not in str(getattr(task, name, "")), f"{task.task_id}.{name} renders a Variable"

    bootstrap(boto3.session.Session())
    boto3.client("s3").put_object(Bucket=INPUT_BUCKET, Key="calls/a.wav", Body=b"RIFF....WAVEfmt ")
    monkeypatch.setattr(Variable, "get", lambda *args, **kwargs: pytest.fail(f"Variable.get{args}"))
    run = PipelineConfig(max_batches=3).run_xcom(f"s3://{INPUT_BUCKET}/calls/")
    params = {"batch_size": 100, "max_files": 0, "reprocess_failed": False, "summarize": True}
    batches = dag.get_task("claim_new_audio").python_callable(run=run, params=params, run_id="run-1")
    assert [b["files"] for b in batches] == [1]
    assert "listed 1 objects: 1 audio files to consider" in caplog.text, "logged, not printed"
    events = defaultdict(SimpleNamespace)
    counts = dag.get_task("report_run").python_callable(run=run, run_id="run-1", outlet_events=events)
    assert counts == {"failed": 1}, "the teardown fails what the run left in flight"
    extra = events[RUN_MANIFESTS].extra
    assert extra["counts"] == counts and extra["run_id"] == "run-1"
    assert extra["manifest"] == f"s3://{run['output_bucket']}/runs/run-1/manifest.json"
    # the run's work and estimated cost, at the prices of the project's include/prices.json
    assert extra["work"]["audio_seconds"] == 0 and extra["estimated_cost_usd"]["total"] == 0
    assert extra["estimate"]["price_table"].startswith("prices.json as of ")
    assert extra["estimate"]["instance_type"] == run["endpoint_instance_type"]
    assert "estimated cost per audio hour: unknown" in caplog.text, "the log's last lines: the run's cost"


def test_the_claim_task_is_told_a_run_is_scheduled(dag, aws):
    """The DAG hands the run's type to the claim task: a nightly run claims at most schedule_max_files."""
    from audio_pipeline.config import PipelineConfig
    from local.bootstrap import INPUT_BUCKET, bootstrap

    bootstrap(boto3.session.Session())
    for i in range(3):
        boto3.client("s3").put_object(Bucket=INPUT_BUCKET, Key=f"calls/{i}.wav", Body=b"RIFF....WAVEfmt ")
    run = PipelineConfig(schedule_max_files=2).run_xcom(f"s3://{INPUT_BUCKET}/calls/")
    params = {"batch_size": 100, "max_files": 0, "reprocess_failed": False, "summarize": True}
    nightly = SimpleNamespace(run_type="scheduled")
    batches = dag.get_task("claim_new_audio").python_callable(run=run, params=params, run_id="n", dag_run=nightly)
    assert sum(b["files"] for b in batches) == 2


def test_readmes_trigger_form_table_is_the_dags_params(dag):
    """README's table of the trigger form's Params names each Param with its default, and no other."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("The UI's trigger form asks for the same Params:", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    documented = {name.strip().strip("`"): default.strip() for name, default in rows}

    def shown(value: object) -> str:
        return "(none)" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    params = {name: param.value for name, param in dag.params.items()}
    assert documented == {name: shown(value) for name, value in params.items()}
    assert all(dag.params.get_param(name).description for name in params), "each Param has a description"
