"""The side-by-side tables of docs/benchmarks.md, generated from ``benchmarks/results/peers-N<files>.json``.

``python -m benchmarks.peers.report`` rewrites what stands between ``<!-- generated: peers -->``
and ``<!-- end: peers -->`` from the largest N measured and, when a run of it was stopped at its
deadline, also from the largest N whose runs all ended on their own; tests/benchmarks checks the
committed page against the committed results.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from benchmarks.report import DOC, RESULTS, _n, _table, replace_between

_FILE = re.compile(r"^peers-N(\d+)\.json$")
DESIGNS = {"original": "original's design", "stock": "stock-provider DAG", "package": "this package"}


def load_all(results: Path = RESULTS) -> list[dict]:
    """Every side-by-side run, the largest N first."""
    runs = [json.loads(p.read_text()) for p in results.iterdir() if _FILE.match(p.name)]
    return sorted(runs, key=lambda r: -r["N"])


def load(results: Path = RESULTS) -> dict | None:
    """The side-by-side run with the largest N, or None."""
    runs = load_all(results)
    return runs[0] if runs else None


def stopped(run: dict) -> bool:
    """Whether a design's run in it was stopped at the deadline rather than ending on its own."""
    return any(str(row["run_state"]).startswith("stopped") for p in ("clean", "faults") for row in run[p].values())


def shown(runs: list[dict]) -> list[dict]:
    """The largest N; if a run of it was stopped, also the largest N whose runs all ended."""
    if not runs:
        return []
    complete = [r for r in runs[1:] if not stopped(r)]
    return [runs[0], complete[0]] if stopped(runs[0]) and complete else runs[:1]


def _ratio(value: float, base: float) -> str:
    if not base:
        return "n/a" if value else "="
    return f"x{value / base:.2f}"


def _with_ratio(key: str, fmt: Callable[[float], str]) -> Callable[[dict, dict], str]:
    def cell(row: dict, package: dict) -> str:
        if row is package:
            return fmt(row[key])
        return f"{fmt(row[key])} ({_ratio(row[key], package[key])})"

    return cell


def _plain(fmt: Callable[[dict], str]) -> Callable[[dict, dict], str]:
    return lambda row, _package: fmt(row)


def _s(v: float) -> str:
    return f"{v:,.1f}"


def _done(row: dict) -> str:
    return f"{_n(row['files'] - row['lost'])} of {_n(row['files'])}"


def _per_file(row: dict) -> int:
    """The files a row's per-file figures are over: all of them, or those done if its run was stopped."""
    if str(row["run_state"]).startswith("stopped"):
        return max(row["files"] - row["lost"], 1)
    return int(row["files"])


def _calls(row: dict, package: dict) -> str:
    per = row["calls_per_file"] * row["files"] / _per_file(row)
    base = package["calls_per_file"] * package["files"] / _per_file(package)
    done = " per file done" if _per_file(row) != row["files"] else ""
    return f"{per:.2f}{done}" if row is package else f"{per:.2f}{done} ({_ratio(per, base)})"


CLEAN_ROWS: list[tuple[str, Callable[[dict, dict], str]]] = [
    ("files done (summary written)", _plain(_done)),
    ("end-to-end s", _with_ratio("end_to_end_s", _s)),
    ("endpoint wall s / ideal s", _plain(lambda r: f"{r['wall_s']:,.1f} / {r['ideal_s']:,.1f}")),
    ("endpoint utilisation", _plain(lambda r: f"{r['utilisation']:.2f}")),
    ("AWS calls per file", _calls),
    ("Airflow task instances", _with_ratio("task_instances", lambda v: _n(int(v)))),
    ("scheduler CPU s (its task processes in)", _with_ratio("scheduler_cpu_s", _s)),
    ("all of Airflow, CPU s", _with_ratio("airflow_cpu_s", _s)),
    ("the design's own processes, CPU s", _plain(lambda r: _s(r["own_cpu_s"]))),
    ("XCom bytes", _with_ratio("xcom_bytes", lambda v: _n(int(v)))),
    ("files lost / processed twice", _plain(lambda r: f"{_n(r['lost'])} / {_n(r['processed_twice'])}")),
    ("run", _plain(lambda r: str(r["run_state"]))),
    ("task tries whose end Airflow did not record", _plain(lambda r: _n(r.get("unreported_ends", 0)))),
    ("load average, before / after", _plain(lambda r: " / ".join(str(x) for x in r["load_average"]))),
]
FAULT_ROWS: list[tuple[str, Callable[[dict, dict], str]]] = [
    ("files done (summary written)", _plain(_done)),
    ("files lost", _plain(lambda r: _n(r["lost"]))),
    ("files processed twice", _plain(lambda r: _n(r["processed_twice"]))),
    ("end-to-end s", _with_ratio("end_to_end_s", _s)),
    ("AWS calls per file", _calls),
    ("Airflow task instances", _with_ratio("task_instances", lambda v: _n(int(v)))),
    ("run", _plain(lambda r: str(r["run_state"]))),
    ("task tries whose end Airflow did not record", _plain(lambda r: _n(r.get("unreported_ends", 0)))),
]


