"""A moto server on a free loopback port, for code that must talk HTTP (aiobotocore in triggers):
moto's own, in this process, or the project's ``local.moto_server`` as a process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        # moto keeps its state in process-wide backends: leave none behind for the next test
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
        server.stop()


@contextmanager
def serving_process(argv, ready_url, env=None):
    """A server process (output discarded), once ``ready_url`` answers; killed on exit."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, f"{argv} did not start"
                time.sleep(0.1)
        yield process
    finally:
        process.kill()
        process.wait()


@contextmanager
def local_moto_server() -> Iterator[str]:
    """``python -m local.moto_server`` (the stack's moto, with its fault switches) on a free port."""
    port = free_port()
    argv = [sys.executable, "-m", "local.moto_server", "-H", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    with serving_process(argv, f"{url}/_emulator/calls"):
        yield url
