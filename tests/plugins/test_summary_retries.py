"""The summarising task's retries through a Bedrock outage: about ``summary_retry_seconds`` in all."""

from __future__ import annotations

import sys
from datetime import timedelta
from types import ModuleType

import pytest

from audio_pipeline.config import PipelineConfig
from audio_pipeline.summary_retries import (
    RETRIES,
    SummariesThrottled,
    gives_up,
    giving_up,
    retry_delays,
    task_retries,
)


def test_an_hour_of_pauses_doubles_from_a_minute_to_a_quarter_hour():
    assert retry_delays(3600) == [60, 120, 240, 480, 900, 900, 900]
    assert sum(retry_delays(14)) == pytest.approx(14), "a compressed outage keeps the shape"
    assert PipelineConfig().summary_retry_seconds == 3600


def test_airflows_static_backoff_follows_the_same_schedule():
    """Airflow's exponential backoff (before jitter): retry_delay * 2**(n-1), capped at max_retry_delay."""
    args = task_retries(3600)
    assert args["retries"] == RETRIES == len(retry_delays(3600))
    base, ceiling = args["retry_delay"], args["max_retry_delay"]
    static = [min(base * args["retry_exponential_backoff"] ** (n - 1), ceiling) for n in range(1, RETRIES + 1)]
    assert static == [timedelta(seconds=d) for d in retry_delays(3600)]


def test_the_retry_policy_pauses_as_the_runs_own_setting_says():
    retry_policies = pytest.importorskip("airflow.sdk.definitions.retry_policy", reason="Airflow 3.3 and later")
    RetryAction = retry_policies.RetryAction  # noqa: N806 (the enum, by its name)

    policy = task_retries(3600)["retry_policy"]
    throttled = SummariesThrottled(3, try_number=2, total_seconds=60)
    decision = policy.evaluate(throttled, try_number=2, max_tries=RETRIES)
    assert decision.action == RetryAction.RETRY and decision.retry_delay == timedelta(seconds=2)
    assert "retrying them: retry 2 of 7" in str(throttled)
    assert policy.evaluate(ValueError("other"), try_number=1, max_tries=RETRIES).action == RetryAction.DEFAULT


def test_without_retry_policies_the_static_backoff_alone(monkeypatch):
    """Airflow 3.2 (no ``airflow.sdk.RetryPolicy``): the task gets no retry_policy argument, which
    3.2's operators would refuse."""
    monkeypatch.setitem(sys.modules, "airflow.sdk", ModuleType("airflow.sdk"))  # an SDK without them
    args = task_retries(3600)
    assert "retry_policy" not in args and args["retries"] == RETRIES


def test_the_last_try_gives_up_saying_who_takes_the_transcripts():
    assert not gives_up(RETRIES) and gives_up(RETRIES + 1)
    assert "the next run takes them, whatever prefix it lists" in giving_up(2, 3600)
