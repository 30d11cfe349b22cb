"""One accepted asynchronous request, its validation, and its on-disk journal."""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from local.sagemaker_async.endpoints import AsyncEndpoint, ValidationError

DEFAULT_TTL = 21600
DEFAULT_TIMEOUT = 900


@dataclass
class AsyncRequest:
    request_id: str
    endpoint_name: str
    input_location: str | None
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    inference_id: str
    request_ttl_seconds: int
    invocation_timeout_seconds: int
    received_at: float
    output_location: str
    failure_location: str | None
    inline_input: str | None = None
    """The request's inline ``Body`` (base64), when it has no InputLocation."""


def _join(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name.lstrip("/")


def _int_header(value: str | None, default: int) -> int:
    return default if value is None else int(value)


def build_request(
    endpoint: AsyncEndpoint, headers: dict[str, str], received_at: float, body: bytes = b""
) -> AsyncRequest:
    """Name the result objects of a request whose parameters meet the model's constraints
    (:func:`local.sagemaker_async.constraints.validate`)."""
    input_location = headers.get("x-amzn-sagemaker-inputlocation")
    if bool(input_location) == bool(body):
        raise ValidationError("Provide exactly one of Body (the payload inline) and InputLocation.")
    if input_location and (not input_location.startswith("s3://") or "/" not in input_location[len("s3://") :]):
        raise ValidationError(f"InputLocation {input_location!r} must be an S3 URI (s3://bucket/key).")
    request_id = str(uuid.uuid4())
    extension = headers.get("x-amzn-sagemaker-s3outputpathextension")
    output_path = _join(endpoint.output_path, extension) if extension else endpoint.output_path
    return AsyncRequest(
        request_id=request_id,
        endpoint_name=endpoint.name,
        input_location=input_location,
        content_type=headers.get("x-amzn-sagemaker-content-type"),
        accept=headers.get("x-amzn-sagemaker-accept"),
        custom_attributes=headers.get("x-amzn-sagemaker-custom-attributes"),
        inference_id=headers.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4()),
        request_ttl_seconds=_int_header(headers.get("x-amzn-sagemaker-requestttlseconds"), DEFAULT_TTL),
        invocation_timeout_seconds=_int_header(
            headers.get("x-amzn-sagemaker-invocationtimeoutseconds"), DEFAULT_TIMEOUT
        ),
        received_at=received_at,
        output_location=_join(output_path, headers.get("x-amzn-sagemaker-filename") or f"{request_id}.out"),
        failure_location=_join(endpoint.failure_path, f"{request_id}-error.out") if endpoint.failure_path else None,
        inline_input=base64.b64encode(body).decode() if body else None,
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
