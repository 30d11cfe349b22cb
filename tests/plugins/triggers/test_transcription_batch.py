from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import threading
import time
import urllib.request

import boto3
import pytest

from audio_pipeline.batches import BatchManifests
from audio_pipeline.ledger import Accepted, Ledger, Status, inference_id_for, table_definition
from audio_pipeline.triggers.transcription_batch import TranscriptionBatchTrigger
from tests.moto_server import local_moto_server
from tests.plugins.conftest import CONFIG, REGION, notification, sns_envelope
from tests.plugins.test_notifications import WRONG_TYPES

OUT = CONFIG.output_bucket
WINDOW = 3600


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
    s3.create_bucket(Bucket=OUT)
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName=CONFIG.status_table, **table_definition())
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName=CONFIG.notification_queue)["QueueUrl"]
    return s3, Ledger(ddb, CONFIG.status_table), sqs, queue_url


def output_of(f) -> str:
    return f"s3://{OUT}/transcripts/{f['inference_id']}.out"


def submitted_batch(s3, ledger, n, submitted_at=None):
    """``n`` files claimed by run-1 and accepted by the endpoint ``submitted_at`` (now by default):
    their deadline is a window later."""
    at = submitted_at or time.time()
    timed = Ledger(ledger.store.client, ledger.table_name, clock=lambda: at)
    files = []
    for i in range(n):
        uri = f"s3://audio-in/{i}.wav"
        files.append({"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")})
    uris = [f["uri"] for f in files]
    assert timed.claim(files, "run-1", lease_seconds=WINDOW).applied == uris
    since, marked = timed.mark_invoking(files, "run-1", WINDOW)
    failures = [f"s3://{OUT}/failures/{f['inference_id']}-error.out" for f in files]
    accepted = [Accepted(f, since, f["uri"], output_of(f), x) for f, x in zip(files, failures, strict=True)]
    assert timed.record_invocations(accepted, WINDOW).applied == uris == marked
    (ref,) = BatchManifests(s3, OUT, "runs/run-1/").write(files, n, 100, 1)
    return files, ref


def success(f) -> dict:
    """The endpoint's success notification for ``f``, naming the output it answered at submission."""
    doc = notification("success", inference_id=f["inference_id"], input_location=f["uri"])
    doc["responseParameters"]["outputLocation"] = output_of(f)
    return doc


def trigger_for(ref, queue_url, **overrides):
    kwargs = {
        "manifest": ref["manifest"],
        "status_table": CONFIG.status_table,
        "queue_url": queue_url,
        "fallback_deadline": time.time() + 3600,
        "output_path": CONFIG.output_path,
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


def non_default(name: str, parameter: inspect.Parameter):
    """A value of ``parameter``'s type that is not its default."""
    annotation, default = str(parameter.annotation), parameter.default
    if "dict" in annotation:
        return {"read_timeout": 7, "connect_timeout": 3}
    if annotation == "float":
        return (0.0 if default is inspect.Parameter.empty else default) + 1.25
    if annotation == "int":
        return (0 if default is inspect.Parameter.empty else default) + 3
    if "str" in annotation:
        return f"s3://{name}/value/" if name.endswith("path") else f"{name}-value"
    raise AssertionError(f"no value for {name}: {annotation}")


def test_serialize_carries_every_argument():
    """Every argument, each set to something other than its default, comes back from serialize():
    the triggerer rebuilds the trigger from it alone, so a field left out is silently lost."""
    parameters = {n: p for n, p in inspect.signature(TranscriptionBatchTrigger.__init__).parameters.items()}
    del parameters["self"]
    values = {name: non_default(name, p) for name, p in parameters.items()}
    assert all(values[n] != p.default for n, p in parameters.items())

    classpath, kwargs = TranscriptionBatchTrigger(**values).serialize()

    assert kwargs == values
    assert json.loads(json.dumps(kwargs)) == kwargs  # stored in the metadata database as JSON
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, values)
    assert {name: getattr(rebuilt, name) for name in values} == values


def test_its_sqs_hook_carries_the_connection_arguments():
    trigger = configured_trigger(verify="/etc/ca.pem")
    assert trigger.hook.verify == "/etc/ca.pem" and trigger.hook.config.read_timeout == 7


