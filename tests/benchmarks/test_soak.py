"""The soak's draw (benchmarks/soak.py): the same faults for the same seed, every fault drawn by some seed."""

from __future__ import annotations

from benchmarks.faults import publish_wrong_field_types, restart_triggerer
from benchmarks.soak import draw


def test_a_seed_draws_the_same_faults():
    first, again = draw(30, 238464), draw(30, 238464)
    assert first.faults == again.faults
    assert first.scenario.files == again.scenario.files
    assert first.scenario.emulator_flags == again.scenario.emulator_flags
    assert first.scenario.bedrock_flags == again.scenario.bedrock_flags


def test_the_matrix_faults_added_to_the_soak_are_drawn_and_run_as_the_matrix_runs_them():
    drawn = [draw(30, seed) for seed in range(40)]
    said = " | ".join(f for d in drawn for f in d.faults)
    for fault in ("wrong-typed notification", "triggerer killed", "SQS answering 5xx for"):
        assert fault in said
    events = [e for d in drawn if d.scenario.during for e in d.scenario.during.args[0]]
    assert publish_wrong_field_types in events and restart_triggerer in events
    assert any(getattr(e, "__qualname__", "") == "sqs_outage.<locals>.during" for e in events)
