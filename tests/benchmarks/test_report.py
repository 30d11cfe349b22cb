"""docs/benchmarks.md (its tables and its figures line) says what benchmarks/results/ says."""

from __future__ import annotations

import json

import pytest

from benchmarks import report


def test_the_committed_docs_match_the_committed_results():
    runs = report.load()
    assert {r["N"] for r in runs} >= {1000, 10000}
    doc = report.DOC.read_text()
    claims = report.load(pattern=report._CLAIM_FILE)
    assert {c["N"] for c in claims} >= {100000}
    assert report.render_doc(doc, runs, claims) == doc, "docs/benchmarks.md is stale: run python -m benchmarks.report"
    assert report.render_figures_line(doc, runs) == doc, "docs/benchmarks.md is stale: run python -m benchmarks.report"
    assert report.PLOT.exists()


def test_a_changed_result_changes_the_tables(tmp_path):
    original = json.loads((report.RESULTS / "N1000.json").read_text())
    (tmp_path / "N1000.json").write_text(json.dumps({**original, "calls_per_file": 9.99}))
    (tmp_path / "N1000-before.json").write_text(json.dumps({**original, "calls_per_file": 7.77}))
    runs = report.load(tmp_path)
    assert [r["N"] for r in runs] == [1000], "only N<files>.json are the current runs"
    doc = report.render_doc(report.DOC.read_text(), runs, [])
    assert "| calls_per_file | 9.99 |" in doc and "7.77" not in doc
    rendered = report.render_figures_line(report.DOC.read_text(), runs)
    line = rendered.split("<!-- generated: bench-figures -->")[1].split("<!-- end: bench-figures -->")[0]
    assert "9.99" in line and "2.83" not in line


def test_a_page_without_its_markers_is_an_error():
    with pytest.raises(ValueError, match="generated: figures"):
        report.render_doc("no markers here", report.load(), [])


def test_the_run_end_table_has_a_row_per_measured_settle_pass():
    settle = {"seconds": 12.0, "client_cpu_s": 3.0, "moto_cpu_s": 8.5, "calls_per_file": 0.03}
    measured = {"N": 5000, "load_average": 0.4, "settle": {**settle, "peak_heap_mb": 21.5, "manifest_mb": 0.7}}
    table = report.run_end_table([measured, {"N": 100}])
    assert table.splitlines()[2:] == ["| 5,000 | 12.0 | 3.0 | 8.5 | 0.030 | 21.5 | 0.7 | 0.4 |"], (
        "older results lack it"
    )
