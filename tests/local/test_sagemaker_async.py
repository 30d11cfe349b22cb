from __future__ import annotations

import base64
import json
import os
import re
import sys
import threading
import time
from contextlib import contextmanager

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from local.sagemaker_async.constraints import constraints
from local.sagemaker_async.requests import Journal
from local.sagemaker_async.server import RuntimeServer
from local.sagemaker_async.service import AsyncInferenceService, Faults
from tests.moto_server import free_port

from .conftest import REGION, drain, running_model_server, serving_process, url_of

ENVELOPE = {"awsRegion", "eventTime", "receivedTime", "invocationStatus", "requestParameters", "inferenceId"}
ENVELOPE |= {"eventVersion", "eventSource", "eventName"}
SUCCESS_FIELDS = ENVELOPE | {"responseParameters"}
FAILURE_FIELDS = ENVELOPE | {"failureReason"}


@contextmanager
def running_emulator(model_url, state_dir, **options):
    """The emulator in this process, and a boto3 sagemaker-runtime client pointed at it."""
    service = AsyncInferenceService(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        sns=boto3.client("sns"),
        region=REGION,
        model_url=model_url,
        journal=Journal(state_dir / "journal"),
        **options,
    )
    server = RuntimeServer(("127.0.0.1", 0), service)
    service.resume()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield boto3.client("sagemaker-runtime", endpoint_url=url_of(server), config=Config(retries={"max_attempts": 1}))
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def emulator(async_endpoint, model_server, tmp_path):
    with running_emulator(url_of(model_server), tmp_path) as runtime:
        yield runtime


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
    assert set(note) == SUCCESS_FIELDS and note["responseParameters"]["contentType"] == "application/json"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", note["eventTime"])
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
    assert set(notes["bad"]) == set(notes["empty"]) == FAILURE_FIELDS
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
        # botocore checks only the lower bounds of lengths and numbers: these reach the server, which
        # answers as sagemaker-runtime does ("1 validation error detected: Value '...' at 'member'
        # failed to satisfy constraint: Member must ...")
        (
            {"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav", "InferenceId": "x" * 65},
            f"Value '{'x' * 65}' at 'inferenceId' failed to satisfy constraint: Member must have length less than or "
            "equal to 64",
        ),
        (
            {"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav", "InferenceId": "id-é"},
            "at 'inferenceId' failed to satisfy constraint: Member must satisfy regular expression pattern",
        ),
        (
            {"EndpointName": "asr", "InputLocation": "s3://audio-in/" + "k" * 1011},
            "at 'inputLocation' failed to satisfy constraint: Member must have length less than or equal to 1024",
        ),
        (
            {"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav", "RequestTTLSeconds": 21601},
            "Value '21601' at 'requestTTLSeconds' failed to satisfy constraint: Member must have value less than or "
            "equal to 21600",
        ),
        (
            {"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav", "InvocationTimeoutSeconds": 3601},
            "at 'invocationTimeoutSeconds' failed to satisfy constraint: Member must have value less than or equal "
            "to 3600",
        ),
        (
            {"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav", "Filename": "a.b.out"},
            "at 'filename' failed to satisfy constraint: Member must satisfy regular expression pattern",
        ),
        (
            {"EndpointName": "asr", "InputLocation": "s3://a/b", "S3OutputPathExtension": "s3://x"},
            "at 's3OutputPathExtension' failed to satisfy constraint",
        ),
        (
            {"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav", "ContentType": "audio/wäv"},
            "at 'contentType' failed to satisfy constraint: Member must satisfy regular expression pattern",
        ),
        (  # sensitive: the value is not repeated
            {"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav", "CustomAttributes": "c" * 1025},
            "1 validation error detected: Value at 'customAttributes' failed to satisfy constraint: Member must have "
            "length less than or equal to 1024",
        ),
        (
            {"EndpointName": "bad_name", "InputLocation": "s3://audio-in/a.wav", "RequestTTLSeconds": 21601},
            "2 validation errors detected: Value 'bad_name' at 'endpointName' failed to satisfy constraint",
        ),
        # Body and InputLocation: exactly one, and an inline Body of at most 128,000 bytes
        ({"EndpointName": "asr"}, "exactly one of Body"),
        ({"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav", "Body": b"x"}, "exactly one of Body"),
        (
            {"EndpointName": "asr", "Body": b"x" * 128_001},
            "Value at 'body' failed to satisfy constraint: Member must have length less than or equal to 128000",
        ),
    ],
)
def test_validation_errors_are_what_botocore_expects(emulator, kwargs, message):
    with pytest.raises(ClientError) as err:
        emulator.invoke_endpoint_async(**kwargs)
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert message in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def _value_of_length(member, length):
    """A value of ``member`` that meets its pattern, ``length`` bytes long."""
    if member == "InputLocation":
        return "s3://audio-in/" + "k" * (length - len("s3://audio-in/"))
    return "a" * length


