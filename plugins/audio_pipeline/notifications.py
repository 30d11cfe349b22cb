"""SageMaker asynchronous inference notifications, as they arrive on SQS from SNS.

With raw message delivery off (the AWS default) the SQS body is an SNS envelope whose
``Message`` is the notification as a JSON *string*; with raw delivery on, the body is the
notification itself. Unknown fields are ignored. A failure notification carries
``failureReason`` and no ``responseParameters``.

Anything else, including the right shape with the wrong field types (a string where an
object belongs, an object where a string belongs), is a :class:`NotificationFormatError`
naming the field: a stranger on a shared queue must never reach the status table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from audio_pipeline.ledger import Result

INPUT_LOCATION_MAX = 1024
"""``InvokeEndpointAsync``'s ``InputLocation``: at most 1,024 characters, matching :data:`INPUT_LOCATION`."""
INPUT_LOCATION = re.compile(r"(https|s3)://([^/]+)/?(.*)", re.DOTALL)
OUTPUT_LOCATION = re.compile(r"s3://[^/]+/.+", re.DOTALL)


class NotificationFormatError(ValueError):
    """The message is not a SageMaker asynchronous inference notification."""


@dataclass(frozen=True)
class InferenceNotification:
    inference_id: str
    succeeded: bool
    input_location: str | None
    output_location: str | None
    failure_reason: str | None
    event_time: str | None

    def result(self, uri: str) -> Result:
        """The outcome this notification reports, for the file ``uri``."""
        if self.succeeded:
            return Result(uri, self.inference_id, output_location=self.output_location)
        reason = self.failure_reason or "the endpoint reported a failure without a reason"
        return Result(uri, self.inference_id, failure_reason=reason)


def _loads(text: Any, what: str) -> Any:
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as err:
        raise NotificationFormatError(f"{what} is not JSON: {str(text)[:120]!r}") from err


def _excerpt(value: Any) -> str:
    return json.dumps(value)[:120]


def _object(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NotificationFormatError(f"{name} must be a JSON object, got {type(value).__name__}: {_excerpt(value)}")
    return value


def _string(doc: dict[str, Any], name: str, where: str = "") -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise NotificationFormatError(f"{where}{name} must be a string, got {type(value).__name__}: {_excerpt(value)}")
    return value


def _input_location(request: dict[str, Any]) -> str | None:
    location = _string(request, "inputLocation", "requestParameters.")
    if location is not None and (len(location) > INPUT_LOCATION_MAX or not INPUT_LOCATION.fullmatch(location)):
        raise NotificationFormatError(
            f"requestParameters.inputLocation is not an InvokeEndpointAsync InputLocation (an s3:// or https:// "
            f"URI of at most {INPUT_LOCATION_MAX} characters): {location[:120]!r}"
        )
    return location


def _output_location(response: dict[str, Any]) -> str | None:
    location = _string(response, "outputLocation", "responseParameters.")
    if location is not None and not OUTPUT_LOCATION.fullmatch(location):
        raise NotificationFormatError(
            f"responseParameters.outputLocation is not an s3:// object URI: {location[:120]!r}"
        )
    return location


def parse_notification(body: str) -> InferenceNotification:
    """Parse one SQS message body, enveloped or raw; :class:`NotificationFormatError` names what is wrong."""
    doc = _loads(body, "message body")
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        doc = _loads(doc["Message"], "SNS Message")
    if not isinstance(doc, dict):
        raise NotificationFormatError(f"expected a JSON object, got {type(doc).__name__}: {_excerpt(doc)}")
    inference_id = _string(doc, "inferenceId")
    status = doc.get("invocationStatus")
    if not inference_id or status not in ("Completed", "Failed"):
        raise NotificationFormatError(
            "not a SageMaker async inference notification (needs inferenceId and invocationStatus "
            f"Completed/Failed): {json.dumps(doc)[:200]}"
        )
    request = _object(doc, "requestParameters")
    response = _object(doc, "responseParameters")
    return InferenceNotification(
        inference_id=inference_id,
        succeeded=status == "Completed",
        input_location=_input_location(request),
        output_location=_output_location(response),
        failure_reason=_string(doc, "failureReason"),
        event_time=_string(doc, "eventTime"),
    )
