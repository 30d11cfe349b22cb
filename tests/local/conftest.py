"""A real moto server, the project's model server (benchmark backend) and the AWS resources an
asynchronous endpoint needs, for tests of the local emulators."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager

import boto3
import pytest

from model_server.backends.benchmark import BenchmarkBackend
from model_server.server import serve
from tests.moto_server import moto_server, serving_process  # noqa: F401 (the emulator tests use it)

REGION = "us-east-1"


@pytest.fixture
def moto(monkeypatch):
    with moto_server() as url:
        for name in ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        yield url


@contextmanager
def running_model_server(service_seconds, port=0):
    """The project's model server with its fixed-latency backend, in this process."""
    server = serve("127.0.0.1", port, BenchmarkBackend(service_seconds=service_seconds))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server):
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def model_server(monkeypatch):
    """The project's model server with its fixed-latency backend and the fault markers armed."""
    monkeypatch.setenv("MODEL_FAULT_FAIL_MARKER", "FAIL-ME")
    with running_model_server(0.05) as server:
        yield server


@pytest.fixture
def async_endpoint(moto):
    """Bucket, topics, a queue subscribed to both, and an async endpoint ``asr`` with concurrency 2;
    ``add_endpoint(name, **notification_config)`` makes another like it."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="audio-in")
    s3.create_bucket(Bucket="audio-out")
    sns = boto3.client("sns")
    success = sns.create_topic(Name="ok")["TopicArn"]
    error = sns.create_topic(Name="err")["TopicArn"]
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="notes")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for topic in (success, error):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    sm = boto3.client("sagemaker")
    sm.create_model(
        ModelName="m",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/asr:latest"},
    )

    def add_endpoint(name, **notification_config):
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.g4dn.xlarge"}
            ],
            AsyncInferenceConfig={
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
                "OutputConfig": {
                    "S3OutputPath": "s3://audio-out/transcripts/",
                    "S3FailurePath": "s3://audio-out/failures/",
                    "NotificationConfig": {"SuccessTopic": success, "ErrorTopic": error, **notification_config},
                },
            },
        )
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)

    add_endpoint("asr")
    return {"s3": s3, "sqs": sqs, "queue_url": queue_url, "add_endpoint": add_endpoint}


def drain(sqs, queue_url, count, timeout=20.0):
    """The SageMaker notifications of ``count`` messages, unwrapped from their SNS envelopes."""
    import time

    found, deadline = [], time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            found.append(json.loads(json.loads(m["Body"])["Message"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return found
