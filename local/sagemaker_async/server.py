"""The sagemaker-runtime HTTP surface: routing, headers, and errors as botocore parses them."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from urllib.parse import unquote

from local.aws_http import AwsJsonHandler
from local.sagemaker_async.constraints import validate
from local.sagemaker_async.endpoints import ValidationError
from local.sagemaker_async.service import AsyncInferenceService

log = logging.getLogger(__name__)

_INVOKE_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/async-invocations/?$")


class RuntimeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: AsyncInferenceService) -> None:
        super().__init__(address, RuntimeHandler)
        self.service = service


class RuntimeHandler(AwsJsonHandler):
    server: RuntimeServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/_emulator/health":
            self.send_json(HTTPStatus.OK, {"status": "ok", "endpoints": self.server.service.health()})
        else:
            self.send_error_json(HTTPStatus.NOT_FOUND, "UnknownOperationException", f"no operation at GET {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        match = _INVOKE_PATH.match(self.path.split("?", 1)[0])
        if not match:
            self.send_error_json(HTTPStatus.NOT_FOUND, "UnknownOperationException", f"no operation at POST {self.path}")
            return
        headers = {k.lower(): _header_text(v) for k, v in self.headers.items()}
        name = unquote(match["name"])
        try:
            validate(name, headers, body)
            request = self.server.service.accept(name, headers, body)
        except ValidationError as err:
            self.send_error_json(HTTPStatus.BAD_REQUEST, "ValidationError", str(err))
            return
        except Exception as err:
            log.exception("InvokeEndpointAsync failed")
            self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, "InternalFailure", f"{type(err).__name__}: {err}")
            return
        location_headers = {"X-Amzn-SageMaker-OutputLocation": request.output_location}
        if request.failure_location:
            location_headers["X-Amzn-SageMaker-FailureLocation"] = request.failure_location
        self.send_json(HTTPStatus.ACCEPTED, {"InferenceId": request.inference_id}, location_headers)
        self.server.service.answered(request)


def _header_text(value: str) -> str:
    """http.server decodes header bytes as latin-1; a client that sent UTF-8 gets its text back."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
