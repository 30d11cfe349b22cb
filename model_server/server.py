"""The SageMaker inference container contract over HTTP: ``GET /ping``, ``POST /invocations``.

Fault injection for the project's fault tests, off unless set:

- ``MODEL_FAULT_FAIL_MARKER``: a request whose body contains these bytes gets HTTP 500;
- ``MODEL_FAULT_CRASH_MARKER``: such a request makes the process exit at once (a model crash).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from model_server.backends import Backend, BadAudio

if TYPE_CHECKING:  # local/ is not in the SageMaker container; only the local stack sets a witness
    from local.witness import ModelWitness

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000_000


class InferenceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        super().__init__(address, InvocationHandler)
        self.backend = backend
        # how many requests the backend serves at once (the CPU model: one; a sleeping benchmark: many)
        self.concurrency: int = getattr(backend, "max_concurrency", 1)
        self.slots = threading.BoundedSemaphore(self.concurrency)
        self.fail_marker = os.environ.get("MODEL_FAULT_FAIL_MARKER", "").encode() or None
        self.crash_marker = os.environ.get("MODEL_FAULT_CRASH_MARKER", "").encode() or None
        self.witness: ModelWitness | None = None
        """The local stack's witness journal: every call and its outcome."""


class InvocationHandler(BaseHTTPRequestHandler):
    server: InferenceServer
    protocol_version = "HTTP/1.1"
    call_id: str | None = None

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _reply(self, status: HTTPStatus, doc: dict) -> None:
        if self.call_id and self.server.witness:
            self.server.witness.outcome(self.call_id, int(status))
            self.call_id = None
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse_if_unhealthy(self) -> bool:
        """503 with the backend's reason when it cannot serve (SageMaker then routes nothing here)."""
        reason = getattr(self.server.backend, "unhealthy", None)
        if reason:
            self._reply(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"status": "unhealthy", "backend": self.server.backend.name, "error": reason},
            )
        return bool(reason)

    def do_GET(self) -> None:
        if self.path == "/ping":
            if not self._refuse_if_unhealthy():
                self._reply(HTTPStatus.OK, {"status": "healthy", "backend": self.server.backend.name})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}: use GET /ping"})

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}: use POST /invocations"})
            return
        if self._refuse_if_unhealthy():
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body of {length} bytes is over 1 GB"})
            return
        # the slot first: a request waiting for the model holds no body in memory (its upload
        # waits in the socket), so a queue of large files cannot exhaust the container
        with self.server.slots:
            self._invoke(self.rfile.read(length))

    def _invoke(self, audio: bytes) -> None:
        """Answer one request body; the caller holds a model slot."""
        if self.server.witness:
            self.call_id = self.server.witness.call(self.headers, audio)
        if self.server.crash_marker and self.server.crash_marker in audio:
            log.error("crash marker found: exiting abruptly (fault injection)")
            os._exit(3)
        if self.server.fail_marker and self.server.fail_marker in audio:
            self._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "model failure injected by MODEL_FAULT_FAIL_MARKER"}
            )
            return
        started = time.monotonic()
        try:
            result = self.server.backend.transcribe(audio)
        except BadAudio as err:
            log.info("rejected %d bytes: %s", len(audio), err)
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(err)})
            return
        except Exception as err:
            log.exception("transcription failed")
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})
            return
        result.processing_seconds = round(time.monotonic() - started, 3)
        result.concurrent_requests = self.server.concurrency
        log.info(
            "transcribed %.1fs of audio in %.2fs (%d bytes)",
            result.duration_seconds,
            result.processing_seconds,
            len(audio),
        )
        self._reply(HTTPStatus.OK, result.to_dict())


def serve(host: str, port: int, backend: Backend) -> InferenceServer:
    """Load the backend, then bind; the caller runs ``serve_forever()``."""
    started = time.monotonic()
    backend.load()
    log.info("backend %s loaded in %.1fs", backend.name, time.monotonic() - started)
    return InferenceServer((host, port), backend)
