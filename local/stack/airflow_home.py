"""Airflow's home for a stack: the metadata database migrated once per Airflow version, then copied."""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

from local.stack.processes import Processes
from local.stack.services import REPO

TEMPLATES = REPO / ".local" / "cache"
"""Where migrated homes are kept, one per Airflow version."""
HOME = "@AIRFLOW_HOME@"
"""Stands for the home's path in a kept ``airflow.cfg``."""


def prepare(processes: Processes, home: Path, airflow: str) -> None:
    """Give ``home`` a migrated metadata database and its ``airflow.cfg``.

    ``airflow db migrate`` costs a stack some 20 s of CPU: the first stack of an Airflow version
    runs it (``airflow`` is that Airflow's command) and keeps what it made; later stacks copy it,
    the configuration's paths moved to their own home.
    """
    template = TEMPLATES / f"airflow-{version('apache-airflow')}"
    if not (template / "airflow.db").is_file():
        processes.run_once("airflow-db-migrate", [airflow, "db", "migrate"])
        _keep(home, template)
        return
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template / "airflow.db", home / "airflow.db")
    (home / "airflow.cfg").write_text((template / "airflow.cfg").read_text().replace(HOME, str(home)))


def _keep(home: Path, template: Path) -> None:
    template.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{template.name}.", dir=template.parent))
    shutil.copyfile(home / "airflow.db", staging / "airflow.db")
    (staging / "airflow.cfg").write_text((home / "airflow.cfg").read_text().replace(str(home), HOME))
    try:
        staging.rename(template)  # whole or not at all
    except OSError:  # another stack kept one first
        shutil.rmtree(staging)
