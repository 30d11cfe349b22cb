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


@pytest.mark.parametrize(
    ("bucket_uri", "message"),
    [
        (None, "no bucket URI"),
        ("audio-in/calls/", "must start with s3://"),
        ("s3://Bad_Bucket/", "not a valid S3 bucket name"),
        ("s3://missing-bucket/calls/", "bucket 'missing-bucket' does not exist"),
    ],
)
def test_first_task_fails_with_a_clear_message_and_no_retries(dag, aws, bucket_uri, message):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=message):
        resolve(dag, bucket_uri)


def test_first_task_names_a_missing_endpoint(dag, aws):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="endpoint 'audio-transcription-async' does not exist"):
        resolve(dag, "s3://audio-in/calls/")


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


def test_the_first_task_reads_the_configuration_once_and_hands_it_on(dag, aws, monkeypatch):
    from airflow.sdk import Variable

    from local.bootstrap import INPUT_BUCKET, bootstrap

    bootstrap(boto3.session.Session())
    settings = {"max_batches": 8, "summary_concurrency": "2"}
    monkeypatch.setenv("AIRFLOW_VAR_AUDIO_PIPELINE_CONFIG", json.dumps(settings))
    reads = []
    real = Variable.get
    monkeypatch.setattr(Variable, "get", lambda key, *args, **kwargs: reads.append(key) or real(key, *args, **kwargs))

    run = resolve(dag, f"s3://{INPUT_BUCKET}/calls/")

    assert reads == ["audio_pipeline_config"], "one Variable, one secrets lookup"
    assert run["bucket_uri"] == f"s3://{INPUT_BUCKET}/calls/"
    assert run["max_batches"] == 8 and run["summary_concurrency"] == 2
    assert run["endpoint_name"] == "audio-transcription-async", "unset settings take their defaults"
    assert run["result_window_seconds"] == 21600 + 900 + 300 and isinstance(run["request_ttl_seconds"], int)
    assert len(json.dumps(run)) < 2048, "a small XCom"


def test_later_tasks_read_no_variable(dag, aws, monkeypatch, caplog):
    """Templated fields render the first task's XCom, and the tasks build their settings from it."""
    from airflow.sdk import Variable

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


# ------------------------------------------- the summarising task: retry or fail at once


@pytest.fixture
def summarise(dag, aws, monkeypatch):
    """The summarise task's callable over moto S3 and DynamoDB, Bedrock stubbed; one transcribed file."""
    from botocore.stub import Stubber

    from audio_pipeline.batches import BatchManifests
    from audio_pipeline.config import PipelineConfig
    from audio_pipeline.ledger import Ledger, Result, Status, inference_id_for, table_definition

    config = PipelineConfig()
    s3, ddb = boto3.client("s3"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=config.output_bucket)
    ddb.create_table(TableName=config.status_table, **table_definition())
    ledger = Ledger(ddb, config.status_table)
    uri = "s3://audio-in/calls/a.wav"
    f = {"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")}
    ledger.claim([f], "run-1", lease_seconds=config.result_window_seconds)
    s3.put_object(Bucket=config.output_bucket, Key="transcripts/a.out", Body=b'{"text": "a call"}')
    out = f"{config.output_path}a.out"
    assert ledger.record_results([Result(uri, f["inference_id"], output_location=out)]).applied == [uri]
    assert ledger.get([uri])[uri].status == Status.COMPLETED
    (batch,) = BatchManifests(s3, config.output_bucket, "runs/run-1/").write([f], 1, 10, 1)

    bedrock = boto3.client("bedrock-runtime")
    stub = Stubber(bedrock)
    stub.activate()

    class StubbedBedrock:
        def __init__(self, **kwargs):
            self.conn = bedrock

    fn = dag.get_task("transcribe.summarise").python_callable
    monkeypatch.setitem(fn.__globals__, "AdaptiveBedrockRuntimeHook", StubbedBedrock)
    monkeypatch.setitem(fn.__globals__, "get_current_context", lambda: {})
    run = config.run_xcom("s3://audio-in/calls/")
    yield lambda: fn(batch, run=run, params={"summarize": True}, run_id="run-1"), stub
    stub.deactivate()


def test_a_summary_bedrock_rejects_fails_the_task_at_once(summarise):
    """A retry would be rejected the same way: no retries, the transcript stays with its summary_error."""
    from airflow.sdk.exceptions import AirflowFailException

    run, stub = summarise
    stub.add_client_error("converse", "ValidationException", "Input is too long for requested model.", 400)
    with pytest.raises(AirflowFailException, match="errors a retry cannot fix"):
        run()


def test_throttling_that_outlasts_its_retries_retries_the_task(summarise):
    from airflow.sdk.exceptions import AirflowFailException

    run, stub = summarise
    stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429)  # past botocore's retries
    with pytest.raises(Exception, match="retrying them") as raised:
        run()
    assert not isinstance(raised.value, AirflowFailException)


