"""``python -m benchmarks.report``: docs/benchmarks.md's figures and plot from benchmarks/results/.

The tables and the figures line between the ``generated`` markers in docs/benchmarks.md are
rewritten from the committed ``N<files>.json`` results (``make bench`` runs
this after measuring), and docs/benchmarks.png plots calls per file, the endpoint's wall
time against the ideal, and the triggerer's peak memory against N. tests/benchmarks checks
that the committed docs say what the committed results say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.png"
TRIGGERER = "triggerer (all sensors' triggers)"
_RUN_FILE = re.compile(r"^N(\d+)\.json$")
_CLAIM_FILE = re.compile(r"^claim-N(\d+)-[\d.]+ms-c\d+\.json$")


def load(results: Path = RESULTS, pattern: re.Pattern[str] = _RUN_FILE) -> list[dict]:
    """The end-to-end runs (``N<files>.json``; the claim phase's ``claim-N<files>-<ms>ms-c<calls>.json``
    with ``_CLAIM_FILE``), smallest N first (then shortest round trip, fewest calls at once)."""
    runs = [json.loads(p.read_text()) for p in results.iterdir() if pattern.match(p.name)]
    return sorted(runs, key=lambda r: (r["N"], r.get("latency_ms", 0), r.get("concurrency", 1)))


def _n(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}".rstrip("0").rstrip(".")


def figures_table(runs: list[dict]) -> str:
    rows = [
        ("measured", lambda r: r.get("date", "not recorded")),
        ("calls_per_file", lambda r: f"{r['calls_per_file']:.2f}"),
        ("utilisation", lambda r: f"{r['utilisation']:.2f}"),
        ("wall_s / ideal_s", lambda r: f"{r['wall_s']:.1f} / {r['ideal_s']:.1f}"),
        ("end_to_end_s", lambda r: f"{r['end_to_end_s']:.1f}"),
        ("claim phase s (claim_new_audio)", _claim_seconds),
        ("task_instances", lambda r: _n(r["task_instances"])),
        ("xcom_bytes", lambda r: _n(r["xcom_bytes"])),
        ("secret_lookups", lambda r: _n(r["secret_lookups"]) if "secret_lookups" in r else "not recorded"),
        ("transcribed / failed at the endpoint", lambda r: f"{_n(r['completed'])} / {_n(r['failed'])}"),
        ("triggerer peak MB", lambda r: _memory(r, TRIGGERER)),
        ("claim_new_audio peak MB", lambda r: _memory(r, "claim_new_audio")),
        ("rerun, nothing new: s / calls per file", _rerun),
        (
            "batch size, concurrency, service s",
            lambda r: f"{r['batch_size']}, {r['concurrency']}, {r['service_seconds']}",
        ),
    ]
    header = ["figure", *(f"N = {_n(r['N'])}" for r in runs)]
    return _table(header, ([name, *(cell(r) for r in runs)] for name, cell in rows))


def _claim_seconds(run: dict) -> str:
    seconds = run.get("task_seconds", {}).get("claim_new_audio")
    return f"{seconds:.1f}" if seconds is not None else "not recorded"


def _rerun(run: dict) -> str:
    again = run.get("rerun")
    return f"{again['end_to_end_s']:.1f} / {again['calls_per_file']:.3f}" if again else "not measured"


def _memory(run: dict, task: str) -> str:
    value = run.get("peak_memory_mb", {}).get(task)
    return f"{value:.0f}" if value else "not sampled"


def calls_table(runs: list[dict]) -> str:
    operations = sorted(
        {op for r in runs for op in r["calls"]}, key=lambda op: (-max(r["calls"].get(op, 0) for r in runs), op)
    )
    header = ["AWS operation (calls by the DAG)", *(f"N = {_n(r['N'])}" for r in runs)]
    return _table(header, ([f"`{op}`", *(_n(r["calls"].get(op, 0)) for r in runs)] for op in operations))


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    """A Markdown table: its header, the separator line, a line per row."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def claim_table(claims: list[dict]) -> str:
    header = [
        "files", "round trip ms", "calls at once", "pass", "wall s", "CPU s, claiming code", "CPU s, moto",
        "calls per file", "claimed", "load average",
    ]  # fmt: skip
    rows = [
        [
            _n(c["N"]),
            _n(c["latency_ms"]),
            str(c["concurrency"]),
            "first run" if name == "first" else "rerun, nothing new",
            f"{c[name]['seconds']:.1f}",
            f"{c[name]['client_cpu_s']:.1f}",
            f"{c[name]['moto_cpu_s']:.1f}",
            f"{c[name]['calls_per_file']:.3f}",
            _n(c[name]["claimed"]),
            str(c.get("load_average", "not recorded")),
        ]
        for c in claims
        for name in ("first", "rerun")
    ]
    return _table(header, rows)


