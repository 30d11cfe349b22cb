"""Rows of the fault matrix (benchmarks/faults.py) as tests: nothing lost, nothing processed twice,
judged from the witness journals and S3 (benchmarks/verdict.py)."""

from __future__ import annotations

import pytest

from benchmarks.faults import SCENARIOS, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IN_THE_SUITE = {
    "lost notifications (30%), settled from S3",
    "model fails on one file",
    "SageMaker-async emulator restarted mid-run",
    "two runs over one prefix at once",
    "keys with spaces, unicode and 1,000 bytes; a zero-byte object",
    "Bedrock rejects one file's summary (real speech recognition)",
}
SHORT = {
    "duplicated notifications (30%)": 8,
    "unknown inference id and a non-JSON message": 4,
    "Bedrock throttling on 40% of calls": 6,
    "six kinds of wrong-typed notification, three of each, on the success topic": 3,
    "SQS answering 5xx for 30 s": 6,
    "the triggerer killed (SIGKILL) and restarted mid-run": 6,
    "lost notifications (30%) on a busy shared queue, settled from S3": 8,
}
"""Rows the suite runs on fewer files (the full row is `make faults`'): scenario -> files."""


def _in_the_suite():
    for scenario in SCENARIOS:
        if scenario.name in SHORT:
            yield scenario.short(SHORT[scenario.name])
        elif scenario.name in IN_THE_SUITE:
            yield scenario


@pytest.mark.parametrize("scenario", list(_in_the_suite()), ids=lambda s: s.name)
def test_fault_scenario_loses_nothing(scenario):
    row = run(scenario)
    print(f"{scenario.name}: {len(scenario.files)} files, {row.seconds}s")
    assert row.lost == 0 and row.processed_twice == 0, row
    assert row.failed_with_reason == len(scenario.expected_failed), row
    assert row.summary_errors == len(scenario.expected_summary_errors), row
    assert row.summarized == row.files_in - len(scenario.expected_failed) - len(scenario.expected_summary_errors), row
    assert row.model_calls >= row.files_in - len(scenario.expected_failed), row
    assert set(row.runs.split("/")) == {scenario.expected_run_state}, row
    assert row.trigger_errors == 0, row
