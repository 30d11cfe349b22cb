from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
import urllib.request

import boto3
import pytest

from audio_pipeline.batches import BatchManifests
from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import StatusTable, inference_id_for, table_definition
from audio_pipeline.triggers.transcription_batch import TranscriptionBatchTrigger
from tests.moto_server import local_moto_server
from tests.plugins.conftest import CONFIG, REGION, notification, sns_envelope
from tests.plugins.test_notifications import WRONG_TYPES


@pytest.fixture
def endpoint(aws_over_http):
    return aws_over_http


@pytest.fixture
def stack(endpoint):
    return resources()


@pytest.fixture
def stack_with_sqs_outages(monkeypatch):
    """The stack's own moto server (a process), whose SQS can be made to answer 500; botocore
    retries once before an error reaches the trigger."""
    with local_moto_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        extra = {"region_name": REGION, "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 1}}}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": extra}))

        def outage(seconds: float) -> None:
            switch = f"{url}/_emulator/faults/sqs-5xx?seconds={seconds}"
            urllib.request.urlopen(urllib.request.Request(switch, method="POST")).close()

        yield (*resources(), outage)


def resources():
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=CONFIG.output_bucket)
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName=CONFIG.status_table, **table_definition())
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName=CONFIG.notification_queue)["QueueUrl"]
    return s3, StatusTable(ddb, CONFIG.status_table), sqs, queue_url


def submitted_batch(s3, table, n, **attributes):
    files = []
    for i in range(n):
        uri = f"s3://audio-in/{i}.wav"
        files.append({"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")})
    table.claim(files, "run-1")
    table.apply(
        [
            Transition(
                f["uri"], f["inference_id"], Status.SUBMITTED, {"deadline": int(time.time()) + 3600, **attributes}
            )
            for f in files
        ]
    )
    (ref,) = BatchManifests(s3, CONFIG.output_bucket, "runs/run-1/").write(files, 100, 1)
    return files, ref


def trigger_for(ref, queue_url, **overrides):
    kwargs = {
        "manifest": ref["manifest"],
        "status_table": CONFIG.status_table,
        "queue_url": queue_url,
        "fallback_deadline": time.time() + 3600,
        "wait_time_seconds": 1,
        "refresh_interval_seconds": 1,
    }
    kwargs.update(overrides)
    return TranscriptionBatchTrigger(**kwargs)


def import_string(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def configured_trigger(verify: bool | str) -> TranscriptionBatchTrigger:
    return TranscriptionBatchTrigger(
        manifest="s3://o/runs/r/batches/1.json",
        status_table="t",
        queue_url="https://q",
        fallback_deadline=1.5,
        verify=verify,
        botocore_config={"read_timeout": 7},
    )


def test_serialize_round_trip():
    trigger = configured_trigger(verify=False)
    classpath, kwargs = trigger.serialize()
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)
    json.dumps(kwargs)  # stored in the metadata database as JSON
    assert kwargs["verify"] is False and kwargs["botocore_config"] == {"read_timeout": 7}


def test_its_sqs_hook_carries_the_connection_arguments():
    trigger = configured_trigger(verify="/etc/ca.pem")
    assert trigger.hook.verify == "/etc/ca.pem" and trigger.hook.config.read_timeout == 7


async def test_fires_once_every_notification_is_recorded(stack, capsys):
    s3, table, sqs, queue_url = stack
    files, ref = submitted_batch(s3, table, 3)
    for f in files[:2]:
        doc = notification("success", inference_id=f["inference_id"], input_location=f["uri"])
        sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(doc))
    sqs.send_message(QueueUrl=queue_url, MessageBody="garbage for the dead-letter queue")
    failure = notification("failure", inference_id=files[2]["inference_id"], input_location=files[2]["uri"])
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(failure))  # raw delivery

    event = await asyncio.wait_for(trigger_for(ref, queue_url).run().asend(None), timeout=30)

    assert event.payload["status"] == "success"
    assert event.payload["settled"] == {"completed": 2, "failed": 1}
    logged = "".join(capsys.readouterr())  # the trigger's log (structlog, as in the triggerer)
    assert f"{ref['manifest']}: 3 of 3 files settled (2 completed, 1 failed)" in logged
    items = table.get_many(f["uri"] for f in files)
    assert [items[f["uri"]]["status"] for f in files] == ["completed", "completed", "failed"]
    # the malformed message was left for SQS to redrive; the recorded ones were deleted
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 1


