"""What make bench reads from Airflow's metadata DB."""

from __future__ import annotations

import sqlite3

from benchmarks.run import result_name, task_seconds


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


def test_a_run_at_other_settings_is_kept_out_of_the_tables_columns():
    standard = {"N": 10000, "service_seconds": 0.2, "concurrency": 4, "batch_size": 100}
    assert result_name(standard) == "N10000.json"
    assert result_name({**standard, "service_seconds": 0.3}) == "N10000-0.3s-c4-b100.json"
    assert result_name({**standard, "batch_size": 50}) == "N10000-0.2s-c4-b50.json"
