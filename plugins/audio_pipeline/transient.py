"""Transient AWS errors, and waiting through them with bounded backoff.

botocore retries a call a few times; an outage longer than that (SQS answering 5xx for
half a minute, a dropped connection) reaches the caller. Inside a trigger that would fail
the sensor attempt and, with it, a batch whose results are all still coming: the trigger
instead runs its step again after a pause, for at most ``timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from audio_pipeline.task_log import TaskLog

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""Error codes botocore's standard retry mode treats as throttling or transient."""


def is_transient(err: BaseException) -> bool:
    """A 5xx answer, throttling or a broken connection: the same call may well succeed later."""
    if isinstance(err, (BotocoreConnectionError, HTTPClientError)):
        return True
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or err.response.get("Error", {}).get("Code") in THROTTLING_CODES
    return False


class TransientRetry:
    """
    Runs an async step again after a transient AWS error, with exponential backoff (equal
    jitter) capped at ``max_delay_seconds``, until it succeeds or has failed for
    ``timeout_seconds`` in a row; any other error, or the last transient one, is raised.

    :param log: where each retry is logged (a warning naming the error and the pause)
    :param what: what the step is, for the log
    :param timeout_seconds: how long a step may keep failing before its error is raised
    """

    def __init__(
        self,
        log: TaskLog,
        what: str,
        timeout_seconds: float,
        *,
        base_delay_seconds: float = 1.0,
        max_delay_seconds: float = 30.0,
    ) -> None:
        self.log, self.what, self.timeout_seconds = log, what, timeout_seconds
        self.base_delay_seconds, self.max_delay_seconds = base_delay_seconds, max_delay_seconds

    async def __call__(self, step: Callable[..., Awaitable[T]], *args: Any) -> T:
        failing_since: float | None = None
        attempt = 0
        while True:
            try:
                return await step(*args)
            except Exception as err:
                now = time.monotonic()
                failing_since = failing_since or now
                if not is_transient(err) or now - failing_since >= self.timeout_seconds:
                    raise
                attempt += 1
                ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2**attempt)
                delay = random.uniform(ceiling / 2, ceiling)
                delay = min(delay, max(0.0, failing_since + self.timeout_seconds - now))
                self.log.warning(
                    "%s: transient error, retry %d in %.1fs (failing for %.0fs of at most %.0fs): %s: %s",
                    self.what,
                    attempt,
                    delay,
                    now - failing_since,
                    self.timeout_seconds,
                    type(err).__name__,
                    err,
                )
                await asyncio.sleep(delay)
