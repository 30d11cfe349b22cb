from __future__ import annotations

import logging

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from audio_pipeline.transient import TransientRetry, is_transient

log = logging.getLogger(__name__)


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        (client_error("InternalError", 500), True),
        (client_error("ServiceUnavailable", 503), True),
        (client_error("ThrottlingException", 400), True),
        (client_error("SlowDown", 503), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ReadTimeoutError(endpoint_url="http://x"), True),
        (client_error("AccessDenied", 403), False),
        (client_error("AWS.SimpleQueueService.NonExistentQueue", 400), False),
        (client_error("NoSuchKey", 404), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_is_transient(err, transient):
    assert is_transient(err) is transient


class Flaky:
    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, value: str) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return value


async def test_retries_transient_errors_with_a_logged_pause(caplog):
    step = Flaky(client_error("InternalError", 500), EndpointConnectionError(endpoint_url="http://x"))
    retrying = TransientRetry(log, "batch 1", timeout_seconds=60, base_delay_seconds=0.01)
    with caplog.at_level(logging.WARNING):
        assert await retrying(step, "done") == "done"
    assert step.calls == 3
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["batch 1", "batch 1"]
    assert "retry 1" in caplog.records[0].getMessage() and "InternalError" in caplog.records[0].getMessage()


async def test_other_errors_are_raised_at_once():
    step = Flaky(client_error("AccessDenied", 403))
    with pytest.raises(ClientError, match="AccessDenied"):
        await TransientRetry(log, "b", timeout_seconds=60, base_delay_seconds=0.01)(step, "x")
    assert step.calls == 1


async def test_gives_up_after_its_timeout():
    step = Flaky(*[client_error("InternalError", 500)] * 1000)
    with pytest.raises(ClientError, match="InternalError"):
        await TransientRetry(log, "b", timeout_seconds=0.3, base_delay_seconds=0.05, max_delay_seconds=0.05)(step, "x")
    assert 2 < step.calls < 20
