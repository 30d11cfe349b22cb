"""The logger a trigger or sensor hands down: Airflow's task logger (structlog's, in Airflow 3)
or a ``logging.Logger``, typed by the calls the package makes on it."""

from __future__ import annotations

from typing import Protocol


class TaskLog(Protocol):
    def info(self, msg: object, /, *args: object) -> object: ...
    def warning(self, msg: object, /, *args: object) -> object: ...
