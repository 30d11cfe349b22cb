from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowException, conf
from airflow.sdk.exceptions import TaskDeferred

from audio_pipeline.ledger import Status
from audio_pipeline.sensors.transcription_batch import TranscriptionBatchSensor
from audio_pipeline.triggers.transcription_batch import TranscriptionBatchTrigger
from tests.plugins.conftest import CONFIG, REGION, notification, sns_envelope
from tests.plugins.operators.test_submit_batch import RUN_1, pinned, pinned_batch, submit_operator


def sensor(ref, **kwargs):
    return TranscriptionBatchSensor(
        task_id="await_transcripts",
        batch=ref,
        status_table=CONFIG.status_table,
        notification_queue=CONFIG.notification_queue,
        result_window_seconds=690,
        **kwargs,
    )


@pytest.fixture
def batch(s3, ledger):
    """The audio objects exist: the submitter copies the claimed version of each to send it."""
    return pinned_batch(s3, ledger)


@pytest.fixture
def queue_url(aws):
    return boto3.client("sqs", region_name=REGION).create_queue(QueueName=CONFIG.notification_queue)["QueueUrl"]


def test_sensor_defers_to_its_trigger(batch, runtime, queue_url):
    files, ref = batch
    submit_operator(ref).execute(RUN_1)
    with pytest.raises(TaskDeferred) as deferred:
        sensor(ref, deferrable=True).execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, TranscriptionBatchTrigger)
    assert trigger.queue_url == queue_url and trigger.manifest == ref["manifest"]
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout >= timedelta(seconds=690)


def test_sensor_defers_with_its_timeout_and_connection_arguments(batch, runtime, queue_url):
    _, ref = batch
    submit_operator(ref).execute(RUN_1)
    config = {"read_timeout": 7}
    with pytest.raises(TaskDeferred) as deferred:
        sensor(
            ref, deferrable=True, timeout=1234, verify=False, botocore_config=config, output_path=CONFIG.output_path
        ).execute({})
    assert deferred.value.timeout == timedelta(seconds=1234)
    trigger = deferred.value.trigger
    assert trigger.verify is False and trigger.botocore_config == config
    assert trigger.output_path == CONFIG.output_path, "a success outside the output path is never recorded"


def test_sensor_is_deferrable_as_the_operators_default_deferrable_setting_says(batch):
    _, ref = batch
    if conf.getboolean("operators", "default_deferrable", fallback=False):
        pytest.skip("this environment sets operators.default_deferrable")
    assert sensor(ref).deferrable is False


def test_sensor_returns_at_once_when_nothing_is_pending(batch, runtime, ledger, queue_url):
    files, ref = batch
    runtime.fail_for = {f["uri"] for f in files}
    submit_operator(ref).execute(RUN_1)
    assert sensor(ref).execute({}) == {"failed": 3}


def test_sensor_in_poke_mode_records_notifications(batch, runtime, ledger, queue_url):
    files, ref = batch
    submit_operator(ref).execute(RUN_1)
    sqs = boto3.client("sqs", region_name=REGION)
    records = ledger.get(f["uri"] for f in files)
    for f in files:
        sent = records[f["uri"]].input_location  # the pinned copy, as the endpoint was sent it
        assert sent == pinned(f)
        doc = notification("success", inference_id=f["inference_id"], input_location=sent)
        doc["responseParameters"]["outputLocation"] = records[f["uri"]].output_location  # as the endpoint answered
        sqs.send_message(QueueUrl=queue_url, MessageBody=sns_envelope(doc))
    s = sensor(ref, deferrable=False, wait_time_seconds=0, output_path="s3://out/transcripts/", poke_interval=0.1)
    s.timeout = 30
    assert s.execute({}) == {"completed": 3}
    assert {r.status for r in ledger.get(f["uri"] for f in files).values()} == {Status.COMPLETED}
    assert not sqs.receive_message(QueueUrl=queue_url).get("Messages"), "each recorded notification is deleted"


def test_execute_complete(batch):
    _, ref = batch
    assert sensor(ref).execute_complete({}, {"status": "success", "settled": {"completed": 3}}) == {"completed": 3}
    with pytest.raises(AirflowException, match="batch 1 of 1 failed: boom"):
        sensor(ref).execute_complete({}, {"status": "error", "message": "boom"})
    with pytest.raises(AirflowException, match="event is None"):
        sensor(ref).execute_complete({}, None)


def test_a_file_without_a_deadline_of_its_own_fails_a_result_window_after_the_wait_began(batch, queue_url, monkeypatch):
    """The window runs from the wait's start, whatever is read when; here, the deferred wait's."""
    import time

    _, ref = batch
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    with pytest.raises(TaskDeferred) as deferred:
        sensor(ref, deferrable=True).execute({})
    assert deferred.value.trigger.fallback_deadline == 1_000_000.0 + 690


def test_sensor_accepts_a_queue_url(batch, queue_url):
    _, ref = batch
    s = TranscriptionBatchSensor(task_id="t", batch=ref, status_table="t", notification_queue=queue_url)
    assert s.queue_url == queue_url
    json.dumps(s.batch)


def test_the_sensor_outlives_its_batch_s_last_deadline(batch, runtime, ledger, queue_url):
    """A file silent to the end is failed by the trigger at its deadline, with the reason; the
    sensor's own timeout must come later, or it fails the batch first and records nothing."""
    import time

    files, ref = batch
    submit_operator(ref).execute(RUN_1)
    waiting = sensor(ref, deferrable=True)
    start = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({})
    last_deadline = max(r.deadline for r in ledger.get(f["uri"] for f in files).values())
    trigger = deferred.value.trigger
    noticed_by = last_deadline + trigger.refresh_interval_seconds + trigger.wait_time_seconds
    assert start + deferred.value.timeout.total_seconds() > noticed_by
