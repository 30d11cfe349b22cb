"""Airflow's home for a stack: the metadata database migrated once per Airflow install, then copied."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from importlib.metadata import distributions
from pathlib import Path

from local.stack.processes import Processes
from local.stack.services import REPO

TEMPLATES = REPO / ".local" / "cache"
"""Where migrated homes are kept, one per Airflow install."""
HOME = "@AIRFLOW_HOME@"
"""Stands for the home's path in a kept ``airflow.cfg``."""


def prepare(processes: Processes, home: Path, airflow: str) -> None:
    """Give ``home`` a migrated metadata database and its ``airflow.cfg``.

    A home that has a database already (``make up`` again) is migrated in place, as Airflow
    upgrades one. A new home gets a copy of a home migrated once for this Airflow install
    (``airflow db migrate`` costs a stack some 20 s of CPU), made in a directory of its own
    the first time, its configuration's paths moved to ``home``. ``airflow`` is that
    Airflow's command.
    """
    if (home / "airflow.db").exists():
        processes.run_once("airflow-db-migrate", [airflow, "db", "migrate"])
        return
    template = TEMPLATES / f"airflow-{_install_key()}"
    if not (template / "airflow.db").is_file():
        _migrate_into(processes, template, airflow)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template / "airflow.db", home / "airflow.db")
    shutil.copy2(template / "airflow.cfg", home / "airflow.cfg")  # its mode too: it holds the Fernet key
    cfg = home / "airflow.cfg"
    cfg.write_text(cfg.read_text().replace(HOME, str(home.resolve())))


def _install_key() -> str:
    """The installed Airflow distributions and their versions (core, task SDK, providers), hashed."""
    installed = sorted(
        f"{d.metadata['Name']}=={d.version}"
        for d in distributions()
        if (d.metadata["Name"] or "").lower().replace("_", "-").startswith("apache-airflow")
    )
    return hashlib.sha256("\n".join(installed).encode()).hexdigest()[:16]


def _migrate_into(processes: Processes, template: Path, airflow: str) -> None:
    """``airflow db migrate`` in a new home of its own, kept as ``template`` (whole, or not at all)."""
    template.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{template.name}.", dir=template.parent)).resolve()
    env = {
        "AIRFLOW_HOME": str(staging),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{staging / 'airflow.db'}",
    }
    try:
        processes.run_once("airflow-db-migrate", [airflow, "db", "migrate"], env=env)
        cfg = staging / "airflow.cfg"
        cfg.write_text(cfg.read_text().replace(f"{staging}/", f"{HOME}/"))
    except BaseException:
        shutil.rmtree(staging)
        raise
    try:
        staging.rename(template)
    except OSError:  # another stack kept one first
        shutil.rmtree(staging)
