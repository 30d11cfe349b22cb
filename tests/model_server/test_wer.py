from __future__ import annotations

import pytest

from model_server.wer import normalise, word_error_rate


def test_identical_after_normalisation():
    assert word_error_rate("Twenty percent, in 15 minutes!", "twenty % in fifteen minutes") == 0.0


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("a b c d", "a b c d", 0.0),
        ("a b c d", "a x c d", 0.25),
        ("a b c d", "a c d", 0.25),
        ("a b c d", "a b c d e", 0.25),
        ("a b", "", 1.0),
        ("", "", 0.0),
        ("", "words", 1.0),
    ],
)
def test_edit_distance(reference, hypothesis, expected):
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)


def test_normalise():
    assert normalise("On-call runbook: 2,500 users & 12%") == [
        "on",
        "call",
        "runbook",
        "two",
        "thousand",
        "five",
        "hundred",
        "users",
        "and",
        "twelve",
        "percent",
    ]
