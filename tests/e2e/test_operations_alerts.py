"""A failed run is announced on the operations topic: Airflow's DAG processor runs the DAG's failure
callback (the provider's SnsNotifier), which publishes to the topic the Variable names; on the local
stack a queue subscribed to that topic stands for the people who would get the email."""

from __future__ import annotations

import json
import time

import pytest

from local.bootstrap import OPERATIONS_INBOX
from local.stack.airflow_api import AirflowApi

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_failed_run_is_announced_on_the_operations_topic(stack):
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    sqs = stack.aws_session().client("sqs")
    inbox = sqs.get_queue_url(QueueName=OPERATIONS_INBOX)["QueueUrl"]
    run_id = api.trigger({"bucket_uri": "s3://no-such-audio-bucket/calls/"})  # resolve_run fails, no retries
    assert api.wait_for_run(run_id, timeout=120) == "failed"
    started, found = time.monotonic(), []
    while not found and time.monotonic() - started < 120:
        for message in sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=5).get("Messages", []):
            envelope = json.loads(message["Body"])
            if run_id in envelope["Message"]:
                found.append(envelope)
    print(f"notification {time.monotonic() - started:.0f}s after the run ended: {found}")
    (envelope,) = found
    assert envelope["Subject"] == "audio pipeline: audio_transcription run failed"
    assert envelope["Message"].startswith(f"Run {run_id} of DAG audio_transcription failed")
    assert envelope["TopicArn"].endswith(":audio-transcription-operations")
