from __future__ import annotations

from audio_pipeline.state_machine import TRANSITIONS, Status


def test_state_machine_has_no_way_out_of_terminal_states():
    assert TRANSITIONS[Status.SUMMARIZED] == ()
    assert TRANSITIONS[Status.FAILED] == (Status.COMPLETED,), "only its own late result"
