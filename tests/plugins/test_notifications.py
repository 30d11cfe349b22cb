from __future__ import annotations

import json

import pytest

from audio_pipeline.ledger import Result
from audio_pipeline.notifications import NotificationFormatError, parse_notification

from .conftest import notification, sns_envelope


@pytest.mark.parametrize("wrap", [sns_envelope, json.dumps], ids=["sns-envelope", "raw-delivery"])
def test_success(wrap):
    n = parse_notification(wrap(notification("success", inference_id="abc")))
    assert n.succeeded and n.inference_id == "abc"
    assert n.input_location == "s3://audio-in/calls/one.wav"
    assert n.output_location == "s3://audio-transcription-output/transcripts/5f1c.out"
    result = n.result("s3://audio-in/calls/one.wav")
    assert result == Result("s3://audio-in/calls/one.wav", "abc", output_location=n.output_location)
    assert result.succeeded


@pytest.mark.parametrize("wrap", [sns_envelope, json.dumps], ids=["sns-envelope", "raw-delivery"])
def test_failure_without_response_parameters_is_not_dropped(wrap):
    n = parse_notification(wrap(notification("failure", inference_id="abc")))
    assert not n.succeeded and n.output_location is None
    assert n.failure_reason.startswith("ClientError: Received server error (500)")
    result = n.result("s3://audio-in/calls/one.wav")
    assert result == Result("s3://audio-in/calls/one.wav", "abc", failure_reason=n.failure_reason)
    assert not result.succeeded and result.output_location is None


def test_a_failure_without_a_reason_still_fails_the_file():
    doc = notification("failure", inference_id="abc")
    del doc["failureReason"]
    result = parse_notification(sns_envelope(doc)).result("s3://audio-in/calls/one.wav")
    assert not result.succeeded
    assert result.failure_reason == "the endpoint reported a failure without a reason"


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


def _reshaped(**fields) -> dict:
    doc = notification("success", inference_id="abc")
    for path, value in fields.items():
        parent, _, name = path.rpartition("__")
        (doc[parent] if parent else doc)[name] = value
    return doc


# The strangers of issue 9: the SNS envelope and the SageMaker event shape are right, the field types are not.
WRONG_TYPES = {
    "requestParameters a string": (_reshaped(requestParameters="s3://audio-in/calls/one.wav"), "requestParameters"),
    "inputLocation an object": (
        _reshaped(requestParameters__inputLocation={"bucket": "audio-in"}),
        "requestParameters.inputLocation must be a string",
    ),
    "inputLocation a number": (
        _reshaped(requestParameters__inputLocation=42),
        "requestParameters.inputLocation must be a string",
    ),
    "responseParameters a string": (_reshaped(responseParameters="s3://out/x.out"), "responseParameters"),
    "inferenceId an object": (_reshaped(inferenceId={"id": "abc"}), "inferenceId must be a string"),
    "a JSON array": ([notification("success", inference_id="abc")], "expected a JSON object, got list"),
}


@pytest.mark.parametrize(("doc", "message"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
@pytest.mark.parametrize("wrap", [sns_envelope, json.dumps], ids=["sns-envelope", "raw-delivery"])
def test_right_shape_wrong_field_types_are_named(doc, message, wrap):
    with pytest.raises(NotificationFormatError, match=message):
        parse_notification(wrap(doc))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"requestParameters__inputLocation": "audio-in/calls/one.wav"}, "not an InvokeEndpointAsync InputLocation"),
        ({"requestParameters__inputLocation": "s3://b/" + "k" * 1020}, "at most 1024 characters"),
        ({"responseParameters__outputLocation": "transcripts/x.out"}, "outputLocation is not an s3://"),
        ({"failureReason": ["a", "list"]}, "failureReason must be a string"),
        ({"inferenceId": ""}, "needs inferenceId"),
    ],
)
def test_fields_that_cannot_be_what_sagemaker_sends_are_named(fields, message):
    with pytest.raises(NotificationFormatError, match=message):
        parse_notification(sns_envelope(_reshaped(**fields)))


def test_deeply_nested_json_is_malformed_not_a_crash():
    with pytest.raises(NotificationFormatError, match="not JSON"):
        parse_notification("[" * 100_000 + "]" * 100_000)
