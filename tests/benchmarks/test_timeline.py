"""benchmarks.timeline: a recorded timeline read back a window a row."""

from __future__ import annotations

from benchmarks.timeline import part_of, windows


def test_a_window_gives_utilisation_files_a_second_and_cores_by_part():
    samples = [
        {"t": 0.0, "machine_busy": 0.0, "cpu": {"moto:1": 0.0}, "completed": 0, "model_busy_seconds": 0.0,
         "concurrency": None},
        {"t": 10.0, "machine_busy": 15.0, "cpu": {"moto:1": 8.0, "scheduler:2": 2.0}, "completed": 40,
         "model_busy_seconds": 32.0, "concurrency": 4},
    ]  # fmt: skip
    (row,) = windows(samples, 10.0)
    assert row["utilisation"] == 0.8 and row["files_per_s"] == 4.0 and row["machine_cores"] == 1.5
    assert row["cores"] == {"moto": 0.8, "scheduler": 0.2}, "a process first seen in the window counts from 0"


def test_stack_processes_are_named_by_part():
    assert part_of("/venv/bin/python -m local.moto_server -H 127.0.0.1 -p 1") == "moto"
    assert part_of("/venv/bin/python -m model_server --backend benchmark") == "model-server"
    assert part_of("airflow worker -- LocalExecutor: 01a2") == "tasks"
    assert part_of("/usr/bin/bash") is None
