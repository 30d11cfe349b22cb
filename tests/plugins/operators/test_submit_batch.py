from __future__ import annotations

import boto3
import pytest

from audio_pipeline.batches import BatchManifests
from audio_pipeline.ledger import Status, inference_id_for
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from audio_pipeline.pinning import pinned_location
from audio_pipeline.s3_uris import split_s3_uri
from tests.plugins.conftest import CONFIG, REGION, put_audio

RUN_1 = {"run_id": "run-1"}
"""The task's context: the DAG run that claimed the ``batch`` fixture's files."""


def pinned_batch(s3, ledger):
    """Three audio objects in S3 claimed by ``run-1`` (their real ETags) in one batch manifest: what
    the submitter copies (the claimed version) and sends."""
    files = []
    for i in range(3):
        head = put_audio(s3, f"calls/{i}.flac", body=f"flac {i}".encode())
        files.append({**head, "inference_id": inference_id_for(head["uri"], head["etag"], "run-1")})
    claimed = ledger.claim(files, "run-1", lease_seconds=CONFIG.result_window_seconds)
    assert sorted(claimed.applied) == sorted(f["uri"] for f in files)
    (ref,) = BatchManifests(s3, CONFIG.output_bucket, "runs/run-1/").write(files, len(files), 10, 1)
    return files, ref


@pytest.fixture
def batch(s3, ledger):
    return pinned_batch(s3, ledger)


def pinned(f) -> str:
    return pinned_location(CONFIG.inputs_path, f["inference_id"], f["uri"])


def sent_bytes(call) -> bytes:
    bucket, key = split_s3_uri(call["InputLocation"])
    return boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()


def submit_operator(ref, **kwargs):
    return SubmitTranscriptionBatchOperator(
        task_id="submit",
        batch=ref,
        endpoint_name="audio-transcription-async",
        status_table=CONFIG.status_table,
        request_ttl_seconds=600,
        invocation_timeout_seconds=60,
        result_window_seconds=600 + 60 + 30,
        output_path=CONFIG.output_path,
        inputs_path=CONFIG.inputs_path,
        **kwargs,
    )


def test_operator_submits_the_batch(batch, runtime, ledger):
    files, ref = batch
    result = submit_operator(ref).execute(RUN_1)
    assert result == {"submitted": 3, "failed": 0, "unclear": 0, "already_done": 0}
    assert [c["InputLocation"] for c in runtime.calls] == [pinned(f) for f in files]
    assert [sent_bytes(c) for c in runtime.calls] == [f"flac {i}".encode() for i in range(3)], "the claimed version"
    assert {c["ContentType"] for c in runtime.calls} == {"audio/flac"}
    records = ledger.get(f["uri"] for f in files)
    assert {(r.status, r.run_id) for r in records.values()} == {(Status.SUBMITTED, "run-1")}
    assert submit_operator(ref).execute(RUN_1)["already_done"] == 3, "never sent twice"
    assert len(runtime.calls) == 3


def test_operator_of_another_run_sends_nothing(batch, runtime, ledger):
    """The run id comes from the task's context: a task of a run that does not hold the files
    (its claim was taken over) sends none of them."""
    files, ref = batch
    result = submit_operator(ref).execute({"run_id": "run-2"})
    assert result == {"submitted": 0, "failed": 0, "unclear": 0, "already_done": 3}
    assert runtime.calls == []
    assert {r.status for r in ledger.get(f["uri"] for f in files).values()} == {Status.PROCESSING}


def test_the_operators_botocore_config_reaches_every_client_it_makes(batch, runtime, monkeypatch):
    from audio_pipeline.operators import submit_batch

    configs = {}

    def spy(name):
        class Spy(getattr(submit_batch, name)):
            def __init__(self, *args, **kwargs):
                configs[name] = kwargs.get("config")
                super().__init__(*args, **kwargs)

        return Spy

    for name in ("S3Hook", "StatusTableHook"):
        monkeypatch.setattr(submit_batch, name, spy(name))
    operator = submit_operator(batch[1])
    operator.botocore_config = {"read_timeout": 7}
    operator.execute(RUN_1)
    assert configs == {"S3Hook": {"read_timeout": 7}, "StatusTableHook": {"read_timeout": 7}}


def test_operator_template_fields():
    assert {"batch", "endpoint_name", "status_table", "aws_conn_id"} <= set(
        SubmitTranscriptionBatchOperator.template_fields
    )