def test_the_claim_task_takes_over_the_files_of_a_run_airflow_reports_ended(dag, aws):
    """run-1 was marked failed with a file still in flight: run-2's claim task asks Airflow for
    run-1's state (once) and takes the file over with its inference id, before its lease ends."""
    from audio_pipeline.batches import read_manifest
    from audio_pipeline.config import PipelineConfig
    from audio_pipeline.ledger import Ledger
    from local.bootstrap import INPUT_BUCKET, bootstrap

    bootstrap(boto3.session.Session())
    boto3.client("s3").put_object(Bucket=INPUT_BUCKET, Key="calls/a.wav", Body=b"RIFF....WAVEfmt ")
    run = {"bucket_uri": f"s3://{INPUT_BUCKET}/calls/", "config": PipelineConfig().to_dict()}
    params = {"batch_size": 100, "max_files": 0, "reprocess_failed": False, "summarize": True}
    claim = dag.get_task("claim_new_audio").python_callable
    (first,) = claim(run=run, params=params, run_id="run-1")
    asked = []

    class TaskInstance:
        dag_id = "audio_transcription"

        @staticmethod
        def get_dagrun_state(dag_id, run_id):
            asked.append((dag_id, run_id))
            return "failed"

    (second,) = claim(run=run, params=params, run_id="run-2", ti=TaskInstance())

    assert second["files"] == 1 and asked == [("audio_transcription", "run-1")]
    ledger = Ledger(boto3.client("dynamodb"), PipelineConfig().status_table)
    record = ledger.get([f"s3://{INPUT_BUCKET}/calls/a.wav"])[f"s3://{INPUT_BUCKET}/calls/a.wav"]
    assert record.run_id == "run-2" and record.status == "processing"
    assert record.inference_id == read_manifest(boto3.client("s3"), first["manifest"])[0]["inference_id"]
    assert claim(run=run, params=params, run_id="run-3") == [], "without Airflow's word, the lease decides"


# ------------------------------------------------- a reset status table, an empty bucket URI


def test_the_first_task_refuses_an_empty_status_table_after_runs_that_claimed_files(dag, aws):
    """The table was deleted and recreated: every file would look new. The run fails at once,
    saying so, unless triggered with accept_empty_status_table."""
    from airflow.sdk.exceptions import AirflowFailException

    from audio_pipeline.config import PipelineConfig
    from local.bootstrap import INPUT_BUCKET, bootstrap

    bootstrap(boto3.session.Session())
    config = PipelineConfig()
    uri = f"s3://{INPUT_BUCKET}/calls/"
    assert resolve(dag, uri)["bucket_uri"] == uri, "no earlier run: an empty table is a new one"
    boto3.client("s3").put_object(Bucket=config.output_bucket, Key="runs/old-run/batches/1.json", Body=b"{}")

    with pytest.raises(AirflowFailException, match=r"status table 'audio-transcription-status' is empty.*old-run"):
        resolve(dag, uri)
    with pytest.raises(AirflowFailException, match="accept_empty_status_table"):
        resolve(dag, uri, accept_empty_status_table=False)
    assert resolve(dag, uri, accept_empty_status_table=True)["bucket_uri"] == uri


def _claim_setup(keys):
    from audio_pipeline.config import PipelineConfig
    from local.bootstrap import INPUT_BUCKET, bootstrap

    bootstrap(boto3.session.Session())
    for key in keys:
        boto3.client("s3").put_object(Bucket=INPUT_BUCKET, Key=key, Body=b"RIFF....WAVEfmt ")
    return PipelineConfig(schedule_max_files=2).run_xcom(f"s3://{INPUT_BUCKET}/calls/")


def test_the_nightly_run_claims_at_most_schedule_max_files(dag, aws):
    """A scheduled run with max_files 0 claims schedule_max_files; a trigger's max_files decides for
    its own run, and a manual run without one claims everything."""
    run = _claim_setup([f"calls/{i}.wav" for i in range(8)])
    claim = dag.get_task("claim_new_audio").python_callable
    params = {"batch_size": 100, "max_files": 0, "reprocess_failed": False, "summarize": True}

    def files(batches):
        return sum(b["files"] for b in batches)

    nightly = SimpleNamespace(run_type="scheduled")
    assert files(claim(run=run, params=params, run_id="nightly-1", dag_run=nightly)) == 2
    assert files(claim(run=run, params={**params, "max_files": 3}, run_id="nightly-2", dag_run=nightly)) == 3
    manual = SimpleNamespace(run_type="manual")
    assert files(claim(run=run, params=params, run_id="manual-1", dag_run=manual)) == 3, "the rest, over 2"


def test_the_claim_task_fails_at_once_on_a_bucket_uri_with_no_audio(dag, aws):
    from airflow.sdk.exceptions import AirflowFailException

    run = _claim_setup(["calls/notes.txt"])
    params = {"batch_size": 100, "max_files": 0, "reprocess_failed": False, "summarize": True}
    with pytest.raises(AirflowFailException, match=r"calls/: listed 1 objects, no audio file.*notes.txt"):
        dag.get_task("claim_new_audio").python_callable(run=run, params=params, run_id="run-1")
