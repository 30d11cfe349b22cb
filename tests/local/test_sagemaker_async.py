from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.sagemaker_async.requests import Journal
from local.sagemaker_async.server import RuntimeServer
from local.sagemaker_async.service import AsyncInferenceService, Faults

from .conftest import REGION, drain


def start_emulator(model_server, state_dir, faults=None):
    service = AsyncInferenceService(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        sns=boto3.client("sns"),
        region=REGION,
        model_url=f"http://127.0.0.1:{model_server.server_address[1]}",
        journal=Journal(state_dir / "journal"),
        faults=faults or Faults(),
    )
    server = RuntimeServer(("127.0.0.1", 0), service)
    service.resume()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        config=Config(retries={"max_attempts": 1}),
    )
    return server, runtime


@pytest.fixture
def emulator(async_endpoint, model_server, tmp_path):
    server, runtime = start_emulator(model_server, tmp_path)
    yield runtime
    server.shutdown()
    server.server_close()


def test_accepts_like_sagemaker_and_publishes_the_documented_success(async_endpoint, emulator):
    s3, sqs = async_endpoint["s3"], async_endpoint["sqs"]
    s3.put_object(Bucket="audio-in", Key="calls/one.wav", Body=b"audio bytes")
    response = emulator.invoke_endpoint_async(
        EndpointName="asr",
        InputLocation="s3://audio-in/calls/one.wav",
        ContentType="audio/wav",
        InferenceId="my-id-1",
        RequestTTLSeconds=600,
        InvocationTimeoutSeconds=60,
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["InferenceId"] == "my-id-1"
    assert response["OutputLocation"].startswith("s3://audio-out/transcripts/") and response["OutputLocation"].endswith(
        ".out"
    )
    assert response["FailureLocation"].startswith("s3://audio-out/failures/")
    (note,) = drain(sqs, async_endpoint["queue_url"], 1)
    assert note["invocationStatus"] == "Completed" and note["inferenceId"] == "my-id-1"
    assert note["requestParameters"] == {
        "contentType": "audio/wav",
        "endpointName": "asr",
        "inputLocation": "s3://audio-in/calls/one.wav",
    }
    assert note["responseParameters"]["outputLocation"] == response["OutputLocation"]
    assert {"awsRegion", "eventTime", "receivedTime", "eventVersion", "eventSource", "eventName"} <= set(note)
    key = response["OutputLocation"][len("s3://audio-out/") :]
    assert json.loads(s3.get_object(Bucket="audio-out", Key=key)["Body"].read())["text"]


def test_model_error_becomes_failure_notification_without_response_parameters(async_endpoint, emulator):
    s3, sqs = async_endpoint["s3"], async_endpoint["sqs"]
    s3.put_object(Bucket="audio-in", Key="bad.wav", Body=b"...FAIL-ME...")
    s3.put_object(Bucket="audio-in", Key="empty.wav", Body=b"")
    emulator.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/bad.wav", InferenceId="bad")
    failed = emulator.invoke_endpoint_async(
        EndpointName="asr", InputLocation="s3://audio-in/empty.wav", InferenceId="empty"
    )
    notes = {n["inferenceId"]: n for n in drain(sqs, async_endpoint["queue_url"], 2)}
    assert notes["bad"]["invocationStatus"] == "Failed" and "responseParameters" not in notes["bad"]
    assert notes["bad"]["failureReason"].startswith("ClientError: Received server error (500) from primary")
    assert "Received client error (400)" in notes["empty"]["failureReason"]
    key = failed["FailureLocation"][len("s3://audio-out/") :]
    assert b"empty request body" in s3.get_object(Bucket="audio-out", Key=key)["Body"].read()


def test_missing_input_fails_with_a_reason(async_endpoint, emulator):
    emulator.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/nope.wav", InferenceId="nope")
    (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
    assert note["invocationStatus"] == "Failed" and "s3://audio-in/nope.wav" in note["failureReason"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"EndpointName": "nope", "InputLocation": "s3://audio-in/a.wav"}, "Endpoint nope"),
        ({"EndpointName": "asr", "InputLocation": "https://example.com/a.wav"}, "must be an S3 URI"),
    ],
)
def test_validation_errors_are_what_botocore_expects(emulator, kwargs, message):
    with pytest.raises(ClientError) as err:
        emulator.invoke_endpoint_async(**kwargs)
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert message in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_out_of_range_headers_are_rejected_by_the_server_too(emulator):
    """botocore validates ranges client-side; other clients rely on the server."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        emulator.meta.endpoint_url + "/endpoints/asr/async-invocations",
        method="POST",
        data=b"",
        headers={"X-Amzn-SageMaker-InputLocation": "s3://audio-in/a.wav", "X-Amzn-SageMaker-RequestTTLSeconds": "30"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request)
    assert (
        err.value.code == 400 and err.value.headers["x-amzn-ErrorType"].split(":")[0] == "ValidationError"
    )  # as botocore reads it
    assert "between 60 and 21600" in json.loads(err.value.read())["message"]


def test_concurrency_is_the_endpoints(async_endpoint, emulator):
    s3 = async_endpoint["s3"]
    for i in range(8):
        s3.put_object(Bucket="audio-in", Key=f"{i}.wav", Body=b"audio")
        emulator.invoke_endpoint_async(EndpointName="asr", InputLocation=f"s3://audio-in/{i}.wav")
    assert len(drain(async_endpoint["sqs"], async_endpoint["queue_url"], 8)) == 8
    health = json.loads(
        __import__("urllib.request").request.urlopen(emulator.meta.endpoint_url + "/_emulator/health").read()
    )
    stats = health["endpoints"]["asr"]
    assert stats["concurrency"] == 2 and 1 <= stats["max_in_flight"] <= 2
    assert stats["completed"] == 8 and stats["model_busy_seconds"] >= 8 * 0.05


def test_model_down_then_back(async_endpoint, emulator, model_server, monkeypatch):
    import local.sagemaker_async.service as service

    monkeypatch.setattr(service, "MODEL_CONNECT_RETRIES", 1)
    async_endpoint["s3"].put_object(Bucket="audio-in", Key="a.wav", Body=b"audio")
    port = model_server.server_address[1]
    model_server.shutdown()
    model_server.server_close()
    emulator.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/a.wav", InferenceId="down")
    (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
    assert note["invocationStatus"] == "Failed" and "calling the model" in note["failureReason"]
    from model_server.backends.benchmark import BenchmarkBackend
    from model_server.server import serve

    revived = serve("127.0.0.1", port, BenchmarkBackend(service_seconds=0.01))
    threading.Thread(target=revived.serve_forever, daemon=True).start()
    try:
        emulator.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/a.wav", InferenceId="up")
        (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
        assert note["invocationStatus"] == "Completed"
    finally:
        revived.shutdown()
        revived.server_close()


def test_restart_resumes_journaled_requests(async_endpoint, model_server, tmp_path):
    from local.sagemaker_async.requests import build_request

    service_before = AsyncInferenceService(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        sns=boto3.client("sns"),
        region=REGION,
        model_url="http://unused",
        journal=Journal(tmp_path / "journal"),
    )
    async_endpoint["s3"].put_object(Bucket="audio-in", Key="a.wav", Body=b"audio")
    endpoint = service_before.endpoints.get("asr")
    request = build_request(endpoint, {"x-amzn-sagemaker-inputlocation": "s3://audio-in/a.wav"}, time.time())
    service_before.journal.add(request)  # accepted, then the process died before working on it
    server, _ = start_emulator(model_server, tmp_path)
    try:
        (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
        assert note["inferenceId"] == request.inference_id and note["invocationStatus"] == "Completed"
        assert list((tmp_path / "journal").glob("*.json")) == []
    finally:
        server.shutdown()
        server.server_close()


def test_ttl_expiry(async_endpoint, model_server, tmp_path):
    clock = [1000.0]
    service = AsyncInferenceService(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        sns=boto3.client("sns"),
        region=REGION,
        model_url=f"http://127.0.0.1:{model_server.server_address[1]}",
        journal=Journal(tmp_path / "j"),
        clock=lambda: clock[0],
    )
    from local.sagemaker_async.requests import build_request

    request = build_request(
        service.endpoints.get("asr"),
        {"x-amzn-sagemaker-inputlocation": "s3://audio-in/a.wav", "x-amzn-sagemaker-requestttlseconds": "60"},
        1000.0,
    )
    clock[0] = 1100.0
    service.journal.add(request)
    service.resume()
    (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
    assert note["invocationStatus"] == "Failed" and "RequestTTLSeconds" in note["failureReason"]


def test_fault_injection_is_off_by_default_and_works_when_on(async_endpoint, model_server, tmp_path):
    assert Faults() == Faults(0.0, 0.0)
    server, runtime = start_emulator(model_server, tmp_path, Faults(duplicate_notifications=1.0))
    try:
        async_endpoint["s3"].put_object(Bucket="audio-in", Key="a.wav", Body=b"audio")
        runtime.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/a.wav", InferenceId="twice")
        notes = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 2)
        assert [n["inferenceId"] for n in notes] == ["twice", "twice"]
    finally:
        server.shutdown()
        server.server_close()
