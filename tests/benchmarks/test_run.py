"""What make bench reads from Airflow's metadata DB."""

from __future__ import annotations

import sqlite3

from benchmarks.run import task_seconds


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