async def test_fires_once_every_notification_is_recorded(stack, capsys):
    s3, ledger, sqs, queue_url = stack
    files, ref = submitted_batch(s3, ledger, 3)
    for f in files[:2]:
        sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(success(f)))
    sqs.send_message(QueueUrl=queue_url, MessageBody="garbage for the dead-letter queue")
    failure = notification("failure", inference_id=files[2]["inference_id"], input_location=files[2]["uri"])
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(failure))  # raw delivery
    trigger = trigger_for(ref, queue_url)
    assert trigger.build_watcher().output_path == CONFIG.output_path, "its watcher checks outputs against it"

    event = await asyncio.wait_for(trigger.run().asend(None), timeout=30)

    assert event.payload["status"] == "success"
    assert event.payload["settled"] == {"completed": 2, "failed": 1}
    logged = "".join(capsys.readouterr())  # the trigger's log (structlog, as in the triggerer)
    assert f"{ref['manifest']}: 3 of 3 files settled (2 completed, 1 failed)" in logged
    records = ledger.get(f["uri"] for f in files)
    assert [records[f["uri"]].status for f in files] == [Status.COMPLETED, Status.COMPLETED, Status.FAILED]
    # the malformed message was left for SQS to redrive; the recorded ones were deleted
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 1


async def test_strangers_of_every_wrong_shape_neither_crash_it_nor_touch_the_batch(stack):
    s3, ledger, sqs, queue_url = stack
    files, ref = submitted_batch(s3, ledger, 2)
    for doc, _ in WRONG_TYPES.values():
        for _ in range(3):
            sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(doc))
    for f in files:
        sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(success(f)))

    event = await asyncio.wait_for(trigger_for(ref, queue_url, batch_wait_seconds=0).run().asend(None), timeout=60)

    assert event.payload == {"status": "success", "manifest": ref["manifest"], "settled": {"completed": 2}}
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    left = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
    assert left == 3 * len(WRONG_TYPES), "every stranger is left for the dead-letter queue"


async def test_settles_from_s3_when_the_notification_is_lost(stack):
    s3, ledger, sqs, queue_url = stack
    files, ref = submitted_batch(s3, ledger, 1)
    s3.put_object(Bucket=OUT, Key=output_of(files[0]).split("/", 3)[3], Body=b"{}")
    trigger = trigger_for(ref, queue_url, reconcile_interval_seconds=0)
    event = await asyncio.wait_for(trigger.run().asend(None), timeout=30)
    assert event.payload["settled"] == {"completed": 1}
    assert ledger.get([files[0]["uri"]])[files[0]["uri"]].status == Status.COMPLETED


async def test_settles_a_lost_notification_from_s3_while_the_queue_is_busy(stack):
    s3, ledger, sqs, queue_url = stack
    files, ref = submitted_batch(s3, ledger, 2)
    s3.put_object(Bucket=OUT, Key=output_of(files[0]).split("/", 3)[3], Body=b"{}")  # files[0]: no notification
    sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(success(files[1])))
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
    s3, ledger, sqs, queue_url, outage = stack_with_sqs_outages
    files, ref = submitted_batch(s3, ledger, 2)
    for f in files:
        sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(success(f)))
    outage(4)
    started = time.monotonic()
    event = await asyncio.wait_for(trigger_for(ref, queue_url).run().asend(None), timeout=60)
    assert event.payload["status"] == "success", event.payload
    assert event.payload["settled"] == {"completed": 2}
    assert time.monotonic() - started >= 3, "it waited the outage out"
    logged = "".join(capsys.readouterr())  # the trigger's log (structlog, as in the triggerer)
    assert "transient error, retry 1 in" in logged and "(InternalError) when calling the ReceiveMessage" in logged


async def test_fails_silent_files_at_the_deadline(stack):
    s3, ledger, sqs, queue_url = stack
    files, ref = submitted_batch(s3, ledger, 1, submitted_at=time.time() - WINDOW - 1)  # its deadline has passed
    event = await asyncio.wait_for(trigger_for(ref, queue_url).run().asend(None), timeout=30)
    assert event.payload["settled"] == {"failed": 1}
    reason = ledger.get([files[0]["uri"]])[files[0]["uri"]].failure_reason
    assert "no result notification and no output or failure object by the deadline" in reason


async def test_reports_errors_as_an_event(stack):
    s3, ledger, sqs, queue_url = stack
    trigger = trigger_for({"manifest": f"s3://{OUT}/missing.json"}, queue_url)
    event = await asyncio.wait_for(trigger.run().asend(None), timeout=30)
    assert event.payload["status"] == "error" and "NoSuchKey" in event.payload["message"]


def test_the_pause_after_a_receive_that_was_not_full_grows_until_receives_come_full():
    """64 triggers on one queue each see a sliver of its notifications: a fixed 2 s pause left
    ~2.5 notifications a receive at N = 10,000; the pause doubles until receives come full."""
    from audio_pipeline.triggers.transcription_batch import _Pause

    pause = _Pause(least=2, most=10)
    assert [pause.after(n) for n in (3, 5, 1, 2, 10, 0, 4, 10, 10, 10)] == [2, 4, 8, 10, 0, 0, 5, 0, 0, 0]
    assert pause.seconds == 2, "full receives bring it back to the least"
