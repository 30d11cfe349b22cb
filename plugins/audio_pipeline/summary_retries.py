"""How a summarising task rides out a Bedrock outage: Airflow's own retries, backing off
exponentially for about ``summary_retry_seconds``, the worker slot free between tries.

The task retries :data:`RETRIES` times. The pauses double from a sixtieth of the setting to a
quarter of it and add up to it (one hour: 1, 2, 4, 8, 15, 15 and 15 minutes). On Airflow 3.3 and
later a retry policy takes each pause from the run's own setting (the Variable, read when the run
starts); before 3.3 the task's static exponential backoff, derived from the setting's default,
gives about the same schedule (Airflow adds up to one pause again as jitter). Past the last
retry the task gives up without failing the run: the transcripts keep their ``summary_error``,
and the next run, whatever prefix it lists, takes them for their summary.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from audio_pipeline.config import setting

RETRIES = 7
_SHARES = (1, 2, 4, 8, 15, 15, 15)
"""Each pause's share of the whole: doubling, capped at a quarter of it."""


def retry_delays(total_seconds: float) -> list[float]:
    """The pause before each retry, in seconds; they add up to ``total_seconds``."""
    return [total_seconds * share / sum(_SHARES) for share in _SHARES]


class SummariesThrottled(RuntimeError):
    """Summaries of a batch failed with errors a later try may outlast (throttling, a 5xx), and
    the task has retries left: ``retry_in`` is the pause before the next one."""

    def __init__(self, failed: int, try_number: int, total_seconds: float) -> None:
        self.retry_in = retry_delays(total_seconds)[min(try_number, RETRIES) - 1]
        super().__init__(
            f"{failed} summaries failed (recorded as summary_error); retrying them: retry {try_number} of "
            f"{RETRIES} in about {self.retry_in:.0f} s ({setting('summary_retry_seconds')}={total_seconds:g})"
        )


def gives_up(try_number: int) -> bool:
    """Whether this try of the task is its last: no retry is left after it."""
    return try_number > RETRIES


def giving_up(failed: int, total_seconds: float) -> str:
    """Why the task stops retrying, and what becomes of the transcripts."""
    return (
        f"{failed} summaries still failed after {RETRIES} retries over about {total_seconds:g} s "
        f"({setting('summary_retry_seconds')}): their transcripts wait for their summary (summary_error recorded); "
        "the next run takes them, whatever prefix it lists, or the nightly run"
    )


def task_retries(total_seconds: float) -> dict[str, Any]:
    """The summarising task's retry arguments for the setting's value ``total_seconds``: Airflow's
    exponential backoff, and on Airflow 3.3 and later the policy that follows the run's own value."""
    delays = retry_delays(total_seconds)
    arguments: dict[str, Any] = {
        "retries": RETRIES,
        "retry_delay": timedelta(seconds=delays[0]),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=max(delays)),
    }
    policy = _policy()
    if policy is not None:
        arguments["retry_policy"] = policy
    return arguments


def _policy() -> Any:
    """A retry policy whose pause is the one :class:`SummariesThrottled` names (None before Airflow 3.3)."""
    try:
        from airflow.sdk import RetryDecision, RetryPolicy
    except ImportError:  # Airflow 3.2: the static backoff alone
        return None

    class OutagePolicy(RetryPolicy):
        """Retry throttled summaries after the pause the run's setting gives; anything else as usual."""

        def evaluate(
            self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
        ) -> RetryDecision:
            if not isinstance(exception, SummariesThrottled):
                return RetryDecision.default()
            return RetryDecision.retry(timedelta(seconds=exception.retry_in), reason=str(exception))

    return OutagePolicy()
