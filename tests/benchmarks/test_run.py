"""What make bench reads from Airflow's metadata DB, and how it sizes the endpoint."""

from __future__ import annotations

import sqlite3

from benchmarks.run import endpoint_for, task_seconds


def test_task_seconds_is_each_tasks_longest_instance_of_that_run(tmp_path):
    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE task_instance (run_id TEXT, task_id TEXT, map_index INT, duration REAL)")
        connection.executemany(
            "INSERT INTO task_instance VALUES (?, ?, ?, ?)",
            [
                ("run", "claim_new_audio", -1, 61.04),
                ("run", "transcribe.submit", 0, 3.0),
                ("run", "transcribe.submit", 1, 7.25),
                ("run", "report_run", -1, None),  # still running
                ("other", "claim_new_audio", -1, 999.0),
            ],
        )
    assert task_seconds(db, "run") == {"claim_new_audio": 61.0, "transcribe.submit": 7.2}


def test_large_runs_get_a_faster_wider_endpoint_unless_told_otherwise():
    assert endpoint_for(10_000, None, None) == (0.2, 4)
    assert endpoint_for(100_000, None, None) == (0.05, 16)
    assert endpoint_for(100_000, 0.1, 8) == (0.1, 8)
