"""What the emulators share: a JSON request handler answering as AWS's JSON protocols do, and
the serve loop of their ``__main__``."""

from __future__ import annotations

import json
import logging
import math
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

log = logging.getLogger(__name__)


class AwsJsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def send_json(self, status: int, doc: dict, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status: int, code: str, message: str) -> None:
        """An error as botocore parses it: the code in ``x-amzn-ErrorType``, the text in ``message``."""
        self.send_json(status, {"message": message}, {"x-amzn-ErrorType": f"{code}:"})


def switch_value(query: str, name: str) -> float:
    """The value of a fault or latency switch (``POST /_emulator/...?seconds=N``): the query
    parameter ``name``, a number of at least 0 (0 when absent; ``ValueError`` naming it if not)."""
    text = parse_qs(query).get(name, ["0"])[0]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:  # nan too
        raise ValueError(f"{name}={text!r}: expected a number of at least 0")
    return value


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)


def serve(server: HTTPServer, what: str) -> None:
    host, port = server.server_address[:2]
    log.info("%s on http://%s:%d", what, host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
