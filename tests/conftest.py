"""Test-wide settings: Airflow reads its home and options from the environment at import."""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

import pytest

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


@pytest.fixture(autouse=True, scope="session")
def moto_in_process_answers_one_request_at_a_time():
    """moto's in-process backends are not thread-safe (a transaction deep-copies a table that
    another thread may be writing), and the status table sends its chunks from threads, as real
    DynamoDB allows. Serialise what moto answers in-process, as the moto server does for its
    DynamoDB (``local.moto_server.DynamoDBInSeries``)."""
    from moto.core.botocore_stubber import BotocoreStubber

    answer, lock = BotocoreStubber.__call__, threading.RLock()

    def one_at_a_time(self: BotocoreStubber, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return answer(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BotocoreStubber, "__call__", one_at_a_time)
        yield
