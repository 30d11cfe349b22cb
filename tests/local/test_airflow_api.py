"""The demo's Airflow REST client outlives one late answer from a busy api-server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local.stack.airflow_api import AirflowApi


class SlowFirstRead(BaseHTTPRequestHandler):
    """Answers like the api-server, but the first read of a run's state comes after the client gave up."""

    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        if self.path == "/auth/token":
            return self._json({"access_token": "t"})
        if len([p for p in self.requests if p != "/auth/token"]) == 1:
            time.sleep(0.5)
        self._json({"state": "success"})

    def do_POST(self):  # noqa: N802
        self.requests.append(self.path)
        time.sleep(0.5)
        self._json({"dag_run_id": "r"})

    def _json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    SlowFirstRead.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowFirstRead)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_read_that_times_out_is_asked_again(server):
    api = AirflowApi(server, timeout=0.2)
    assert api.wait_for_run("r", timeout=10) == "success"
    assert SlowFirstRead.requests.count("/api/v2/dags/audio_transcription/dagRuns/r") == 2


def test_a_write_is_sent_once(server):
    api = AirflowApi(server, timeout=0.2)
    with pytest.raises(TimeoutError):
        api._call("POST", "/api/v2/dags/audio_transcription/dagRuns", {"conf": {}})
    assert SlowFirstRead.requests.count("/api/v2/dags/audio_transcription/dagRuns") == 1