def run_end_table(claims: list[dict]) -> str:
    """The run's end (``settle`` in the claim phase's results, where measured)."""
    header = [
        "files", "wall s", "CPU s, settling code", "CPU s, moto", "calls per file", "heap peak MB", "manifest MB",
        "load average",
    ]  # fmt: skip
    rows = [
        [
            _n(c["N"]),
            f"{p['seconds']:.1f}",
            f"{p['client_cpu_s']:.1f}",
            f"{p['moto_cpu_s']:.1f}",
            f"{p['calls_per_file']:.3f}",
            f"{p['peak_heap_mb']:.1f}",
            f"{p['manifest_mb']:.1f}",
            str(c.get("load_average", "not recorded")),
        ]
        for c in claims
        if (p := c.get("settle"))
    ]
    return _table(header, rows)


def figures_line(runs: list[dict]) -> str:
    parts = [
        f"N = {_n(r['N'])}: {r['calls_per_file']:.2f} AWS calls per file, utilisation {r['utilisation']:.2f}, "
        f"{r['task_instances']} task instances, {_n(r['xcom_bytes'])} bytes of XCom"
        for r in runs
    ]
    return "Measured (`benchmarks/results/`): " + "; ".join(parts) + "."


def replace_between(text: str, name: str, body: str) -> str:
    """Replace what stands between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``."""
    begin, end = f"<!-- generated: {name} -->", f"<!-- end: {name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no {begin} ... {end} section")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def render_doc(text: str, runs: list[dict], claims: list[dict]) -> str:
    text = replace_between(text, "figures", figures_table(runs))
    text = replace_between(text, "claim phase", claim_table(claims))
    text = replace_between(text, "run end", run_end_table(claims))
    return replace_between(text, "calls", calls_table(runs))


def render_figures_line(text: str, runs: list[dict]) -> str:
    return replace_between(text, "bench-figures", figures_line(runs))


def plot(runs: list[dict], out: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["N"] for r in runs]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    axes[0].plot(ns, [r["calls_per_file"] for r in runs], "o-")
    axes[0].axhline(3.0, color="grey", linestyle=":", label="target 3.0")
    axes[0].set(title="AWS calls per file", xlabel="files (N)", ylim=(0, None))
    axes[0].legend()
    axes[1].plot(ns, [r["wall_s"] for r in runs], "o-", label="endpoint wall time")
    axes[1].plot(ns, [r["ideal_s"] for r in runs], "k--", label="ideal N x service / concurrency")
    axes[1].set(title="Endpoint wall time (s)", xlabel="files (N)", yscale="log")
    axes[1].legend()
    memory = [(r["N"], r["peak_memory_mb"].get(TRIGGERER)) for r in runs if r.get("peak_memory_mb", {}).get(TRIGGERER)]
    axes[2].plot([n for n, _ in memory], [m for _, m in memory], "o-")
    axes[2].set(title="Triggerer peak memory (MB)", xlabel="files (N)", ylim=(0, None))
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    runs = load()
    DOC.write_text(render_figures_line(render_doc(DOC.read_text(), runs, load(pattern=_CLAIM_FILE)), runs))
    plot(runs)
    print(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)} from {len(runs)} runs")


if __name__ == "__main__":
    main()
