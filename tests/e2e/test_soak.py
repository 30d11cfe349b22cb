"""The soak's short version (``make soak`` runs 1,000 files): a new seed each time, printed on failure."""

from __future__ import annotations

import random

import pytest

from benchmarks.soak import soak

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_soak_with_random_faults_loses_nothing_and_does_nothing_twice(tmp_path):
    seed = random.SystemRandom().randrange(1_000_000)
    row, broken = soak(files=30, seed=seed, minutes=5, state_dir=tmp_path)
    assert not broken, f"seed {seed} (repeat: python -m benchmarks.soak --files 30 --seed {seed}): {broken}; {row}"
