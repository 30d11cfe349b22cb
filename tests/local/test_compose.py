"""docker-compose.yaml runs what the native launcher runs, checked statically (test_compose_up.py runs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from local.stack.services import (
    REPO,
    Settings,
    airflow_environment,
    airflow_services,
    emulator_services,
    runtime_service,
)

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"]
SETTINGS = Settings(state_dir=Path("/state"))
COMPOSE_NAME = {
    "api-server": "airflow-apiserver",
    "scheduler": "airflow-scheduler",
    "dag-processor": "airflow-dag-processor",
    "triggerer": "airflow-triggerer",
}
HOSTS = {5000: "moto", 5001: "sagemaker-runtime", 5002: "bedrock-runtime", 8081: "model-server"}


def in_container(argv: list[str]) -> list[str]:
    """The launcher's argv as a container runs it: plain executables, all interfaces, service names."""
    out = []
    for arg in argv:
        if arg.endswith(("/python", "/python3")) or "/python3." in arg:
            arg = "python"
        elif arg.endswith("/airflow"):
            arg = "airflow"
        elif arg == SETTINGS.host:
            arg = "0.0.0.0"
        for port, host in HOSTS.items():
            arg = arg.replace(f"http://{SETTINGS.host}:{port}", f"http://{host}:{port}")
        out.append(arg)
    return out


def with_defaults(text: str) -> str:
    """``text`` as compose interpolates it with none of the ``${VAR:-default}`` overrides set."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


LAUNCHED = [*emulator_services(SETTINGS), runtime_service(SETTINGS), *airflow_services(SETTINGS)]


@pytest.mark.parametrize("service", LAUNCHED, ids=lambda s: s.name)
def test_same_command_and_port(service):
    compose = COMPOSE[COMPOSE_NAME.get(service.name, service.name)]
    assert compose["command"] == in_container(service.argv)
    if service.port:
        assert [with_defaults(p) for p in compose["ports"]] == [f"127.0.0.1:{service.port}:{service.port}"]


def test_airflow_services_mount_the_dag_package_and_share_one_configuration():
    native = airflow_environment(SETTINGS)
    for name in COMPOSE_NAME.values():
        service = COMPOSE[name]
        mounts = {"./dags:/opt/airflow/dags", "./include:/opt/airflow/include", "./plugins:/opt/airflow/plugins"}
        assert mounts <= set(service["volumes"]), "include/ beside the DAG folder, as the local stack reads it"
        env = service["environment"]
        for key in (
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
            "AIRFLOW_CONN_AWS_DEFAULT",
            "PYTHONWARNINGS",
        ):
            assert env[key] == native[key], key
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == "http://sagemaker-runtime:5001"
        for key, value in native.items():
            if key.startswith("AIRFLOW__SECRETS__"):
                assert env[key] == value


def test_official_layout_pieces():
    assert {"postgres", "airflow-init", "bootstrap"} <= set(COMPOSE)
    assert COMPOSE["airflow-init"]["command"] == ["airflow", "db", "migrate"]
    assert COMPOSE["bootstrap"]["command"] == ["python", "-m", "local.bootstrap"]


def test_published_ports_bind_loopback_unless_overridden():
    for name, service in COMPOSE.items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:${PORT_"), (name, port)


def test_long_running_services_have_healthchecks_and_airflow_waits_for_init():
    jobs = {"airflow-init", "bootstrap"}
    for name, service in COMPOSE.items():
        if name not in jobs:
            assert service["healthcheck"]["test"], name
    for name in COMPOSE_NAME.values():
        assert COMPOSE[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
        assert COMPOSE[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_official_images_unless_overridden_and_the_postgres_extra():
    assert COMPOSE["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:16}"
    args = COMPOSE["airflow-apiserver"]["build"]["args"]
    assert args["AIRFLOW_IMAGE"] == "${AIRFLOW_IMAGE:-apache/airflow:3.3.1-python3.12}"
    dockerfile = (REPO / COMPOSE["airflow-apiserver"]["build"]["dockerfile"]).read_text()
    assert "FROM ${AIRFLOW_IMAGE}" in dockerfile and "requirements/stack.txt" in dockerfile
    # Airflow 3 on PostgreSQL needs asyncpg (its postgres extra); without it every Airflow container exits
    assert "apache-airflow[postgres]==3.3.1" in (REPO / "requirements/stack.txt").read_text()
