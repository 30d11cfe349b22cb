"""docs/configuration.md's table of settings is what PipelineConfig's field metadata says."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from audio_pipeline.config import PipelineConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "configuration_doc.py"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("configuration_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_page_is_what_the_generator_writes(generator):
    text = generator.DOC.read_text()
    assert generator.render(text) == text, "docs/configuration.md is stale: run python scripts/configuration_doc.py"


def test_each_setting_has_a_row_with_its_default_bound_and_description(generator):
    table = generator.settings_table()
    for setting in PipelineConfig.fields():
        (line,) = [line for line in table.splitlines() if line.startswith(f"| `{setting.name}` |")]
        assert setting.metadata["description"] in line
        if setting.type in (int, "int"):
            assert f"| `{setting.default}` | {setting.metadata['minimum']} |" in line


def test_a_changed_default_changes_the_page(generator, monkeypatch):
    (first, *rest) = PipelineConfig.fields()
    monkeypatch.setattr(PipelineConfig, "fields", classmethod(lambda cls: [_renamed(first), *rest]))
    text = generator.DOC.read_text()
    assert generator.render(text) != text
    assert "| `endpoint_name` | `another-endpoint` |" in generator.render(text)


def _renamed(setting):
    """``setting`` with another default (the generator reads default, name, type and metadata)."""
    copy = dataclasses.field(default="another-endpoint", metadata=setting.metadata)
    copy.name, copy.type = setting.name, setting.type
    return copy
