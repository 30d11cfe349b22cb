"""Endpoints and their AsyncInferenceConfig, read from the SageMaker control plane."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

DEFAULT_CONCURRENCY_PER_INSTANCE = 4


class ValidationError(Exception):
    """Answered as HTTP 400 ``ValidationError``, as sagemaker-runtime does."""


@dataclass(frozen=True)
class AsyncEndpoint:
    name: str
    output_path: str
    failure_path: str | None
    success_topic: str | None
    error_topic: str | None
    include_response_in: tuple[str, ...]
    concurrency: int


class EndpointDirectory:
    """Looks endpoints up (``DescribeEndpoint`` + ``DescribeEndpointConfig``), caching briefly."""

    def __init__(self, sagemaker_client: Any, ttl_seconds: float = 5.0) -> None:
        self.sagemaker = sagemaker_client
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[float, AsyncEndpoint]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> AsyncEndpoint:
        with self._lock:
            cached = self._cache.get(name)
            if cached and time.monotonic() - cached[0] < self.ttl_seconds:
                return cached[1]
        endpoint = self._describe(name)
        with self._lock:
            self._cache[name] = (time.monotonic(), endpoint)
        return endpoint

    def _describe(self, name: str) -> AsyncEndpoint:
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as err:
            raise ValidationError(f"Endpoint {name} of account 123456789012 not found.") from err
        if described["EndpointStatus"] not in ("InService", "Updating"):
            raise ValidationError(f"Endpoint {name} is not in service (status {described['EndpointStatus']}).")
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        async_config = config.get("AsyncInferenceConfig")
        if not async_config:
            raise ValidationError(f"Endpoint {name} is not an asynchronous inference endpoint.")
        output = async_config["OutputConfig"]
        notifications = output.get("NotificationConfig") or {}
        per_instance = (async_config.get("ClientConfig") or {}).get(
            "MaxConcurrentInvocationsPerInstance", DEFAULT_CONCURRENCY_PER_INSTANCE
        )
        instances = sum(max(1, v.get("InitialInstanceCount") or 1) for v in config.get("ProductionVariants", [])) or 1
        return AsyncEndpoint(
            name=name,
            output_path=output["S3OutputPath"],
            failure_path=output.get("S3FailurePath"),
            success_topic=notifications.get("SuccessTopic"),
            error_topic=notifications.get("ErrorTopic"),
            include_response_in=tuple(notifications.get("IncludeInferenceResponseIn") or ()),
            concurrency=per_instance * instances,
        )
