"""The notification queue's hook: a batch's wait's receive and delete, blocking and awaitable."""

from __future__ import annotations

import logging

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowException

from audio_pipeline.hooks.notification_queue import NotificationQueueHook, check_deleted
from tests.plugins.conftest import REGION

ENTRIES = [{"Id": "0", "ReceiptHandle": "r0"}, {"Id": "1", "ReceiptHandle": "r1"}]


def test_a_delete_answer_without_successful_raises():
    with pytest.raises(AirflowException, match="Delete SQS Messages failed"):
        check_deleted({"Failed": []}, ENTRIES, logging.getLogger("t"))


def test_each_failed_delete_is_logged(aws, caplog):
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="{}")
    (message,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    entries = [{"Id": "0", "ReceiptHandle": message["ReceiptHandle"]}, {"Id": "1", "ReceiptHandle": "stale"}]
    response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    with caplog.at_level(logging.WARNING):
        check_deleted(response, entries, logging.getLogger("t"))
    assert "notification 1 (ReceiptHandleIsInvalid:" in caplog.text and "notification 0" not in caplog.text


def test_receives_at_most_ten_with_at_most_a_twenty_second_poll_and_deletes_what_was_recorded(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
    for i in range(12):
        sqs.send_message(QueueUrl=queue_url, MessageBody=str(i))
    hook = NotificationQueueHook()
    assert hook.queue_url("notifications") == queue_url and hook.queue_url(queue_url) == queue_url
    sent = []
    hook.sqs.meta.events.register("provide-client-params.sqs.ReceiveMessage", lambda params, **_: sent.append(params))
    messages = hook.receive_notifications(queue_url, 60)
    assert len(messages) == 10 and sent[0]["WaitTimeSeconds"] == 20
    hook.delete_recorded(
        queue_url, [{"Id": "0", "ReceiptHandle": messages[0]["ReceiptHandle"]}], logging.getLogger("t")
    )
    hook.delete_recorded(queue_url, [], logging.getLogger("t"))
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "2", "11 in flight or waiting, 1 deleted"
