"""SageMaker asynchronous inference notifications, as they arrive on SQS from SNS.

With raw message delivery off (the AWS default) the SQS body is an SNS envelope whose
``Message`` is the notification as a JSON *string*; with raw delivery on, the body is the
notification itself. Unknown fields are ignored. A failure notification carries
``failureReason`` and no ``responseParameters``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from audio_pipeline.status import Status, Transition, utcnow


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

    def transition(self, uri: str) -> Transition:
        """The status-table move this notification asks for, for the file ``uri``."""
        if self.succeeded:
            attributes = {"completed_at": utcnow()}
            if self.output_location:
                attributes["output_location"] = self.output_location
            return Transition(uri, self.inference_id, Status.COMPLETED, attributes)
        reason = self.failure_reason or "the endpoint reported a failure without a reason"
        return Transition(uri, self.inference_id, Status.FAILED, {"failure_reason": reason, "failed_at": utcnow()})


def _loads(text: Any, what: str) -> Any:
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except (TypeError, ValueError) as err:
        raise NotificationFormatError(f"{what} is not JSON: {str(text)[:120]!r}") from err


def parse_notification(body: str) -> InferenceNotification:
    """Parse one SQS message body, enveloped or raw."""
    doc = _loads(body, "message body")
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        doc = _loads(doc["Message"], "SNS Message")
    if not isinstance(doc, dict):
        raise NotificationFormatError(f"expected a JSON object, got {type(doc).__name__}")
    inference_id = doc.get("inferenceId")
    status = doc.get("invocationStatus")
    if not inference_id or status not in ("Completed", "Failed"):
        raise NotificationFormatError(
            "not a SageMaker async inference notification (needs inferenceId and invocationStatus "
            f"Completed/Failed): {json.dumps(doc)[:200]}"
        )
    request = doc.get("requestParameters") or {}
    response = doc.get("responseParameters") or {}
    return InferenceNotification(
        inference_id=str(inference_id),
        succeeded=status == "Completed",
        input_location=request.get("inputLocation"),
        output_location=response.get("outputLocation"),
        failure_reason=doc.get("failureReason"),
        event_time=doc.get("eventTime"),
    )
