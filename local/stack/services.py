"""The stack's services as data: one list the launcher runs and docker-compose.yaml mirrors."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path

from audio_pipeline.config import StackNames, secrets_backend_options
from local import witness

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
JWT_SECRET = "local-stack-jwt-secret-not-for-production"
PROVIDER_VERSION_WARNING = (
    "ignore:ProvidersManager.hooks is deprecated:FutureWarning:airflow.providers.amazon.aws.hooks.base_aws"
)
"""A ``PYTHONWARNINGS`` filter for exactly the Amazon provider 9.34's warning about how it reads its version."""


@dataclass(frozen=True)
class Ports:
    moto: int = 5000
    sagemaker_runtime: int = 5001
    bedrock_runtime: int = 5002
    model: int = 8081
    airflow: int = 8080

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> Ports:
        """Five distinct ports the system has free now: all are held bound until all are chosen, so
        no two services of one stack are ever given the same port, and none this process handed
        out before, so stacks started side by side (``make faults PARALLEL=n``) never share one."""
        with _HANDING_OUT, ExitStack() as held:
            chosen: list[int] = []
            while len(chosen) < len(fields(cls)):
                sock = held.enter_context(socket.socket())
                sock.bind((host, 0))
                if (port := sock.getsockname()[1]) not in _HANDED_OUT:
                    chosen.append(port)
            _HANDED_OUT.update(chosen)
            return cls(*chosen)


_HANDING_OUT = threading.Lock()
_HANDED_OUT: set[int] = set()
"""Every port ``Ports.free`` handed out in this process."""


@dataclass(frozen=True)
class Settings:
    state_dir: Path = REPO / ".local"
    ports: Ports = Ports()
    host: str = "127.0.0.1"
    model_backend: str = "whisper"
    emulator_flags: tuple[str, ...] = ()
    """Extra flags for the SageMaker-async emulator (fault injection)."""
    bedrock_flags: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)
    """Settings of the Variable ``audio_pipeline_config``, which the bootstrap writes to SSM
    Parameter Store as ``infra/`` does. No ``schedule_bucket_uri``: the nightly run that
    unpausing creates is skipped, saying why."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for every process (for example BENCHMARK_SERVICE_SECONDS)."""
    dag_bundles: dict[str, Path] = field(default_factory=dict)
    """More folders of DAGs, by bundle name, beside the project's ``dags/`` (the tests' example DAGs)."""
    nightly: bool = True
    """Whether the DAG keeps its nightly schedule. False: it has none (``AUDIO_PIPELINE_SCHEDULE``
    empty) and runs only when triggered: the fault rows and benchmarks, which trigger their own."""
    names: StackNames = StackNames()
    """The AWS resources the bootstrap creates; ``max_concurrent_invocations_per_instance`` is the
    endpoint's concurrency (the benchmarks raise it for large N)."""

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def witness_dir(self) -> Path:
        """Where the emulators and the model server journal what they saw (``local.witness``)."""
        return self.state_dir / "witness"


QUICK_RECONCILE = {"reconcile_interval_seconds": "15"}
"""Look in S3 for results whose notification was lost every 15 s instead of 120 (fault runs)."""


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    port: int | None
    health: str | None
    """URL that answers 200 once the service is ready."""


