"""One accepted asynchronous request, its validation, and its on-disk journal."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from local.sagemaker_async.endpoints import AsyncEndpoint, ValidationError

TTL_RANGE = (60, 21600)
TIMEOUT_RANGE = (1, 3600)
DEFAULT_TTL = 21600
DEFAULT_TIMEOUT = 900


@dataclass
class AsyncRequest:
    request_id: str
    endpoint_name: str
    input_location: str
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    inference_id: str
    request_ttl_seconds: int
    invocation_timeout_seconds: int
    received_at: float
    output_location: str
    failure_location: str | None


def _join(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


def _int_header(value: str | None, name: str, bounds: tuple[int, int], default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(f"{name} must be an integer, got {value!r}.") from None
    low, high = bounds
    if not low <= number <= high:
        raise ValidationError(f"{name} must be between {low} and {high}, got {number}.")
    return number


def build_request(endpoint: AsyncEndpoint, headers: dict[str, str], received_at: float) -> AsyncRequest:
    """Validate the request headers like sagemaker-runtime does, and name the result objects."""
    input_location = headers.get("x-amzn-sagemaker-inputlocation")
    if not input_location:
        raise ValidationError("InputLocation is required.")
    if not input_location.startswith("s3://") or "/" not in input_location[len("s3://") :]:
        raise ValidationError(f"InputLocation {input_location!r} must be an S3 URI (s3://bucket/key).")
    inference_id = headers.get("x-amzn-sagemaker-inference-id")
    if inference_id is not None and not 1 <= len(inference_id) <= 64:
        raise ValidationError("InferenceId must be 1 to 64 characters long.")
    custom = headers.get("x-amzn-sagemaker-custom-attributes")
    if custom is not None and len(custom) > 1024:
        raise ValidationError("CustomAttributes must be at most 1024 characters long.")
    request_id = str(uuid.uuid4())
    return AsyncRequest(
        request_id=request_id,
        endpoint_name=endpoint.name,
        input_location=input_location,
        content_type=headers.get("x-amzn-sagemaker-content-type"),
        accept=headers.get("x-amzn-sagemaker-accept"),
        custom_attributes=custom,
        inference_id=inference_id or str(uuid.uuid4()),
        request_ttl_seconds=_int_header(
            headers.get("x-amzn-sagemaker-requestttlseconds"), "RequestTTLSeconds", TTL_RANGE, DEFAULT_TTL
        ),
        invocation_timeout_seconds=_int_header(
            headers.get("x-amzn-sagemaker-invocationtimeoutseconds"),
            "InvocationTimeoutSeconds",
            TIMEOUT_RANGE,
            DEFAULT_TIMEOUT,
        ),
        received_at=received_at,
        output_location=_join(endpoint.output_path, f"{request_id}.out"),
        failure_location=_join(endpoint.failure_path, f"{request_id}-error.out") if endpoint.failure_path else None,
    )


class Journal:
    """Accepted, unfinished requests as one JSON file each: what a restart resumes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, request: AsyncRequest) -> None:
        path = self.directory / f"{request.request_id}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(request)))
        os.replace(temporary, path)

    def remove(self, request: AsyncRequest) -> None:
        (self.directory / f"{request.request_id}.json").unlink(missing_ok=True)

    def pending(self) -> list[AsyncRequest]:
        requests = [AsyncRequest(**json.loads(p.read_text())) for p in self.directory.glob("*.json")]
        return sorted(requests, key=lambda r: r.received_at)