@pytest.mark.parametrize("member", [name for name, c in constraints().items() if c.header and c.maximum])
def test_every_upper_bound_of_botocores_model_is_enforced_exactly(emulator, member):
    """At the model's bound the request is accepted, one past it rejected, naming the bound."""
    constraint = constraints()[member]
    bound = constraint.maximum
    request = {"EndpointName": "asr", "InputLocation": "s3://audio-in/a.wav"}

    def value(n):
        return n if constraint.integer else _value_of_length(member, n)

    accepted = emulator.invoke_endpoint_async(**{**request, member: value(bound)})
    assert accepted["ResponseMetadata"]["HTTPStatusCode"] == 202
    with pytest.raises(ClientError) as err:
        emulator.invoke_endpoint_async(**{**request, member: value(bound + 1)})
    clause = f"Member must have {'value' if constraint.integer else 'length'} less than or equal to {bound}"
    assert f"at '{constraint.field}' failed to satisfy constraint: {clause}" in err.value.response["Error"]["Message"]


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
    assert json.loads(err.value.read())["message"] == (
        "1 validation error detected: Value '30' at 'requestTTLSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 60"
    )


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
    with running_model_server(0.01, port):
        emulator.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/a.wav", InferenceId="up")
        (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
        assert note["invocationStatus"] == "Completed"


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
    with running_emulator(url_of(model_server), tmp_path):
        (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
        assert note["inferenceId"] == request.inference_id and note["invocationStatus"] == "Completed"
        assert list((tmp_path / "journal").glob("*.json")) == []


def test_ttl_expiry(async_endpoint, model_server, tmp_path):
    clock = [1000.0]
    service = AsyncInferenceService(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        sns=boto3.client("sns"),
        region=REGION,
        model_url=url_of(model_server),
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
    with running_emulator(url_of(model_server), tmp_path, faults=Faults(duplicate_notifications=1.0)) as runtime:
        async_endpoint["s3"].put_object(Bucket="audio-in", Key="a.wav", Body=b"audio")
        runtime.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/a.wav", InferenceId="twice")
        notes = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 2)
        assert [n["inferenceId"] for n in notes] == ["twice", "twice"]


def test_botocore_itself_rejects_values_under_the_lower_bounds(emulator):
    with pytest.raises(ParamValidationError, match="RequestTTLSeconds"):
        emulator.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/a.wav", RequestTTLSeconds=30)


def test_inline_body_and_output_filename(async_endpoint, emulator):
    response = emulator.invoke_endpoint_async(
        EndpointName="asr",
        Body=b"audio bytes",
        ContentType="audio/wav",
        InferenceId="inline",
        S3OutputPathExtension="2024/run-1",
        Filename="call.json",
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["OutputLocation"] == "s3://audio-out/transcripts/2024/run-1/call.json"
    (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
    assert note["invocationStatus"] == "Completed"
    assert note["responseParameters"]["outputLocation"] == response["OutputLocation"]
    assert note["requestParameters"] == {"contentType": "audio/wav", "endpointName": "asr"}
    body = async_endpoint["s3"].get_object(Bucket="audio-out", Key="transcripts/2024/run-1/call.json")["Body"]
    assert json.loads(body.read())["text"]


def test_include_inference_response_in_puts_the_answer_in_the_notification(async_endpoint, emulator):
    async_endpoint["add_endpoint"](
        "asr-inline", IncludeInferenceResponseIn=["SUCCESS_NOTIFICATION_TOPIC", "ERROR_NOTIFICATION_TOPIC"]
    )
    s3 = async_endpoint["s3"]
    s3.put_object(Bucket="audio-in", Key="ok.wav", Body=b"audio")
    s3.put_object(Bucket="audio-in", Key="bad.wav", Body=b"...FAIL-ME...")
    for name in ("ok", "bad"):
        emulator.invoke_endpoint_async(
            EndpointName="asr-inline", InputLocation=f"s3://audio-in/{name}.wav", InferenceId=name
        )
    notes = {n["inferenceId"]: n for n in drain(async_endpoint["sqs"], async_endpoint["queue_url"], 2)}
    assert set(notes["ok"]) == SUCCESS_FIELDS | {"responseBody"}
    assert set(notes["bad"]) == FAILURE_FIELDS | {"responseBody"}
    answers = {}
    for name, note in notes.items():
        assert note["responseBody"]["encoding"] == "BASE64"
        answers[name] = json.loads(base64.b64decode(note["responseBody"]["content"]))
    assert answers["ok"]["text"] and "MODEL_FAULT_FAIL_MARKER" in answers["bad"]["error"]


@pytest.fixture
def slow_model():
    with running_model_server(2.0) as server:
        yield server


def test_request_ttl_runs_while_waiting_for_a_model_slot(async_endpoint, slow_model, tmp_path):
    offset = [0.0]
    with running_emulator(url_of(slow_model), tmp_path, clock=lambda: time.time() + offset[0]) as runtime:
        for i in range(3):
            async_endpoint["s3"].put_object(Bucket="audio-in", Key=f"{i}.wav", Body=b"audio")
            runtime.invoke_endpoint_async(
                EndpointName="asr", InputLocation=f"s3://audio-in/{i}.wav", InferenceId=f"r{i}", RequestTTLSeconds=60
            )
        time.sleep(0.5)
        offset[0] = 120.0  # two requests hold the endpoint's two model slots; the third still waits
        notes = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 3)
    assert sorted(n["invocationStatus"] for n in notes) == ["Completed", "Completed", "Failed"]
    (expired,) = [n for n in notes if n["invocationStatus"] == "Failed"]
    assert "RequestTTLSeconds (60s)" in expired["failureReason"] and set(expired) == FAILURE_FIELDS


def test_invocation_timeout_fails_the_request(async_endpoint, slow_model, tmp_path):
    async_endpoint["s3"].put_object(Bucket="audio-in", Key="long.wav", Body=b"audio")
    with running_emulator(url_of(slow_model), tmp_path) as runtime:
        response = runtime.invoke_endpoint_async(
            EndpointName="asr", InputLocation="s3://audio-in/long.wav", InvocationTimeoutSeconds=1
        )
        (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
    assert note["invocationStatus"] == "Failed" and "InvocationTimeoutSeconds (1s)" in note["failureReason"]
    key = response["FailureLocation"][len("s3://audio-out/") :]
    assert b"InvocationTimeoutSeconds" in async_endpoint["s3"].get_object(Bucket="audio-out", Key=key)["Body"].read()


@contextmanager
def model_process(port):
    """``python -m model_server`` (benchmark backend) that exits at once on a body with CRASH-ME."""
    env = {**os.environ, "BENCHMARK_SERVICE_SECONDS": "0.05", "MODEL_FAULT_CRASH_MARKER": "CRASH-ME"}
    argv = [sys.executable, "-m", "model_server", "--backend", "benchmark", "--host", "127.0.0.1", "--port", str(port)]
    with serving_process(argv, f"http://127.0.0.1:{port}/ping", env) as process:
        yield process


def test_model_crash_fails_that_file_once_and_the_emulator_goes_on(async_endpoint, tmp_path):
    s3, sqs, queue_url = async_endpoint["s3"], async_endpoint["sqs"], async_endpoint["queue_url"]
    s3.put_object(Bucket="audio-in", Key="poison.wav", Body=b"...CRASH-ME...")
    s3.put_object(Bucket="audio-in", Key="fine.wav", Body=b"audio")
    port = free_port()
    with running_emulator(f"http://127.0.0.1:{port}", tmp_path) as runtime:
        with model_process(port) as crashed:
            runtime.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/poison.wav", InferenceId="p")
            (note,) = drain(sqs, queue_url, 1, timeout=8)  # at once: the crashing file is not sent again
            assert crashed.wait(5) == 3
        assert note["invocationStatus"] == "Failed" and "calling the model" in note["failureReason"]
        with model_process(port) as restarted:
            runtime.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/fine.wav", InferenceId="f")
            (note,) = drain(sqs, queue_url, 1)
            assert note["invocationStatus"] == "Completed" and restarted.poll() is None


def test_restart_drops_journaled_requests_of_a_deleted_endpoint(async_endpoint, model_server, tmp_path):
    from local.sagemaker_async.endpoints import EndpointDirectory
    from local.sagemaker_async.requests import build_request

    journal = Journal(tmp_path / "journal")
    endpoint = EndpointDirectory(boto3.client("sagemaker")).get("asr")
    journal.add(build_request(endpoint, {"x-amzn-sagemaker-inputlocation": "s3://audio-in/a.wav"}, time.time()))
    boto3.client("sagemaker").delete_endpoint(EndpointName="asr")
    async_endpoint["add_endpoint"]("asr-2")
    async_endpoint["s3"].put_object(Bucket="audio-in", Key="b.wav", Body=b"audio")
    with running_emulator(url_of(model_server), tmp_path) as runtime:  # starts, and serves the other endpoint
        runtime.invoke_endpoint_async(EndpointName="asr-2", InputLocation="s3://audio-in/b.wav", InferenceId="b")
        (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
    assert note["inferenceId"] == "b" and journal.pending() == []


def test_audio_over_the_models_duration_cap_fails_with_the_models_reason(async_endpoint, tmp_path, monkeypatch):
    """The model server answers 400 naming its cap; the file fails with that reason (what the
    pipeline records as the file's failure_reason), and is not sent again."""
    from model_server.server import serve
    from tests.model_server.decoding import Decoding, silent_wav

    monkeypatch.setenv("MODEL_MAX_AUDIO_SECONDS", "2")
    model = serve("127.0.0.1", 0, Decoding())
    threading.Thread(target=model.serve_forever, daemon=True).start()
    async_endpoint["s3"].put_object(Bucket="audio-in", Key="long.wav", Body=silent_wav(3.0))
    try:
        with running_emulator(url_of(model), tmp_path) as runtime:
            runtime.invoke_endpoint_async(EndpointName="asr", InputLocation="s3://audio-in/long.wav", InferenceId="l")
            (note,) = drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
    finally:
        model.shutdown()
    assert note["invocationStatus"] == "Failed"
    assert note["failureReason"].startswith("ClientError: Received client error (400) from primary with message")
    assert "longer than 2 s" in note["failureReason"] and "MODEL_MAX_AUDIO_SECONDS=2" in note["failureReason"]