def aws_environment(settings: Settings) -> dict[str, str]:
    p = settings.ports
    return {
        "AWS_ENDPOINT_URL": settings.url(p.moto),
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": settings.url(p.sagemaker_runtime),
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": settings.url(p.bedrock_runtime),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def airflow_environment(settings: Settings) -> dict[str, str]:
    home = settings.airflow_home
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # as on MWAA (infra sets core.dags_are_paused_at_creation): the DAG starts unpaused, so a
        # triggered run starts (a paused DAG's run waits, queued, forever) and the nightly run skips
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # SQLite lets one writer in at a time: a request waits up to 30 s for the lock (Python's
        # default of 5 s let a busy scheduler fail a trigger through the API with a 500)
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=30",
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.url(settings.ports.airflow)}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(settings.ports.airflow),
        "AIRFLOW__API__HOST": settings.host,
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "extra": {"region_name": REGION}}),
        # Variables from SSM Parameter Store (moto's), with MWAA's secrets settings
        **{f"AIRFLOW__{key.replace('.', '__').upper()}": value for key, value in secrets_backend_options().items()},
        # MWAA puts plugins/ on sys.path; so does this, for every process a task runs in
        "PYTHONPATH": str(REPO / "plugins"),
        # the Amazon provider 9.34 (MWAA's) warns in every task and trigger that reads its own
        # version for the User-Agent (fixed in 9.39): the processes, not the package, hide it
        "PYTHONWARNINGS": PROVIDER_VERSION_WARNING,
    }
    if not settings.nightly:
        env["AUDIO_PIPELINE_SCHEDULE"] = ""
    if settings.dag_bundles:
        bundles = {"dags-folder": REPO / "dags", **settings.dag_bundles}
        env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
            [
                {
                    "name": name,
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(path)},
                }
                for name, path in bundles.items()
            ]
        )
    return env


def environment(settings: Settings) -> dict[str, str]:
    """The whole environment every process of the stack runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update(aws_environment(settings))
    env.update(airflow_environment(settings))
    env["MODEL_CACHE_DIR"] = str(settings.state_dir / "models")
    env["HF_HUB_OFFLINE"] = "1"
    env.update(settings.extra_env)
    return env


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def emulator_services(settings: Settings) -> list[Service]:
    p, python = settings.ports, sys.executable
    return [
        Service(
            "moto",
            [python, "-m", "local.moto_server", "-H", settings.host, "-p", str(p.moto)],
            p.moto,
            f"{settings.url(p.moto)}/moto-api/",
        ),
        Service(
            "model-server",
            [
                python,
                "-m",
                "model_server",
                "--host",
                settings.host,
                "--port",
                str(p.model),
                "--backend",
                settings.model_backend,
                "--witness-journal",
                str(settings.witness_dir / witness.MODEL_SERVER),
            ],
            p.model,
            f"{settings.url(p.model)}/ping",
        ),
        Service(
            "bedrock-runtime",
            [
                python,
                "-m",
                "local.bedrock_runtime",
                "--host",
                settings.host,
                "--port",
                str(p.bedrock_runtime),
                "--witness-journal",
                str(settings.witness_dir / witness.BEDROCK_RUNTIME),
                *settings.bedrock_flags,
            ],
            p.bedrock_runtime,
            f"{settings.url(p.bedrock_runtime)}/_emulator/health",
        ),
    ]


def runtime_service(settings: Settings) -> Service:
    p = settings.ports
    return Service(
        "sagemaker-runtime",
        [
            sys.executable,
            "-m",
            "local.sagemaker_async",
            "--host",
            settings.host,
            "--port",
            str(p.sagemaker_runtime),
            "--model-url",
            settings.url(p.model),
            "--state-dir",
            str(settings.state_dir / "sagemaker-async"),
            "--witness-journal",
            str(settings.witness_dir / witness.SAGEMAKER_ASYNC),
            *settings.emulator_flags,
        ],
        p.sagemaker_runtime,
        f"{settings.url(p.sagemaker_runtime)}/_emulator/health",
    )


def airflow_services(settings: Settings) -> list[Service]:
    airflow = _bin("airflow")
    health = f"{settings.url(settings.ports.airflow)}/api/v2/monitor/health"
    return [
        Service(
            "api-server", [airflow, "api-server", "--port", str(settings.ports.airflow)], settings.ports.airflow, health
        ),
        Service("scheduler", [airflow, "scheduler"], None, None),
        Service("dag-processor", [airflow, "dag-processor"], None, None),
        Service("triggerer", [airflow, "triggerer"], None, None),
    ]
