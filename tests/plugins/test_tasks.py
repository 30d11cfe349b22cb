"""The DAG's tasks as functions (audio_pipeline.tasks), on moto: what each does with a run's input,
and when it fails at once, is retried or is skipped."""

from __future__ import annotations

import json

import boto3
import pytest

from audio_pipeline import tasks
from audio_pipeline.summary_retries import RETRIES, SummariesThrottled
from tests.plugins.conftest import bedrock_hook
from tests.prompts import INCLUDE


@pytest.fixture
def aws(aws):
    """The plugin tests' moto, with an input bucket."""
    boto3.client("s3").create_bucket(Bucket="audio-in")
    return aws


def resolve(bucket_uri, run_type="manual", **params):
    return tasks.resolve_run({"bucket_uri": bucket_uri, **params}, run_type)


def claim(run, params, run_id, run_type=None, ti=None):
    return tasks.claim_new_audio(run, params, run_id, run_type, ti)


# ------------------------------------------------- the first task: the run's input, checked


@pytest.mark.parametrize(
    ("bucket_uri", "message"),
    [
        (None, "no bucket URI"),
        ("audio-in/calls/", "must start with s3://"),
        ("s3://Bad_Bucket/", "not a valid S3 bucket name"),
        ("s3://missing-bucket/calls/", "bucket 'missing-bucket' does not exist"),
    ],
)
def test_first_task_fails_with_a_clear_message_and_no_retries(aws, bucket_uri, message):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=message):
        resolve(bucket_uri)


def test_first_task_names_a_missing_endpoint(aws):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="endpoint 'audio-transcription-async' does not exist"):
        resolve("s3://audio-in/calls/")


def test_the_first_task_reads_the_configuration_once_and_hands_it_on(aws, monkeypatch):
    from airflow.sdk import Variable

    from local.bootstrap import INPUT_BUCKET, bootstrap

    bootstrap(boto3.session.Session())
    settings = {"max_batches": 8, "summary_concurrency": "2"}
    monkeypatch.setenv("AIRFLOW_VAR_AUDIO_PIPELINE_CONFIG", json.dumps(settings))
    reads = []
    real = Variable.get
    monkeypatch.setattr(Variable, "get", lambda key, *args, **kwargs: reads.append(key) or real(key, *args, **kwargs))

    run = resolve(f"s3://{INPUT_BUCKET}/calls/")

    assert reads == ["audio_pipeline_config"], "one Variable, one secrets lookup"
    assert run["bucket_uri"] == f"s3://{INPUT_BUCKET}/calls/"
    assert run["max_batches"] == 8 and run["summary_concurrency"] == 2
    assert run["endpoint_name"] == "audio-transcription-async", "unset settings take their defaults"
    assert run["result_window_seconds"] == 21600 + 900 + 300 and isinstance(run["request_ttl_seconds"], int)
    assert len(json.dumps(run)) < 2048, "a small XCom"


# ------------------------------------------- the summarising task: retry or fail at once


@pytest.fixture
def summarise(aws, monkeypatch):
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

    monkeypatch.setattr(tasks, "AdaptiveBedrockRuntimeHook", lambda **kwargs: bedrock_hook(bedrock))
    run = config.run_xcom("s3://audio-in/calls/")
    yield (
        lambda try_number=1: tasks.summarise(batch, run, {"summarize": True}, "run-1", INCLUDE / "prompts", try_number),
        stub,
    )
    stub.deactivate()


def test_a_summary_bedrock_rejects_fails_the_task_at_once(summarise):
    """A retry would be rejected the same way: no retries, the transcript stays with its summary_error."""
    from airflow.sdk.exceptions import AirflowFailException

    run, stub = summarise
    stub.add_client_error("converse", "ValidationException", "Input is too long for requested model.", 400)
    with pytest.raises(AirflowFailException, match="errors a retry cannot fix"):
        run()
    stub.assert_no_pending_responses()


def test_throttling_that_outlasts_its_retries_retries_the_task(summarise):
    from airflow.sdk.exceptions import AirflowFailException

    run, stub = summarise
    stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429)  # past botocore's retries
    with pytest.raises(SummariesThrottled, match="retrying them: retry 1 of 7 in about 60 s") as raised:
        run()
    assert not isinstance(raised.value, AirflowFailException)
    stub.assert_no_pending_responses()


def test_throttling_past_the_last_retry_leaves_the_transcript_waiting_without_failing_the_run(summarise, caplog):
    """After about summary_retry_seconds of throttling the task is skipped, not failed (the run
    goes on to report), saying so; the transcript keeps its summary_error for the next run."""
    from airflow.sdk.exceptions import AirflowSkipException

    from audio_pipeline.config import PipelineConfig
    from audio_pipeline.ledger import Ledger, Status

    run, stub = summarise
    stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429)
    with pytest.raises(AirflowSkipException, match="the next run takes them, whatever prefix it lists"):
        run(try_number=RETRIES + 1)
    assert "wait for their summary" in caplog.text, "the task log says why it was skipped"
    config = PipelineConfig()
    (record,) = Ledger(boto3.client("dynamodb"), config.status_table).waiting_for_summary()
    assert record.status == Status.COMPLETED and "ThrottlingException" in (record.summary_error or "")


