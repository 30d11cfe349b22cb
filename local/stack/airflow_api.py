"""The Airflow 3 REST API, as a user's script would call it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DAG_ID = "audio_transcription"
TERMINAL = ("success", "failed")


class AirflowApi:
    def __init__(self, base_url: str, timeout: float = 30, read_attempts: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # a GET that times out is asked again, up to read_attempts in all (an api-server with one
        # worker on a busy 2-core machine can answer one request late); other methods are sent once
        self.read_attempts = read_attempts
        self._token: str | None = None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        attempts = self.read_attempts if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._send(method, path, body)
            except TimeoutError:
                if attempt == attempts:
                    raise

    def _send(self, method: str, path: str, body: Any) -> Any:
        if self._token is None:
            with urllib.request.urlopen(f"{self.base_url}/auth/token", timeout=self.timeout) as response:
                self._token = json.loads(response.read())["access_token"]
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read() or b"null")

    def wait_for_dag(self, timeout: float = 180, dag_id: str = DAG_ID) -> None:
        """The DAG processor has parsed the DAG (and it has no import errors)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
            errors = self._call("GET", "/api/v2/importErrors").get("import_errors", [])
            if errors:
                raise RuntimeError("DAG import errors:\n" + "\n".join(e["stack_trace"] for e in errors))
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAG {dag_id} was not parsed within {timeout:.0f}s")
            time.sleep(1)

    def unpause(self, dag_id: str = DAG_ID) -> None:
        self._call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def is_paused(self, dag_id: str = DAG_ID) -> bool:
        return bool(self._call("GET", f"/api/v2/dags/{dag_id}")["is_paused"])

    def trigger(self, conf: dict[str, Any], dag_id: str = DAG_ID) -> str:
        """A manual run, as ``airflow dags trigger`` starts one: the DAG is not unpaused first (the
        stack creates it unpaused, as MWAA does; a paused DAG's run waits, queued)."""
        run = self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def mark_run(self, run_id: str, state: str, dag_id: str = DAG_ID) -> None:
        """Set a run's state by hand, as from the UI's "Mark run as failed" (its running tasks are stopped)."""
        self._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}", {"state": state})

    def mark_task(self, run_id: str, task_id: str, state: str, dag_id: str = DAG_ID) -> None:
        """Set one task instance's state by hand, as from the UI's "Mark as ..."."""
        run = urllib.request.quote(run_id, safe="")
        self._call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}", {"new_state": state})

    def dag_runs(self, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def asset_events(self, **filters: str) -> list[dict[str, Any]]:
        """Asset events, filtered as the API allows (``source_dag_id``, ``source_run_id``, ...)."""
        query = urllib.parse.urlencode(filters)
        return self._call("GET", f"/api/v2/assets/events?{query}")["asset_events"]

    def wait_for_run(self, run_id: str, timeout: float, dag_id: str = DAG_ID) -> str:
        deadline = time.monotonic() + timeout
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}"
        while True:
            state = self._call("GET", path)["state"]
            if state in TERMINAL:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {state} after {timeout:.0f}s")
            time.sleep(2)

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        """Every task instance of the run (the API pages them, 100 at a time by default)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}/taskInstances"
        found: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", f"{path}?limit=100&offset={len(found)}")
            found.extend(page["task_instances"])
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def extra_links(self, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        """The task's extra links as the UI shows them (name -> URL)."""
        run = urllib.request.quote(run_id, safe="")
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/{task_id}/links?map_index={map_index}"
        return self._call("GET", path)["extra_links"]

    def task_log(self, run_id: str, task_id: str, try_number: int = 1, dag_id: str = DAG_ID) -> str:
        """The task's log as the UI shows it: one line per event, and each exception as ``type: message``."""
        run = urllib.request.quote(run_id, safe="")
        content = self._call(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        )["content"]
        lines = []
        for line in content:
            if not isinstance(line, dict):
                lines.append(str(line))
                continue
            lines.append(str(line.get("event", "")))
            lines += [f"{e.get('exc_type')}: {e.get('exc_value')}" for e in line.get("error_detail") or []]
        return "\n".join(lines)
