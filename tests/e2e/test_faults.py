"""Rows of the fault matrix (benchmarks/faults.py) as tests: nothing lost, nothing processed twice,
judged from the witness journals and S3 (benchmarks/verdict.py). The rows run in the background,
each on a fresh stack of its own, ``PARALLEL`` at a time (``benchmarks.faults.Matrix``); a test
waits for its row."""

from __future__ import annotations

import pytest

from benchmarks.faults import SCENARIOS, Matrix, Row, Scenario, broken

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IN_THE_SUITE = {
    "lost notifications (30%), settled from S3",
    "model fails on one file",
    "SageMaker-async emulator restarted mid-run",
    "two runs over one prefix at once, Bedrock throttling 40% of calls",
    "keys with spaces, unicode and the longest that can be sent; a zero-byte object",
    "an object overwritten while queued at the endpoint, then a new run over the prefix",
    "Bedrock rejects one file's summary, one file over the model's duration cap (real speech recognition)",
    "Bedrock throttling through all of run 1's summary retries (an hour compressed to 7 s), then a run "
    "over another prefix",
}
SHORT = {
    "duplicated notifications (30%)": 8,
    "unknown inference id and a non-JSON message": 4,
    "Bedrock throttling on 40% of calls": 6,
    "summaries throttled past their retries; a second run takes the files during the first's retry delay": 6,
    "six kinds of wrong-typed notification, three of each, on the success topic": 3,
    "SQS answering 5xx for 30 s": 6,
    "the triggerer killed (SIGKILL) and restarted mid-run": 6,
    "lost notifications (30%) on a busy shared queue, settled from S3": 8,
    "two submit tasks over one claim at once": 40,
}
"""Rows the suite runs on fewer files (the full row is `make faults`'): scenario -> files."""
RUNS_STOPPED = {
    "the scheduler killed between the last transcription and report_run, then a new run": 6,
    "a task process killed halfway through submitting": 40,
    "a run marked failed by hand mid-flight, then a new run over the prefix": 8,
}
"""Rows whose first run is stopped (killed, marked failed) and whose work a later attempt or run
finishes: scenario -> files in the suite's short version."""


PARALLEL = 3
"""Rows at once: about what two cores carry before a row's waits stop hiding the others' work."""


def _in_the_suite():
    for scenario in SCENARIOS:
        if scenario.name in SHORT:
            yield scenario.short(SHORT[scenario.name])
        elif scenario.name in IN_THE_SUITE:
            yield scenario


LOSE_NOTHING = list(_in_the_suite())
STOPPED = [s.short(RUNS_STOPPED[s.name]) for s in SCENARIOS if s.name in RUNS_STOPPED]


@pytest.fixture(scope="module")
def matrix(request, tmp_path_factory):
    """The rows of this module's selected tests, started at the first that needs them."""
    selected = {
        item.callspec.params["scenario"].name
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    rows = [s for s in [*LOSE_NOTHING, *STOPPED] if s.name in selected]
    matrix = Matrix(rows, PARALLEL, tmp_path_factory.mktemp("faults"))
    try:
        yield matrix
    finally:
        matrix.close()


def _each_file_ended_as_expected(scenario: Scenario, row: Row) -> None:
    """``benchmarks.faults.broken``: nothing lost or twice; exactly the injected failures (and those
    the fault explains), each with its reason; the injected summary errors; no trigger error."""
    print(f"{scenario.name}: {len(scenario.files)} files, {row.seconds}s, {row}")  # in full: pytest cuts it short
    assert not broken(scenario, row), (broken(scenario, row), row)


@pytest.mark.parametrize("scenario", LOSE_NOTHING, ids=lambda s: s.name)
def test_fault_scenario_loses_nothing(scenario, matrix):
    row = matrix.row(scenario.name)
    _each_file_ended_as_expected(scenario, row)
    assert set(row.runs.split("/")) == {scenario.expected_run_state}, row


@pytest.mark.parametrize("scenario", STOPPED, ids=lambda s: s.name)
def test_work_a_stopped_run_left_is_finished_once(scenario, matrix):
    row = matrix.row(scenario.name)
    # a file that was perhaps sent when its task died is awaited, never sent again: if it was not
    # sent after all, it fails at its deadline with the reason (reprocess_failed sends it); only the
    # row that kills the submitting task may have such files (Scenario.may_cut_a_submission)
    _each_file_ended_as_expected(scenario, row)
    # the run that finishes the work; a run marked failed may end either way
    assert row.runs.split("/")[-1] == "success", row
