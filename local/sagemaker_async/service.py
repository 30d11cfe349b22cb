"""Queues, workers and the work SageMaker does for each asynchronous request."""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from local.sagemaker_async.endpoints import AsyncEndpoint, EndpointDirectory, ValidationError
from local.sagemaker_async.notifications import notification
from local.sagemaker_async.requests import AsyncRequest, Journal, build_request
from local.witness import WitnessJournal, request_headers

log = logging.getLogger(__name__)

MODEL_CONNECT_RETRIES = 5
INPUT_LIMIT_BYTES = 1_000_000_000
NOTIFICATION_BODY_LIMIT_BYTES = 128 * 1024
"""IncludeInferenceResponseIn: a larger response is left out of the notification."""


@dataclass(frozen=True)
class Faults:
    duplicate_notifications: float = 0.0
    drop_notifications: float = 0.0

    @staticmethod
    def _chosen(inference_id: str, rate: float, salt: str) -> bool:
        if rate <= 0:
            return False
        digest = hashlib.sha256(f"{salt}:{inference_id}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < rate


@dataclass
class EndpointStats:
    accepted: int = 0
    completed: int = 0
    failed: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    model_busy_seconds: float = 0.0
    first_accepted_at: float | None = None
    last_finished_at: float | None = None
    notifications_published: int = 0


class RequestFailed(Exception):
    """The reason a request failed, and the body to store at its FailureLocation (the model's answer, if any)."""

    def __init__(self, reason: str, body: bytes = b"") -> None:
        super().__init__(reason)
        self.body = body


@dataclass
class _EndpointQueue:
    endpoint: AsyncEndpoint
    requests: queue.Queue = field(default_factory=queue.Queue)
    stats: EndpointStats = field(default_factory=EndpointStats)
    model_slots: threading.BoundedSemaphore | None = None
    """MaxConcurrentInvocationsPerInstance x instances: concurrent calls into the model container."""

    def __post_init__(self) -> None:
        self.model_slots = threading.BoundedSemaphore(self.endpoint.concurrency)


class AsyncInferenceService:
    def __init__(
        self,
        *,
        sagemaker: Any,
        s3: Any,
        sns: Any,
        region: str,
        model_url: str,
        journal: Journal,
        faults: Faults = Faults(),
        clock: Callable[[], float] = time.time,
        witness: WitnessJournal | None = None,
    ) -> None:
        self.endpoints = EndpointDirectory(sagemaker)
        self.s3 = s3
        self.sns = sns
        self.region = region
        self.model_url = model_url.rstrip("/")
        self.journal = journal
        self.faults = faults
        self.clock = clock
        self.witness = witness
        self._queues: dict[str, _EndpointQueue] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------- accepting

    def accept(self, endpoint_name: str, headers: dict[str, str], body: bytes = b"") -> AsyncRequest:
        endpoint = self.endpoints.get(endpoint_name)
        request = build_request(endpoint, headers, received_at=self.clock(), body=body)
        self.journal.add(request)
        self._witness(request)
        self._enqueue(endpoint, request)
        return request

    def _witness(self, request: AsyncRequest, **extra: Any) -> None:
        """Witness a journaled request before it can run: one that died unjournaled was never accepted
        (no 202 went out, nothing runs it), and one journaled but not yet witnessed is witnessed on resume."""
        if self.witness:
            self.witness.record(
                "accepted",
                endpoint=request.endpoint_name,
                request_id=request.request_id,
                inference_id=request.inference_id,
                input_location=request.input_location,
                output_location=request.output_location,
                failure_location=request.failure_location,
                **extra,
            )

    def answered(self, request: AsyncRequest) -> None:
        """Witness that the 202 for ``request`` went out: its caller learned the output location."""
        if self.witness:
            self.witness.record("answered", request_id=request.request_id)

    def resume(self) -> int:
        """Re-queue what the journal holds (requests accepted before a restart)."""
        pending = self.journal.pending()
        for request in pending:
            try:
                endpoint = self.endpoints.get(request.endpoint_name)
            except ValidationError as err:  # its endpoint was deleted: SageMaker drops its queue too
                log.warning("dropping journaled request %s: %s", request.inference_id, err)
                self.journal.remove(request)
                continue
            self._witness(request, resumed=True)
            self._enqueue(endpoint, request)
        if pending:
            log.info("resumed %d journaled requests", len(pending))
        return len(pending)

    def _enqueue(self, endpoint: AsyncEndpoint, request: AsyncRequest) -> None:
        with self._lock:
            q = self._queues.get(endpoint.name)
            if q is None:
                q = self._queues[endpoint.name] = _EndpointQueue(endpoint)
                # twice the model's slots: S3 and SNS work of one request overlaps another's model call
                for i in range(2 * endpoint.concurrency):
                    threading.Thread(target=self._work, args=(q,), name=f"{endpoint.name}-{i}", daemon=True).start()
            q.stats.accepted += 1
            if q.stats.first_accepted_at is None:
                q.stats.first_accepted_at = request.received_at
        q.requests.put(request)

    def health(self) -> dict:
        with self._lock:
            return {
                name: {"queued": q.requests.qsize(), "concurrency": q.endpoint.concurrency, **vars(q.stats)}
                for name, q in self._queues.items()
            }

    # ------------------------------------------------------------ processing

    def _work(self, q: _EndpointQueue) -> None:
        while True:
            request = q.requests.get()
            try:
                self._process(q, request)
            except Exception:  # a broken request must not kill the worker
                log.exception("request %s could not be finished; it stays in the journal", request.request_id)

    def _process(self, q: _EndpointQueue, request: AsyncRequest) -> None:
        try:
            self._check_age(request)
            payload, content_type, etag = self._read_input(request)
            with q.model_slots:
                self._check_age(request)  # waiting for a model slot is waiting in the queue
                body, response_type = self._call_model(q, request, payload, content_type, etag)
        except RequestFailed as err:
            self._fail(q, request, str(err), err.body)
            return
        bucket, key = _split(request.output_location)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=response_type)
        self._notify(q, request, body, response_content_type=response_type)
        self._finish(q, request, failed=False)

    def _check_age(self, request: AsyncRequest) -> None:
        waited = self.clock() - request.received_at
        if waited > request.request_ttl_seconds:
            raise RequestFailed(
                f"Request expired: it waited {waited:.0f}s in the queue, over RequestTTLSeconds "
                f"({request.request_ttl_seconds}s)."
            )

    def _read_input(self, request: AsyncRequest) -> tuple[bytes, str | None, str | None]:
        """The payload, its stored content type and its ETag (None for a payload sent inline)."""
        if request.inline_input is not None:
            return base64.b64decode(request.inline_input), None, None
        location = request.input_location
        bucket, key = _split(location)
        try:
            obj = self.s3.get_object(Bucket=bucket, Key=key)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            raise RequestFailed(f"ClientError: Failed to download input from {location}: {code}.") from err
        if obj["ContentLength"] > INPUT_LIMIT_BYTES:
            raise RequestFailed(f"ClientError: Input {location} is larger than 1 GB.")
        return obj["Body"].read(), obj.get("ContentType"), obj.get("ETag")

    def _call_model(
        self, q: _EndpointQueue, request: AsyncRequest, payload: bytes, content_type: str | None, etag: str | None
    ) -> tuple[bytes, str]:
        with self._lock:
            q.stats.in_flight += 1
            q.stats.max_in_flight = max(q.stats.max_in_flight, q.stats.in_flight)
        started = time.monotonic()
        try:
            return self._invoke_model(request, payload, content_type, etag)
        finally:
            with self._lock:
                q.stats.in_flight -= 1
                q.stats.model_busy_seconds += time.monotonic() - started

    def _invoke_model(
        self, request: AsyncRequest, payload: bytes, stored_type: str | None, etag: str | None
    ) -> tuple[bytes, str]:
        headers = {
            "Content-Type": request.content_type or stored_type or "application/octet-stream",
            # which file version this is, for the model server's witness journal
            **request_headers(request.input_location, etag, request.inference_id, request.request_id),
        }
        if request.accept:
            headers["Accept"] = request.accept
        if request.custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = request.custom_attributes
        http = urllib.request.Request(f"{self.model_url}/invocations", data=payload, headers=headers, method="POST")
        attempt = 0
        while True:
            attempt += 1
            try:
                with urllib.request.urlopen(http, timeout=request.invocation_timeout_seconds) as response:
                    return response.read(), response.headers.get("Content-Type", "application/json")
            except urllib.error.HTTPError as err:
                body = err.read()
                kind = "client" if err.code < 500 else "server"
                message = body.decode("utf-8", "replace")[:1000]
                raise RequestFailed(
                    f'ClientError: Received {kind} error ({err.code}) from primary with message "{message}". '
                    f"See the endpoint's CloudWatch logs in account 123456789012 for more information.",
                    body,
                ) from err
            except TimeoutError as err:
                raise RequestFailed(
                    "ClientError: The model container did not respond within InvocationTimeoutSeconds "
                    f"({request.invocation_timeout_seconds}s)."
                ) from err
            except (urllib.error.URLError, ConnectionError) as err:
                # only a refused connection is retried (the model is starting): a request the model
                # dropped, for instance by crashing on it, is not sent again
                refused = isinstance(getattr(err, "reason", err), ConnectionRefusedError)
                if not refused or attempt == MODEL_CONNECT_RETRIES:
                    raise RequestFailed(f"ClientError: An error occurred when calling the model: {err}.") from err
                time.sleep(min(0.5 * 2**attempt, 8))

    def _fail(self, q: _EndpointQueue, request: AsyncRequest, reason: str, body: bytes) -> None:
        log.info("request %s (%s) failed: %s", request.inference_id, request.input_location, reason)
        if request.failure_location:
            bucket, key = _split(request.failure_location)
            self.s3.put_object(Bucket=bucket, Key=key, Body=body or reason.encode(), ContentType="text/plain")
        self._notify(q, request, body, failure_reason=reason)
        self._finish(q, request, failed=True)

    def _notify(self, q: _EndpointQueue, request: AsyncRequest, body: bytes, **fields: Any) -> None:
        """To the error topic when ``fields`` has a failure_reason, else to the success topic; with the
        model's answer in ``responseBody`` if IncludeInferenceResponseIn names that topic."""
        failed = fields.get("failure_reason") is not None
        topic = q.endpoint.error_topic if failed else q.endpoint.success_topic
        if not topic:
            return
        if Faults._chosen(request.inference_id, self.faults.drop_notifications, "drop"):
            log.warning("fault injection: notification for %s dropped", request.inference_id)
            return
        included = "ERROR_NOTIFICATION_TOPIC" if failed else "SUCCESS_NOTIFICATION_TOPIC"
        if body and included in q.endpoint.include_response_in and len(body) <= NOTIFICATION_BODY_LIMIT_BYTES:
            fields["response_body"] = body
        message = notification(request, self.region, finished_at=self.clock(), **fields)
        copies = 2 if Faults._chosen(request.inference_id, self.faults.duplicate_notifications, "dup") else 1
        for _ in range(copies):
            self.sns.publish(TopicArn=topic, Message=message)
        with self._lock:
            q.stats.notifications_published += copies

    def _finish(self, q: _EndpointQueue, request: AsyncRequest, *, failed: bool) -> None:
        self.journal.remove(request)
        with self._lock:
            if failed:
                q.stats.failed += 1
            else:
                q.stats.completed += 1
            q.stats.last_finished_at = self.clock()


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key