def test_the_claim_task_takes_over_the_files_of_a_run_airflow_reports_ended(aws):
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


def test_the_first_task_refuses_an_empty_status_table_after_runs_that_claimed_files(aws):
    """The table was deleted and recreated: every file would look new. The run fails at once,
    saying so, unless triggered with accept_empty_status_table."""
    from airflow.sdk.exceptions import AirflowFailException

    from audio_pipeline.config import PipelineConfig
    from local.bootstrap import INPUT_BUCKET, bootstrap

    bootstrap(boto3.session.Session())
    config = PipelineConfig()
    uri = f"s3://{INPUT_BUCKET}/calls/"
    assert resolve(uri)["bucket_uri"] == uri, "no earlier run: an empty table is a new one"
    boto3.client("s3").put_object(Bucket=config.output_bucket, Key="runs/old-run/batches/1.json", Body=b"{}")

    with pytest.raises(AirflowFailException, match=r"status table 'audio-transcription-status' is empty.*old-run"):
        resolve(uri)
    with pytest.raises(AirflowFailException, match="accept_empty_status_table"):
        resolve(uri, accept_empty_status_table=False)
    assert resolve(uri, accept_empty_status_table=True)["bucket_uri"] == uri


def _claim_setup(keys):
    from audio_pipeline.config import PipelineConfig
    from local.bootstrap import INPUT_BUCKET, bootstrap

    bootstrap(boto3.session.Session())
    for key in keys:
        boto3.client("s3").put_object(Bucket=INPUT_BUCKET, Key=key, Body=b"RIFF....WAVEfmt ")
    return PipelineConfig(schedule_max_files=2).run_xcom(f"s3://{INPUT_BUCKET}/calls/")


def test_the_nightly_run_claims_at_most_schedule_max_files(aws):
    """A scheduled run with max_files 0 claims schedule_max_files; a trigger's max_files decides for
    its own run, and a manual run without one claims everything."""
    run = _claim_setup([f"calls/{i}.wav" for i in range(8)])
    params = {"batch_size": 100, "max_files": 0, "reprocess_failed": False, "summarize": True}

    def files(batches):
        return sum(b["files"] for b in batches)

    assert files(claim(run=run, params=params, run_id="nightly-1", run_type="scheduled")) == 2
    assert files(claim(run=run, params={**params, "max_files": 3}, run_id="nightly-2", run_type="scheduled")) == 3
    assert files(claim(run=run, params=params, run_id="manual-1", run_type="manual")) == 3, "the rest, over 2"


def test_the_claim_task_fails_at_once_on_a_bucket_uri_with_no_audio(aws):
    from airflow.sdk.exceptions import AirflowFailException

    run = _claim_setup(["calls/notes.txt"])
    params = {"batch_size": 100, "max_files": 0, "reprocess_failed": False, "summarize": True}
    with pytest.raises(AirflowFailException, match=r"calls/: listed 1 objects, no audio file.*notes.txt"):
        claim(run, params, "run-1")


# ------------------------------------------------- the last task: the run's work and estimated cost


def test_a_price_table_it_cannot_read_fails_the_report_once_the_run_is_settled(aws, tmp_path):
    """The price table is the user's to edit: a broken one fails the report saying what it needs
    (a retry would read the same file), but only after the run's claimed files are settled and its
    manifest written: an estimate never holds up the work."""
    from airflow.sdk.exceptions import AirflowFailException

    from audio_pipeline.config import PipelineConfig
    from audio_pipeline.ledger import Ledger

    run = _claim_setup(["calls/a.wav"])
    params = {"batch_size": 100, "max_files": 0, "reprocess_failed": False, "summarize": True}
    assert claim(run=run, params=params, run_id="run-1", run_type="manual")
    broken = tmp_path / "prices.json"
    broken.write_text('{"as_of": "2026-01"')
    with pytest.raises(AirflowFailException, match=r"price table .*prices.json is unusable.*usd_per_hour.*settled"):
        tasks.report_run(run, "run-1", None, broken)
    config = PipelineConfig()
    ledger = Ledger(boto3.client("dynamodb"), config.status_table)
    (uri,) = [r.uri for r in ledger.run_records("run-1")]
    record = ledger.get([uri])[uri]
    assert record.status.value == "failed" and record.never_sent, record
    key = f"{config.run_prefix('run-1')}manifest.json"
    manifest = json.loads(boto3.client("s3").get_object(Bucket=config.output_bucket, Key=key)["Body"].read())
    assert manifest["counts"] == {"failed": 1}
