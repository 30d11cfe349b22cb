"""The ledger is the status table's only owner: no other module builds a write or names an attribute.

Scans the plugin's modules outside ``audio_pipeline/ledger/`` and the DAG files with :mod:`ast`.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.ledger import FileRecord

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "plugins" / "audio_pipeline"
LEDGER = PACKAGE / "ledger"

WRITE_CALLS = frozenset({"transact_write_items", "put_item", "update_item", "delete_item", "batch_write_item"})
INTERNALS = ("audio_pipeline.ledger._store", "audio_pipeline.ledger._conditions", "audio_pipeline.ledger.ledger")
WRITE_TYPES = frozenset({"Put", "Update", "Write", "Condition"})
TIMESTAMPS = frozenset({"claimed_at", "updated_at", "submitted_at", "completed_at", "failed_at", "summarized_at"})


def written_timestamps() -> set[str]:
    """The ``*_at`` keys the ledger writes, as its source names them."""
    return set(re.findall(r"""["']([a-z_]+_at)["']""", (LEDGER / "ledger.py").read_text()))


def table_attributes() -> frozenset[str]:
    """Every attribute name of the table but those the batch manifest's own format shares (ClaimedFile)."""
    fields = {f.name for f in dataclasses.fields(FileRecord)}
    return frozenset((fields | written_timestamps()) - set(typing.get_type_hints(ClaimedFile)))


def scanned_modules() -> list[Path]:
    plugins = [p for p in sorted(PACKAGE.rglob("*.py")) if LEDGER not in p.parents]
    return plugins + sorted((ROOT / "dags").glob("*.py"))


def violations(source: str, name: str, attributes: frozenset[str]) -> list[str]:
    found: list[str] = []

    def say(node: ast.AST, what: str) -> None:
        found.append(f"{name}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if called in WRITE_CALLS:
                say(node, f"calls {called}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith(INTERNALS):
                say(node, f"imports from {module}")
            for alias in node.names:
                if alias.name in WRITE_TYPES:
                    say(node, f"imports {alias.name} from {module}")
                if not module.startswith(INTERNALS) and f"{module}.{alias.name}".startswith(INTERNALS):
                    say(node, f"imports {module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(INTERNALS):
                    say(node, f"imports {alias.name}")
        elif isinstance(node, ast.Name) and node.id in WRITE_TYPES:
            say(node, f"names {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in WRITE_TYPES:
            say(node, f"names .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in attributes:
            say(node, f"names the table attribute {node.value!r}")
    return found


def test_the_attribute_names_are_the_records_fields_and_the_timestamps_the_ledger_writes():
    assert written_timestamps() == TIMESTAMPS
    attributes = table_attributes()
    assert attributes >= TIMESTAMPS and {"status", "run_id", "deadline", "input_location"} <= attributes
    assert not attributes & {"uri", "etag", "size", "inference_id"}, "the batch manifest's own keys"
    assert len(attributes) == len(dataclasses.fields(FileRecord)) - 4 + len(TIMESTAMPS)


def test_the_scan_finds_each_kind_of_violation():
    source = """
from audio_pipeline.ledger._store import Put
from audio_pipeline.ledger import ledger
import audio_pipeline.ledger._conditions as c
client.transact_write_items(TransactItems=[])
table.put_item(Item={})
x = c.Condition
y = {"deadline": 1}
"""
    found = violations(source, "bad.py", table_attributes())
    assert sorted(line.split(": ", 1)[1] for line in found) == sorted(
        [
            "imports from audio_pipeline.ledger._store",
            "imports Put from audio_pipeline.ledger._store",
            "imports audio_pipeline.ledger.ledger",
            "imports audio_pipeline.ledger._conditions",
            "calls transact_write_items",
            "calls put_item",
            "names .Condition",
            "names the table attribute 'deadline'",
        ]
    )


OTHER_FORMATS = {
    ("plugins/audio_pipeline/operators/submit_batch.py", "run_id"): "Airflow's task context",
    ("plugins/audio_pipeline/reporting.py", "run_id"): "the run manifest's JSON head",
    ("plugins/audio_pipeline/sensors/transcription_batch.py", "status"): "the TriggerEvent payload",
    ("plugins/audio_pipeline/triggers/transcription_batch.py", "status"): "the TriggerEvent payload",
    ("plugins/audio_pipeline/tasks.py", "run_id"): "the run manifest asset event's extra",
    ("plugins/audio_pipeline/costs.py", "work"): "the run manifest's work figures, per file and per run",
}
"""Modules that name ``run_id``, ``status`` or ``work`` as a key of another format, not of the table."""


def _file_and_name(violation: str) -> tuple[str, str]:
    where, what = violation.split(": ", 1)
    return where.rsplit(":", 1)[0], what.rsplit(" ", 1)[1].strip("'")


def test_no_module_outside_the_ledger_builds_a_status_table_write_or_names_an_attribute():
    attributes = table_attributes()
    modules = scanned_modules()
    assert PACKAGE / "claims.py" in modules and ROOT / "dags" / "audio_transcription.py" in modules
    assert not [p for p in modules if LEDGER in p.parents]
    found = [v for path in modules for v in violations(path.read_text(), str(path.relative_to(ROOT)), attributes)]
    named = {_file_and_name(v) for v in found if "names the table attribute" in v}
    assert named >= set(OTHER_FORMATS), f"no longer found, take them off OTHER_FORMATS: {set(OTHER_FORMATS) - named}"
    unexplained = [v for v in found if "names the table attribute" not in v or _file_and_name(v) not in OTHER_FORMATS]
    assert unexplained == [], "\n".join(unexplained)
