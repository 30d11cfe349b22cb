"""The documented notifications SageMaker publishes to the endpoint's success and error topics."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from local.sagemaker_async.requests import AsyncRequest


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def notification(
    request: AsyncRequest,
    region: str,
    *,
    finished_at: float,
    response_content_type: str | None = None,
    failure_reason: str | None = None,
    response_body: bytes | None = None,
) -> str:
    """Success when ``failure_reason`` is None, else the error notification (no responseParameters)."""
    request_parameters = {"contentType": request.content_type or "application/octet-stream"}
    if request.accept:
        request_parameters["accept"] = request.accept
    request_parameters["endpointName"] = request.endpoint_name
    if request.input_location:  # not for a payload sent inline
        request_parameters["inputLocation"] = request.input_location
    doc: dict = {
        "awsRegion": region,
        "eventTime": _iso(finished_at),
        "receivedTime": _iso(request.received_at),
        "invocationStatus": "Failed" if failure_reason else "Completed",
        "requestParameters": request_parameters,
    }
    if failure_reason:
        doc["failureReason"] = failure_reason
    else:
        doc["responseParameters"] = {
            "contentType": response_content_type or "application/json",
            "outputLocation": request.output_location,
        }
    if response_body is not None:
        doc["responseBody"] = {
            "content": base64.b64encode(response_body).decode(),
            "message": "Response body is inline",
            "encoding": "BASE64",
        }
    doc.update(
        {
            "inferenceId": request.inference_id,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }
    )
    return json.dumps(doc)
