"""Test-wide settings: Airflow reads its home and options from the environment at import."""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

import pytest

if "AIRFLOW_HOME" not in os.environ:
    _AIRFLOW_HOME = tempfile.TemporaryDirectory(prefix="airflow-home-")  # removed when the session ends
    os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME.name
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


@pytest.fixture(autouse=True, scope="session")
def moto_in_process_answers_dynamodb_one_request_at_a_time():
    """moto's in-process DynamoDB is not thread-safe (a transaction deep-copies a table that
    another thread may be writing), and the status table sends its chunks from threads, as real
    DynamoDB allows. Serialise the DynamoDB requests moto answers in-process, as the moto server
    does (``local.moto_server.DynamoDBInSeries``); other services answer as they come."""
    from moto.core.botocore_stubber import BotocoreStubber

    answer, lock = BotocoreStubber.__call__, threading.RLock()

    def dynamodb_in_series(self: BotocoreStubber, event_name: str, *args: Any, **kwargs: Any) -> Any:
        if not event_name.startswith("before-send.dynamodb."):
            return answer(self, event_name, *args, **kwargs)
        with lock:
            return answer(self, event_name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BotocoreStubber, "__call__", dynamodb_in_series)
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests first, the end-to-end ones (marked ``e2e``) after them in their own order: what
    takes seconds to find is reported first, and in CI the unit tests (one core) share the machine
    with ``make test-latest`` while the end-to-end stacks, which want both cores, come after it."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
