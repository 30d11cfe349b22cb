"""Airflow's home for a stack: migrated once per Airflow install in a home of its own, copied by stacks."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from local.stack import airflow_home
from local.stack.processes import Processes, StackError

STAND_IN = """#!/bin/sh
# stands in for `airflow db migrate`: a database, and a configuration naming its home (mode 600)
echo "$AIRFLOW_HOME" >> "$MIGRATIONS"
python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('create table alembic_version (v text)')" \\
  "$AIRFLOW_HOME/airflow.db"
printf '[core]\\ndags_folder = %s/dags\\n[database]\\nsql_alchemy_conn = sqlite:///%s/airflow.db\\n' \\
  "$AIRFLOW_HOME" "$AIRFLOW_HOME" > "$AIRFLOW_HOME/airflow.cfg"
chmod 600 "$AIRFLOW_HOME/airflow.cfg"
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
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(home), "MIGRATIONS": str(tmp_path / "migrations")}
    return Processes(tmp_path / name, env), home


def _migrations(tmp_path: Path) -> list[str]:
    return (tmp_path / "migrations").read_text().splitlines()


def test_the_first_new_home_has_one_migrated_apart_and_every_new_home_a_copy_of_it(tmp_path, airflow):
    for name in ("first", "second"):
        processes, home = _stack(tmp_path, name)
        airflow_home.prepare(processes, home, str(airflow))
        assert sqlite3.connect(home / "airflow.db").execute("select count(*) from alembic_version").fetchone() == (0,)
        cfg = (home / "airflow.cfg").read_text()
        assert f"dags_folder = {home}/dags" in cfg and f"sql_alchemy_conn = sqlite:///{home}/airflow.db" in cfg, cfg
        assert stat.S_IMODE((home / "airflow.cfg").stat().st_mode) == 0o600, "the Fernet key stays private"
    (migrated,) = _migrations(tmp_path)
    assert Path(migrated).parent == tmp_path / "cache", "migrated once, in a home of its own"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [Path(migrated).name.split(".")[0]]


def test_a_home_with_a_database_is_migrated_in_place(tmp_path, airflow):
    processes, home = _stack(tmp_path, "up-again")
    home.mkdir(parents=True)
    sqlite3.connect(home / "airflow.db").execute("create table dag_run (id integer)")
    airflow_home.prepare(processes, home, str(airflow))
    assert _migrations(tmp_path) == [str(home)]
    assert sqlite3.connect(home / "airflow.db").execute("select count(*) from dag_run").fetchone() == (0,), "kept"
    assert not (tmp_path / "cache").exists()


def test_a_failed_migration_keeps_nothing(tmp_path, airflow):
    airflow.write_text("#!/bin/sh\necho 'no database today' >&2\nexit 3\n")
    processes, home = _stack(tmp_path, "first")
    with pytest.raises(StackError, match="no database today"):
        airflow_home.prepare(processes, home, str(airflow))
    assert list((tmp_path / "cache").iterdir()) == [], "the next stack migrates again"
