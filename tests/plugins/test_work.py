from __future__ import annotations

from decimal import Decimal

from audio_pipeline.work import SOURCES, FileWork


def test_figures_read_from_a_record_or_a_manifest_are_numbers():
    work = FileWork.of({"audio_seconds": Decimal("61.5"), "input_tokens": Decimal("12"), "other": "x"})
    assert work == FileWork(audio_seconds=61.5, input_tokens=12)
    assert isinstance(work.audio_seconds, float) and isinstance(work.input_tokens, int)
    assert work.transcribed and not FileWork(input_tokens=3).transcribed


def test_combined_keeps_its_own_figures_and_takes_the_others_missing_ones():
    tokens = FileWork(input_tokens=5, output_tokens=2)
    endpoint = FileWork(audio_seconds=3.0, processing_seconds=0.5, concurrent_requests=1, input_tokens=99)
    assert tokens.combined(endpoint) == FileWork(3.0, 0.5, 1, 5, 2)


def test_every_figure_names_its_source():
    assert set(SOURCES) == set(FileWork(1, 1, 1, 1, 1).report())
    assert all("model server" in SOURCES[k] for k in ("audio_seconds", "processing_seconds", "concurrent_requests"))
    assert all("Converse" in SOURCES[k] for k in ("input_tokens", "output_tokens"))
