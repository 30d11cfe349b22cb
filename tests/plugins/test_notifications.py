from __future__ import annotations

import json

import pytest

from audio_pipeline.notifications import NotificationFormatError, parse_notification
from audio_pipeline.status import Status

from .conftest import notification, sns_envelope


@pytest.mark.parametrize("wrap", [sns_envelope, json.dumps], ids=["sns-envelope", "raw-delivery"])
def test_success(wrap):
    n = parse_notification(wrap(notification("success", inference_id="abc")))
    assert n.succeeded and n.inference_id == "abc"
    assert n.input_location == "s3://audio-in/calls/one.wav"
    assert n.output_location == "s3://audio-transcription-output/transcripts/5f1c.out"
    t = n.transition("s3://audio-in/calls/one.wav")
    assert t.to == Status.COMPLETED and t.attributes["output_location"] == n.output_location


@pytest.mark.parametrize("wrap", [sns_envelope, json.dumps], ids=["sns-envelope", "raw-delivery"])
def test_failure_without_response_parameters_is_not_dropped(wrap):
    n = parse_notification(wrap(notification("failure", inference_id="abc")))
    assert not n.succeeded and n.output_location is None
    assert n.failure_reason.startswith("ClientError: Received server error (500)")
    t = n.transition("s3://audio-in/calls/one.wav")
    assert t.to == Status.FAILED and t.attributes["failure_reason"] == n.failure_reason


def test_unknown_fields_are_ignored():
    n = parse_notification(sns_envelope(notification("parakeet_with_unknown_fields", inference_id="abc")))
    assert n.succeeded and n.output_location.endswith("9a2e.out")


def test_envelope_whose_message_is_already_an_object():
    body = json.loads(sns_envelope(notification("success")))
    body["Message"] = notification("success")
    assert parse_notification(json.dumps(body)).succeeded


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json at all", "message body is not JSON"),
        (json.dumps({"Type": "Notification", "Message": "{broken"}), "SNS Message is not JSON"),
        (json.dumps([1, 2]), "expected a JSON object"),
        (json.dumps({"hello": "world"}), "not a SageMaker async inference notification"),
        (json.dumps({"inferenceId": "x", "invocationStatus": "Weird"}), "not a SageMaker"),
    ],
)
def test_malformed_messages_are_named(body, message):
    with pytest.raises(NotificationFormatError, match=message):
        parse_notification(body)
