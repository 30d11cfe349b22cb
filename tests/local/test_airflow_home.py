"""Airflow's home for a stack: migrated by the first stack of an Airflow version, copied by the next."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from local.stack import airflow_home
from local.stack.processes import Processes, StackError

STAND_IN = """#!/bin/sh
# stands in for `airflow db migrate`: a database and a configuration naming its home
echo "$@" >> "$MIGRATIONS"
python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('create table alembic_version (v text)')" \\
  "$AIRFLOW_HOME/airflow.db"
printf '[core]\\ndags_folder = %s/dags\\n[logging]\\nbase_log_folder = %s/logs\\n' \\
  "$AIRFLOW_HOME" "$AIRFLOW_HOME" > "$AIRFLOW_HOME/airflow.cfg"
"""


@pytest.fixture
def airflow(tmp_path, monkeypatch):
    monkeypatch.setattr(airflow_home, "TEMPLATES", tmp_path / "cache")
    command = tmp_path / "airflow"
    command.write_text(STAND_IN)
    command.chmod(command.stat().st_mode | stat.S_IEXEC)
    return command


def _stack(tmp_path: Path, name: str) -> tuple[Processes, Path]:
    home = tmp_path / name / "airflow"
    home.mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(home), "MIGRATIONS": str(tmp_path / "migrations")}
    return Processes(tmp_path / name, env), home


def test_the_first_stack_migrates_and_later_ones_copy_its_home_to_their_own_path(tmp_path, airflow):
    for name in ("first", "second", "third"):
        processes, home = _stack(tmp_path, name)
        airflow_home.prepare(processes, home, str(airflow))
        assert sqlite3.connect(home / "airflow.db").execute("select count(*) from alembic_version").fetchone() == (0,)
        cfg = (home / "airflow.cfg").read_text()
        assert f"dags_folder = {home}/dags" in cfg and f"base_log_folder = {home}/logs" in cfg, cfg
        assert name == "first" or "/first/" not in cfg, "no path of the stack that migrated"
    assert (tmp_path / "migrations").read_text().splitlines() == ["db migrate"], "migrated once"


def test_a_failed_migration_keeps_nothing(tmp_path, airflow):
    airflow.write_text("#!/bin/sh\necho 'no database today' >&2\nexit 3\n")
    processes, home = _stack(tmp_path, "first")
    with pytest.raises(StackError, match="no database today"):
        airflow_home.prepare(processes, home, str(airflow))
    assert not list((tmp_path / "cache").glob("*/airflow.db")), "the next stack migrates again"
