"""Starting the stack's processes: each service gets a port of its own, and one that cannot serve
fails the start even where something else answers on its port."""

from __future__ import annotations

import http.server
import sys
import threading
from dataclasses import astuple
from types import SimpleNamespace

import pytest

from local.stack import services
from local.stack.processes import Processes, StackError
from local.stack.services import Ports, Service


def test_free_ports_are_five_distinct_ports():
    for _ in range(50):
        ports = astuple(Ports.free())
        assert len(set(ports)) == len(ports) == 5, ports
        assert all(1024 < port < 65536 for port in ports), ports


def test_free_ports_never_repeat_a_port_handed_out_before(monkeypatch):
    """Stacks started side by side in one process never share a port, even where the system
    offers one again after it was handed out (it is free until its service binds it)."""
    offered = iter([41001, 41002, 41003, 41004, 41005, 41001, 41003, 41006, 41007, 41008, 41009, 41010])

    class Offered:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def bind(self, address):
            self.port = next(offered)

        def getsockname(self):
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(services, "_HANDED_OUT", set())
    monkeypatch.setattr(services, "socket", SimpleNamespace(socket=Offered))
    first, second = astuple(Ports.free()), astuple(Ports.free())
    assert first == (41001, 41002, 41003, 41004, 41005)
    assert second == (41006, 41007, 41008, 41009, 41010)


@pytest.fixture
def squatter():
    """An HTTP server answering 200 everywhere, as a service of another stack would on a taken port."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _emulator(port: int, code: str) -> Service:
    return Service("emulator", [sys.executable, "-c", code], port, f"http://127.0.0.1:{port}/_emulator/health")


def test_a_service_that_exits_fails_the_start_though_its_port_answers(tmp_path, squatter):
    processes, dies = Processes(tmp_path, env={}), _emulator(squatter, "raise SystemExit('port taken')")
    processes.start(dies).wait()
    with pytest.raises(StackError, match="emulator exited during start-up"):
        processes.wait_healthy([dies], timeout=10)


def test_a_running_service_that_answers_is_healthy(tmp_path, squatter):
    processes, runs = Processes(tmp_path, env={}), _emulator(squatter, "import time; time.sleep(30)")
    process = processes.start(runs)
    try:
        processes.wait_healthy([runs], timeout=10)
    finally:
        process.kill()
        process.wait()
