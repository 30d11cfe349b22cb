"""Starting, watching and stopping the stack's processes (pid files under <state>/run)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from local.stack.services import Service


class StackError(RuntimeError):
    """A service failed to start; the message names it and shows the end of its log."""


class Processes:
    def __init__(self, state_dir: Path, env: dict[str, str]) -> None:
        self.logs = state_dir / "logs"
        self.run = state_dir / "run"
        self.env = env
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True)

    def start(self, service: Service) -> subprocess.Popen:
        log = open(self.logs / f"{service.name}.log", "ab")  # noqa: SIM115 (the child owns it)
        process = subprocess.Popen(
            service.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        (self.run / f"{service.name}.pid").write_text(str(process.pid))
        return process

    def run_once(self, name: str, argv: list[str], timeout: float = 300, env: dict[str, str] | None = None) -> None:
        """Run ``argv`` to its end, with the stack's environment (and ``env`` over it)."""
        with open(self.logs / f"{name}.log", "ab") as log:
            result = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, env={**self.env, **(env or {})}, timeout=timeout
            )
        if result.returncode != 0:
            raise StackError(f"{name} exited with {result.returncode}\n{self.tail(name)}")

    def wait_healthy(self, services: Iterable[Service], timeout: float = 180) -> None:
        """Return once every service answers its health check and is still running: a service
        that died (a port already taken, say) fails the start even where something else answered
        on its port."""
        services = list(services)
        deadline = time.monotonic() + timeout
        for service in services:
            while not self._healthy(service):
                self._raise_if_exited(service)
                if time.monotonic() > deadline:
                    raise StackError(f"{service.name} not healthy after {timeout:.0f}s\n{self.tail(service.name)}")
                time.sleep(0.5)
        for service in services:
            self._raise_if_exited(service)

    def _raise_if_exited(self, service: Service) -> None:
        pid = self._pid(service.name)
        if pid is None or not _alive(pid):
            raise StackError(f"{service.name} exited during start-up\n{self.tail(service.name)}")

    @staticmethod
    def _healthy(service: Service) -> bool:
        if service.health is None:
            return True
        try:
            with urllib.request.urlopen(service.health, timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def running(self) -> dict[str, int]:
        out = {}
        for pid_file in sorted(self.run.glob("*.pid")):
            pid = int(pid_file.read_text())
            if _alive(pid):
                out[pid_file.stem] = pid
        return out

    def kill(self, name: str) -> None:
        """SIGKILL one service, as a crash would (the stack's other processes go on)."""
        pid = self._pid(name)
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)

    def stop_all(self, grace: float = 15) -> list[str]:
        stopped = []
        pids = {p.stem: int(p.read_text()) for p in self.run.glob("*.pid")}
        for pid in pids.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        for name, pid in pids.items():
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
            (self.run / f"{name}.pid").unlink(missing_ok=True)
            stopped.append(name)
        return stopped

    def _pid(self, name: str) -> int | None:
        path = self.run / f"{name}.pid"
        return int(path.read_text()) if path.exists() else None

    def tail(self, name: str, lines: int = 25) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return f"(no log at {path})"
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last lines of {path} ---\n" + "\n".join(text)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own children
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
