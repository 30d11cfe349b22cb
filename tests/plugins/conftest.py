"""Fixtures for the plugin tests: moto in-process with the real table schema."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from audio_pipeline.batches import BatchManifests
from audio_pipeline.config import PipelineConfig
from audio_pipeline.costs import Rates
from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook
from audio_pipeline.hooks.sagemaker_async import SageMakerAsyncInferenceHook
from audio_pipeline.ledger import Ledger, inference_id_for, table_definition
from tests.moto_server import moto_server
from tests.plugins.test_submission import FakeRuntime
from tests.prompts import INCLUDE

FIXTURES = Path(__file__).parent / "fixtures"
REGION = "us-east-1"
CONFIG = PipelineConfig()
PRICES = INCLUDE / "prices.json"
RATES = Rates.load(PRICES, CONFIG.endpoint_instance_type, CONFIG.bedrock_model_id)
"""The project's price table, at the default instance type's and model's prices."""


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": REGION}}))
    with mock_aws():
        yield


@pytest.fixture
def aws_over_http(monkeypatch):
    """moto over HTTP (aiobotocore clients cannot use moto's in-process mock; nor can
    :func:`answer_over_http`, whose answered attempts in-process moto would also execute)."""
    with moto_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": REGION}})
        )
        yield url


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket="audio-in")
    client.create_bucket(Bucket=CONFIG.output_bucket)
    return client


@pytest.fixture
def ddb(aws):
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(TableName=CONFIG.status_table, **table_definition())
    return client


@pytest.fixture
def ledger(ddb):
    return Ledger(ddb, CONFIG.status_table, backoff_base=0)


@pytest.fixture
def batch(s3, ledger):
    """Three files claimed by ``run-1`` (a lease of the result window) in one batch manifest."""
    files = []
    for i in range(3):
        uri = f"s3://audio-in/calls/{i}.flac"
        files.append({"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")})
    claimed = ledger.claim(files, "run-1", lease_seconds=CONFIG.result_window_seconds)
    assert sorted(claimed.applied) == sorted(f["uri"] for f in files)
    (ref,) = BatchManifests(s3, CONFIG.output_bucket, "runs/run-1/").write(files, len(files), 10, 1)
    return files, ref


@pytest.fixture
def runtime(monkeypatch):
    fake = FakeRuntime()
    monkeypatch.setattr(SageMakerAsyncInferenceHook, "conn", property(lambda self: fake))
    return fake


def bedrock_hook(client) -> AdaptiveBedrockRuntimeHook:
    """The summaries' Bedrock hook over ``client``: a stubbed boto3 client, or a fake one."""
    hook = AdaptiveBedrockRuntimeHook(aws_conn_id=None)
    hook.conn = client
    return hook


def notification(name: str, **replace: str) -> dict:
    """A documented notification from fixtures/notifications, with placeholders replaced."""
    text = (FIXTURES / "notifications" / f"{name}.json").read_text()
    doc = json.loads(text)
    doc["inferenceId"] = replace.get("inference_id", doc["inferenceId"])
    if "input_location" in replace:
        doc["requestParameters"]["inputLocation"] = replace["input_location"]
    return doc


def sns_envelope(message: dict) -> str:
    """The SQS body SNS delivers with raw message delivery off: the notification as a string."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "0a1b2c3d-0000-4000-8000-000000000000",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:audio-transcription-success",
            "Message": json.dumps(message),
            "Timestamp": "2022-01-25T22:46:00.700Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
    )


def put_audio(s3, key: str, body: bytes = b"RIFF....WAVEfmt ", bucket: str = "audio-in") -> dict:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    head = s3.head_object(Bucket=bucket, Key=key)
    return {"uri": f"s3://{bucket}/{key}", "etag": head["ETag"].strip('"'), "size": head["ContentLength"]}


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def answer_over_http(client, operation: str, answers: list[tuple[int, dict]]) -> list[int]:
    """Answer the next calls of ``operation`` at the HTTP layer (botocore's ``before-send``) with
    ``(status, JSON body)``, errors as ``{"__type": code, "message": ...}``: the client parses and
    retries them as it would AWS's answers. Later calls go through (to moto over HTTP: see
    :func:`aws_over_http`). Returns each attempt's status (``0`` for those that went through)."""
    pending = list(answers)
    attempts: list[int] = []

    def send(request, **kwargs):
        if not pending:
            attempts.append(0)
            return None
        status, body = pending.pop(0)
        attempts.append(status)
        headers = {"Content-Type": "application/json"}
        if "__type" in body:
            headers["x-amzn-ErrorType"] = body["__type"]
        return AWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"before-send.{service}.{operation}", send)
    return attempts


def aws_error(code: str, message: str) -> dict:
    return {"__type": code, "message": message}
