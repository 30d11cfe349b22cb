"""The fault matrix's rows and the suite's selection of them (tests/e2e/test_faults.py) agree."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from audio_pipeline.submission import GROUP_SIZE
from benchmarks import faults
from benchmarks.faults import (
    BUCKET,
    PREFIX,
    SCENARIOS,
    SUBMITTING_AT_ONCE,
    FaultThread,
    Row,
    broken,
    explained_failures,
    not_skipped,
    wrong_reasons,
)
from model_server.backends.audio import MAX_AUDIO_SECONDS_VARIABLE, AudioTooLong, decode
from tests.e2e.test_faults import IN_THE_SUITE, RUNS_STOPPED, SHORT


def test_the_suite_runs_every_row_of_the_matrix_once():
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)), "two rows share a name"
    selections = [IN_THE_SUITE, set(SHORT), set(RUNS_STOPPED)]
    assert sum(map(len, selections)) == len(set().union(*selections)), "a row is in two selections"
    assert set(names) == set().union(*selections)


def test_the_real_asr_row_sets_a_cap_only_its_silence_is_over():
    """The row's cap (MODEL_MAX_AUDIO_SECONDS, for its model server) refuses the file expected to
    fail for it, with the reason the row expects, and decodes every other clip."""
    (scenario,) = [s for s in SCENARIOS if MAX_AUDIO_SECONDS_VARIABLE in s.extra_env]
    cap = float(scenario.extra_env[MAX_AUDIO_SECONDS_VARIABLE])
    for key, body in scenario.files.items():
        if key in scenario.failure_reasons:
            with pytest.raises(AudioTooLong) as refused:
                decode(body, max_seconds=cap)
            assert scenario.failure_reasons[key] in str(refused.value)
        else:
            assert len(decode(body, max_seconds=cap)) > 0


def test_wrong_reasons_names_a_file_that_failed_for_another_reason():
    (scenario,) = [s for s in SCENARIOS if s.failure_reasons]
    key, text = next(iter(scenario.failure_reasons.items()))
    uri = f"s3://{BUCKET}/{PREFIX}{key}"
    row = Row(scenario.name, 1, 0, 1, 0, 0, 0, "failed")
    assert wrong_reasons(scenario, row) == [f"{key}: None"]
    row.reasons = {uri: "ClientError: Received server error (500)"}
    assert wrong_reasons(scenario, row) == [f"{key}: ClientError: Received server error (500)"]
    row.reasons = {uri: f'ClientError: Received client error (400) ... "{text}" ...'}
    assert wrong_reasons(scenario, row) == []


def test_another_files_failure_does_not_stand_in_for_the_injected_one():
    (scenario,) = [s for s in SCENARIOS if s.name == "model fails on one file"]
    (injected,) = scenario.expected_failed
    other = next(k for k in scenario.files if k != injected)
    row = Row(scenario.name, len(scenario.files), len(scenario.files) - 1, 1, 0, 0, 0, "success")
    row.reasons = {f"s3://{BUCKET}/{PREFIX}{other}": "ModelError: the model failed"}
    assert wrong_reasons(scenario, row) == [f"{injected}: None"], "the counts match, the files do not"
    row.reasons = {f"s3://{BUCKET}/{PREFIX}{injected}": "ModelError: the model failed"}
    assert wrong_reasons(scenario, row) == []


def test_a_file_the_endpoint_cannot_take_must_be_recorded_skipped_with_its_reason():
    (scenario,) = [s for s in SCENARIOS if s.expected_skipped]
    uris = {key: f"s3://{BUCKET}/{PREFIX}{key}" for key in scenario.expected_skipped}
    row = Row(scenario.name, 3, 3, 0, 0, 0, 0, "success", accepted=3, model_calls=3)
    assert not_skipped(scenario, row) == sorted(scenario.expected_skipped), "nothing recorded"
    first, *rest = sorted(scenario.expected_skipped)
    row.skip_reasons = {uris[first]: None, **{uris[k]: "zero bytes" for k in rest}}
    assert not_skipped(scenario, row) == [first]
    assert broken(scenario, row) == [f"files the endpoint cannot take not recorded skipped with a reason: {[first]}"]
    row.skip_reasons[uris[first]] = "its s3:// URI is over 1,024 characters"
    assert not_skipped(scenario, row) == [] and broken(scenario, row) == []


def test_a_fault_explains_at_most_the_groups_it_can_cut():
    (scenario,) = [s for s in SCENARIOS if s.name == "a task process killed halfway through submitting"]
    row = Row(scenario.name, 60, 51, 9, 0, 0, 0, "success", failed_unanswered=9)
    assert explained_failures(scenario, row) == 9
    row.failed_with_reason = row.failed_unanswered = 60  # every file a kill left unsent: not explained
    assert explained_failures(scenario, row) == GROUP_SIZE * SUBMITTING_AT_ONCE < 60
    (uncut,) = [s for s in SCENARIOS if s.name == "model fails on one file"]
    assert explained_failures(uncut, row) == 0


def test_a_fault_that_raised_or_outlived_the_stack_is_reported_as_missed():
    def raises(stack):
        raise TimeoutError("no trigger polled the queue within 300s")

    assert FaultThread(raises, stack=None).missed() == "TimeoutError: no trigger polled the queue within 300s"
    assert FaultThread(lambda stack: None, stack=None).missed() is None
    release = threading.Event()
    hangs = FaultThread(lambda stack: release.wait(), stack=None)
    assert hangs.missed(timeout=0.1) == "still running 0.1 s after the runs ended"
    release.set()


def test_broken_names_each_thing_a_row_must_not_show():
    (scenario,) = [s for s in SCENARIOS if s.name == "model fails on one file"]
    (injected,) = scenario.expected_failed
    files = len(scenario.files)

    def row(**changes) -> Row:
        clean = Row(scenario.name, files, files - 1, 1, 0, 0, 0, "success", accepted=files, model_calls=files)
        clean.reasons = {f"s3://{BUCKET}/{PREFIX}{injected}": "ModelError: the model failed"}
        return dataclasses.replace(clean, **changes)

    assert broken(scenario, row()) == []
    assert broken(scenario, row(fault_missed="TimeoutError: no trigger polled")) == [
        "the fault did not happen: TimeoutError: no trigger polled"
    ]
    assert broken(scenario, row(lost=1, summarized=files - 2))[0].startswith("1 lost and 0 processed twice")
    assert broken(scenario, row(trigger_errors=2)) == ["2 triggers fired an error event"]
    too_few = files - 2
    assert broken(scenario, row(model_calls=too_few)) == [f"{too_few} model calls for {files - 1} files transcribed"]
    assert broken(scenario, row(failed_with_reason=2, summarized=files - 2))[0].startswith(
        "2 failed with a reason, 1 expected"
    )


def test_broken_names_what_a_rows_own_check_of_the_witnesses_found():
    (scenario,) = [s for s in SCENARIOS if s.name == "model fails on one file"]
    files = len(scenario.files)
    row = Row(scenario.name, files, files - 1, 1, 0, 0, 0, "success", accepted=files, model_calls=files)
    row.reasons = {f"s3://{BUCKET}/{PREFIX}{next(iter(scenario.expected_failed))}": "ModelError: the model failed"}
    assert broken(scenario, row) == []
    row.problems = ["000.wav: 2 accepted requests of the claimed version were worked"]
    assert broken(scenario, row) == row.problems


def test_the_overwrite_and_two_submitter_rows_say_when_their_fault_did_not_happen():
    checks = {s.name: s.check for s in SCENARIOS if s.check}
    overwrite = checks["an object overwritten while queued at the endpoint, then a new run over the prefix"]
    assert overwrite(None, []) == [
        "the fault did not happen: no file was still unread in the endpoint's queue when it was held"
    ]
    submitters = checks["two submit tasks over one claim at once"]
    assert submitters(None, []) == [
        "the fault did not happen: the second submitter did not report (see logs/second-submitter.log)"
    ]


def test_the_matrix_runs_rows_marked_alone_with_nothing_beside_them_and_the_rest_side_by_side(monkeypatch, tmp_path):
    """``Matrix``: a row marked alone overlaps no other row; the others run up to ``parallel`` at
    once; each row gets a state folder of its own; a row's error reaches whoever waits on it."""
    lock, running, seen = threading.Lock(), set(), []

    def fake_run(scenario, state_dir):
        with lock:
            running.add(scenario.name)
            seen.append((scenario.name, frozenset(running), state_dir))
        time.sleep(0.2)
        with lock:
            running.discard(scenario.name)
        if scenario.name == "broken":
            raise RuntimeError("the stack did not start")
        return scenario.name

    monkeypatch.setattr(faults, "run", fake_run)
    rows = [
        dataclasses.replace(SCENARIOS[0], name=name, alone=name.startswith("alone"))
        for name in ("a", "alone-1", "b", "c", "alone-2", "broken", "d")
    ]
    matrix = faults.Matrix(rows, 3, tmp_path)
    try:
        assert [matrix.row(name) for name in ("a", "alone-1", "b", "c", "alone-2", "d")] == [
            "a",
            "alone-1",
            "b",
            "c",
            "alone-2",
            "d",
        ]
        with pytest.raises(RuntimeError, match="did not start"):
            matrix.row("broken")
    finally:
        matrix.close()
    beside = {name: others - {name} for name, others, _ in seen}
    assert beside["alone-1"] == beside["alone-2"] == set()
    assert max(len(others) for others in beside.values()) == 2, "three rows at once"
    assert len({state_dir for _, _, state_dir in seen}) == len(rows)


def test_a_closed_matrix_starts_no_more_rows(monkeypatch, tmp_path):
    started = []

    def fake_run(scenario, state_dir):
        started.append(scenario.name)
        time.sleep(0.3)
        return scenario.name

    monkeypatch.setattr(faults, "run", fake_run)
    rows = [dataclasses.replace(SCENARIOS[0], name=str(i), alone=True) for i in range(5)]
    matrix = faults.Matrix(rows, 2, tmp_path)
    time.sleep(0.1)
    matrix.close()
    assert started == ["0"]
    assert matrix.rows["4"].cancelled()