def side_by_side(run: dict, rows: list[tuple[str, Callable[[dict, dict], str]]], passed: str) -> str:
    designs = [d for d in DESIGNS if d in run[passed]]
    package = run[passed]["package"]
    header = ["figure", *(DESIGNS[d] for d in designs)]
    table = _table(header, ([name, *(cell(run[passed][d], package) for d in designs)] for name, cell in rows))
    again = [f"{DESIGNS[d]} on {run[passed][d]['remeasured']}" for d in designs if "remeasured" in run[passed][d]]
    if not again:
        return table
    return (
        f"{table}\n\nMeasured again alone, on a fresh stack of the same settings "
        f"(`python -m benchmarks.peers --designs ... --passes {passed}`): {', '.join(again)}; "
        f"the other columns are from {run['date']}."
    )


def calls_table(run: dict) -> str:
    designs = [d for d in DESIGNS if d in run["clean"]]
    ops = sorted({op for d in designs for op in run["clean"][d]["calls"]})
    ops.sort(key=lambda op: -max(run["clean"][d]["calls"].get(op, 0) for d in designs))
    header = ["AWS operation, calls per file (per file done if stopped)", *(DESIGNS[d] for d in designs)]
    rows = (
        [f"`{op}`", *(f"{run['clean'][d]['calls'].get(op, 0) / _per_file(run['clean'][d]):.3f}" for d in designs)]
        for op in ops
    )
    return _table(header, rows)


def map_limit_line(limit: dict | None) -> str:
    """What the stock DAG did past ``max_map_length`` (``peers-map-limit.json``), if measured."""
    if limit is None:
        return "Past `max_map_length`: not measured (`python -m benchmarks.peers.map_limit`)."
    return (
        f"Past `max_map_length` (measured {limit['date']}, `python -m benchmarks.peers.map_limit`): the stock "
        f"DAG over {_n(limit['files'])} files ended `{limit['run_state']}` after {limit['end_to_end_s']:,.1f} s "
        f"with {_n(limit['task_instances'])} task instances; `list_audio` ended with `{limit['list_audio_error']}`; "
        f"the endpoint accepted {_n(limit['requests_accepted'])} requests for those files."
    )


def load_map_limit(results: Path = RESULTS) -> dict | None:
    path = results / "peers-map-limit.json"
    return json.loads(path.read_text()) if path.exists() else None


def section(run: dict) -> str:
    deadline = f"; each Airflow run's deadline {run['deadline_s']:,} s" if "deadline_s" in run else ""
    intro = (
        f"**N = {_n(run['N'])}** files per design, measured {run['date']}; endpoint {run['service_seconds']} s per "
        f"file, concurrency {run['concurrency']} (ideal {run['clean']['package']['ideal_s']:,.1f} s){deadline}; "
        f"{run['machine']}. Ratios are against this package."
    )
    return "\n\n".join(
        [
            intro,
            side_by_side(run, CLEAN_ROWS, "clean"),
            f"Second pass, {_n(run['N'])} new files each, the emulator run with `{run['fault_flags']}` "
            f"(the stock DAG's sensor timeout {run['stock_wait_timeout_s']} s):",
            side_by_side(run, FAULT_ROWS, "faults"),
            "AWS calls per file by operation, first pass (moto's count by caller; `InvokeEndpointAsync` "
            "and Bedrock from the emulators' journals):",
            calls_table(run),
        ]
    )


def render(text: str, runs: list[dict], limit: dict | None = None) -> str:
    """The page with its generated section made from ``shown(runs)`` and the map-limit run."""
    body = "\n\n".join([*(section(run) for run in shown(runs)), map_limit_line(limit)])
    return replace_between(text, "peers", body)


def main() -> None:
    runs = load_all()
    if not runs:
        raise SystemExit("no benchmarks/results/peers-N*.json: run make bench-peers")
    DOC.write_text(render(DOC.read_text(), runs, load_map_limit()))
    names = ", ".join(f"peers-N{run['N']}.json" for run in shown(runs))
    print(f"wrote the side-by-side tables of {DOC.name} from {names}")


if __name__ == "__main__":
    main()
