"""README.md documents what the code does: every setting with its default, the commands CI runs."""

from __future__ import annotations

from pathlib import Path

from audio_pipeline.config import PipelineConfig
from audio_pipeline.ledger import Status

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_variable_is_documented_with_its_default():
    for field in PipelineConfig.fields():
        default = f"`{field.default}`" if field.default != "" else "(empty)"
        assert f"| `{field.name}` | {default} |" in README, field.name


def test_every_status_is_documented():
    for status in Status:
        assert status.value in README


def test_the_two_commands():
    assert "make demo" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "make test" in ci