async def test_strangers_of_every_wrong_shape_neither_crash_it_nor_touch_the_batch(stack):
    s3, table, sqs, queue_url = stack
    files, ref = submitted_batch(s3, table, 2)
    for doc, _ in WRONG_TYPES.values():
        for _ in range(3):
            sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(doc))
    for f in files:
        doc = notification("success", inference_id=f["inference_id"], input_location=f["uri"])
        sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(doc))

    event = await asyncio.wait_for(trigger_for(ref, queue_url, batch_wait_seconds=0).run().asend(None), timeout=60)

    assert event.payload == {"status": "success", "manifest": ref["manifest"], "settled": {"completed": 2}}
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    left = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
    assert left == 3 * len(WRONG_TYPES), "every stranger is left for the dead-letter queue"


async def test_settles_from_s3_when_the_notification_is_lost(stack):
    s3, table, sqs, queue_url = stack
    files, ref = submitted_batch(s3, table, 1, output_location=f"s3://{CONFIG.output_bucket}/transcripts/x.out")
    s3.put_object(Bucket=CONFIG.output_bucket, Key="transcripts/x.out", Body=b"{}")
    trigger = trigger_for(ref, queue_url, reconcile_interval_seconds=0)
    event = await asyncio.wait_for(trigger.run().asend(None), timeout=30)
    assert event.payload["settled"] == {"completed": 1}


async def test_settles_a_lost_notification_from_s3_while_the_queue_is_busy(stack):
    s3, table, sqs, queue_url = stack
    out = f"s3://{CONFIG.output_bucket}/transcripts/lost.out"
    files, ref = submitted_batch(s3, table, 2, output_location=out)
    s3.put_object(Bucket=CONFIG.output_bucket, Key="transcripts/lost.out", Body=b"{}")  # files[0]: no notification
    doc = notification("success", inference_id=files[1]["inference_id"], input_location=files[1]["uri"])
    sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(doc))
    stop = threading.Event()

    def other_runs_results():  # a notification every 0.2 s: the queue is never quiet
        n = 0
        while not stop.wait(0.2):
            n += 1
            doc = notification("success", inference_id=f"other-{n}", input_location=f"s3://audio-in/other/{n}.wav")
            sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(doc))

    feeder = threading.Thread(target=other_runs_results)
    feeder.start()
    try:
        trigger = trigger_for(ref, queue_url, reconcile_interval_seconds=2, batch_wait_seconds=0.1)
        event = await asyncio.wait_for(trigger.run().asend(None), timeout=30)
    finally:
        stop.set()
        feeder.join()
    assert event.payload["settled"] == {"completed": 2}


async def test_rides_out_sqs_answering_500(stack_with_sqs_outages, capsys):
    s3, table, sqs, queue_url, outage = stack_with_sqs_outages
    files, ref = submitted_batch(s3, table, 2)
    for f in files:
        doc = notification("success", inference_id=f["inference_id"], input_location=f["uri"])
        sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(doc))
    outage(4)
    started = time.monotonic()
    event = await asyncio.wait_for(trigger_for(ref, queue_url).run().asend(None), timeout=60)
    assert event.payload["status"] == "success", event.payload
    assert event.payload["settled"] == {"completed": 2}
    assert time.monotonic() - started >= 3, "it waited the outage out"
    logged = "".join(capsys.readouterr())  # the trigger's log (structlog, as in the triggerer)
    assert "transient error, retry 1 in" in logged and "(InternalError) when calling the ReceiveMessage" in logged


async def test_fails_silent_files_at_the_deadline(stack):
    s3, table, sqs, queue_url = stack
    files, ref = submitted_batch(s3, table, 1)
    table.client.update_item(
        TableName=CONFIG.status_table,
        Key={"uri": {"S": files[0]["uri"]}},
        UpdateExpression="SET deadline = :d",
        ExpressionAttributeValues={":d": {"N": str(int(time.time()) - 1)}},
    )
    event = await asyncio.wait_for(trigger_for(ref, queue_url).run().asend(None), timeout=30)
    assert event.payload["settled"] == {"failed": 1}


async def test_reports_errors_as_an_event(stack):
    s3, table, sqs, queue_url = stack
    trigger = trigger_for({"manifest": f"s3://{CONFIG.output_bucket}/missing.json"}, queue_url)
    event = await asyncio.wait_for(trigger.run().asend(None), timeout=30)
    assert event.payload["status"] == "error" and "NoSuchKey" in event.payload["message"]


def test_the_pause_after_a_receive_that_was_not_full_grows_until_receives_come_full():
    """64 triggers on one queue each see a sliver of its notifications: a fixed 2 s pause left
    ~2.5 notifications a receive at N = 10,000; the pause doubles until receives come full."""
    from audio_pipeline.triggers.transcription_batch import _Pause

    pause = _Pause(least=2, most=10)
    assert [pause.after(n) for n in (3, 5, 1, 2, 10, 0, 4, 10, 10, 10)] == [2, 4, 8, 10, 0, 0, 5, 0, 0, 0]
    assert pause.seconds == 2, "full receives bring it back to the least"
