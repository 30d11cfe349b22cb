"""README.md is short and points at what it no longer holds; the docs say what the code does:
every setting with its default, every status, the commands CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from audio_pipeline.config import PipelineConfig
from audio_pipeline.ledger import Status

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
STATUS_TABLE = (ROOT / "docs" / "status-table.md").read_text()


def test_every_variable_is_documented_with_its_default():
    for field in PipelineConfig.fields():
        default = f"`{field.default}`" if field.default != "" else "(empty)"
        assert f"| `{field.name}` | {default} |" in CONFIGURATION, field.name


def test_every_status_is_documented():
    for status in Status:
        assert status.value in STATUS_TABLE


def test_the_two_commands():
    assert "make demo" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_the_readme_is_read_in_five_minutes():
    assert len(README.splitlines()) <= 150


def test_every_link_in_the_docs_reaches_a_file_and_its_heading():
    """README's links and the docs' own: each relative target exists, each #anchor is a heading there."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.relative_to(ROOT)}: {target}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
                slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
                assert anchor in slugs, f"{page.relative_to(ROOT)}: {target}"
