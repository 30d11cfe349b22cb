"""``python scripts/configuration_doc.py``: docs/configuration.md's table of settings, from ``PipelineConfig``.

The table between the ``generated: settings`` markers is made from each field's metadata
(default, description, minimum), so the page cannot drift from the code:
tests/test_configuration_doc.py fails when the committed page is not what this writes.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from audio_pipeline.config import PipelineConfig  # noqa: E402 (after the path above)
from benchmarks.report import replace_between  # noqa: E402


def row(setting: dataclasses.Field[Any]) -> str:
    default = f"`{setting.default}`" if setting.default != "" else "(empty)"
    bound = str(setting.metadata["minimum"]) if setting.type in (int, "int") else ""
    return f"| `{setting.name}` | {default} | {bound} | {setting.metadata['description']} |"


def settings_table() -> str:
    lines = ["| setting | default | at least | meaning |", "|---|---|---|---|"]
    return "\n".join(lines + [row(setting) for setting in PipelineConfig.fields()])


def render(text: str) -> str:
    return replace_between(text, "settings", settings_table())


def main() -> None:
    DOC.write_text(render(DOC.read_text()))
    print(f"wrote {DOC.relative_to(ROOT)} from PipelineConfig ({len(PipelineConfig.fields())} settings)")


if __name__ == "__main__":
    main()
