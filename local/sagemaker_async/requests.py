"""One accepted asynchronous request, its validation, and its on-disk journal."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from local.sagemaker_async.endpoints import AsyncEndpoint, ValidationError

TTL_RANGE = (60, 21600)
TIMEOUT_RANGE = (1, 3600)
DEFAULT_TTL = 21600
DEFAULT_TIMEOUT = 900
INLINE_LIMIT_BYTES = 128_000

# parameter: (its header after "x-amzn-sagemaker-", the pattern of botocore's model, what it asks)
_STRING_HEADERS = {
    "InferenceId": ("inference-id", r"[!-~][ -~]{0,63}", "1 to 64 printable ASCII characters"),
    "CustomAttributes": ("custom-attributes", r"[\x00-\x7f]{0,1024}", "at most 1024 ASCII characters"),
    "S3OutputPathExtension": ("s3outputpathextension", r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]{1,512}", "a relative path"),
    "Filename": ("filename", r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}", "1 to 32 characters, at most one '.'"),
}


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


def _string_headers(headers: dict[str, str]) -> dict[str, str | None]:
    values = {}
    for name, (header, pattern, rule) in _STRING_HEADERS.items():
        value = values[name] = headers.get(f"x-amzn-sagemaker-{header}")
        if value is not None and not re.fullmatch(pattern, value):
            raise ValidationError(f"{name} must be {rule}, got {value!r}.")
    return values


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


def build_request(
    endpoint: AsyncEndpoint, headers: dict[str, str], received_at: float, body: bytes = b""
) -> AsyncRequest:
    """Validate the request like sagemaker-runtime does, and name the result objects."""
    input_location = headers.get("x-amzn-sagemaker-inputlocation")
    if bool(input_location) == bool(body):
        raise ValidationError("Provide exactly one of Body (the payload inline) and InputLocation.")
    if len(body) > INLINE_LIMIT_BYTES:
        raise ValidationError(f"Body is {len(body)} bytes, over the 128000 of an inline payload: use InputLocation.")
    if input_location and (not input_location.startswith("s3://") or "/" not in input_location[len("s3://") :]):
        raise ValidationError(f"InputLocation {input_location!r} must be an S3 URI (s3://bucket/key).")
    strings = _string_headers(headers)
    request_id = str(uuid.uuid4())
    extension = strings["S3OutputPathExtension"]
    output_path = _join(endpoint.output_path, extension) if extension else endpoint.output_path
    return AsyncRequest(
        request_id=request_id,
        endpoint_name=endpoint.name,
        input_location=input_location,
        content_type=headers.get("x-amzn-sagemaker-content-type"),
        accept=headers.get("x-amzn-sagemaker-accept"),
        custom_attributes=strings["CustomAttributes"],
        inference_id=strings["InferenceId"] or str(uuid.uuid4()),
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
        output_location=_join(output_path, strings["Filename"] or f"{request_id}.out"),
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
