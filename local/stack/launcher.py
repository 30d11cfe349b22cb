"""Bringing the whole stack up and down."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from audio_pipeline.config import PipelineConfig
from local.bootstrap import Resources, bootstrap
from local.stack import airflow_home
from local.stack.airflow_api import TERMINAL, AirflowApi
from local.stack.processes import Processes
from local.stack.services import (
    Settings,
    airflow_environment,
    airflow_services,
    aws_environment,
    emulator_services,
    environment,
    runtime_service,
)

log = logging.getLogger(__name__)


class StackSession(boto3.session.Session):
    """A boto3 session whose clients reach one stack's emulators: each client gets its service's
    endpoint from the stack's settings, never from the process environment, so sessions on two
    stacks in one process (the e2e stack and a fault row's) never cross."""

    def __init__(self, settings: Settings) -> None:
        env = aws_environment(settings)
        super().__init__(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        self.endpoints = {
            "sagemaker-runtime": env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"],
            "bedrock-runtime": env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"],
        }
        self.default_endpoint = env["AWS_ENDPOINT_URL"]

    def endpoint_url(self, service_name: str) -> str:
        return self.endpoints.get(service_name, self.default_endpoint)

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("endpoint_url", self.endpoint_url(service_name))
        return super().client(service_name, *args, **kwargs)

    def resource(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("endpoint_url", self.endpoint_url(service_name))
        return super().resource(service_name, *args, **kwargs)


def aws_session(settings: Settings) -> boto3.session.Session:
    """A boto3 session on the stack's emulators (moto, SageMaker runtime, Bedrock runtime)."""
    return StackSession(settings)


@dataclass
class Stack:
    settings: Settings

    def __post_init__(self) -> None:
        self.env = environment(self.settings)
        self.processes = Processes(self.settings.state_dir, self.env)

    def aws_session(self) -> boto3.session.Session:
        return aws_session(self.settings)

    def running(self) -> dict[str, int]:
        return self.processes.running()

    def up(self) -> Resources:
        started = time.monotonic()
        if self.running():
            raise RuntimeError(
                f"a stack already runs from {self.settings.state_dir} ({', '.join(self.running())}): "
                "`make down` first, or use it as it is"
            )
        log.info("starting moto, the model server (%s) and the Bedrock emulator", self.settings.model_backend)
        first = emulator_services(self.settings)
        for service in first:
            self.processes.start(service)
        airflow = airflow_services(self.settings)
        with ThreadPoolExecutor(2) as pool:
            migrated = pool.submit(airflow_home.prepare, self.processes, self.settings.airflow_home, airflow[0].argv[0])
            self.processes.wait_healthy(first[:1])
            resources = bootstrap(
                self.aws_session(), PipelineConfig.from_mapping(self.settings.variables), self.settings.names
            )
            log.info(
                "bootstrapped: bucket %s, table %s, endpoint %s",
                resources.input_bucket,
                resources.status_table,
                resources.endpoint_name,
            )
            runtime = runtime_service(self.settings)
            self.processes.start(runtime)
            migrated.result()
        for service in airflow:
            self.processes.start(service)
        self.processes.wait_healthy([*first, runtime, *airflow])
        self._settle_first_parse()
        self._write_env(resources)
        log.info("stack up in %.0fs", time.monotonic() - started)
        return resources

    def _settle_first_parse(self, timeout: float = 180) -> None:
        """Up means ready for a trigger: the DAG parsed, and the nightly run that the scheduler
        creates for it at once (unpaused at creation, as on MWAA; no catchup) finished (it skips
        without a ``schedule_bucket_uri``). A trigger while that run started could wait 30 s on
        SQLite's lock and fail (a 500, and the nightly task's first try with it). Without the
        nightly schedule (``Settings.nightly``), the DAG parsed."""
        api = AirflowApi(self.settings.url(self.settings.ports.airflow))
        api.wait_for_dag(timeout)
        if not self.settings.nightly:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nightly = [r for r in api.dag_runs() if r["run_type"] == "scheduled"]
            if nightly and all(r["state"] in TERMINAL for r in nightly):
                log.info("the nightly run %s ended %s", nightly[0]["dag_run_id"], nightly[0]["state"])
                return
            time.sleep(1)
        raise RuntimeError(
            f"the DAG's first nightly run did not end within {timeout:.0f}s (logs under {self.settings.state_dir})"
        )

    def down(self) -> list[str]:
        return self.processes.stop_all()

    def _write_env(self, resources: Resources) -> None:
        airflow = airflow_environment(self.settings)
        plugins = airflow.pop("PYTHONPATH")
        values = {
            **aws_environment(self.settings),
            # the same home, database, DAG and plugin folders, connection and Variables as the
            # stack's processes: the airflow CLI (dags trigger, list-runs, test) works on this stack
            **airflow,
            "AUDIO_BUCKET": resources.input_bucket,
            "OUTPUT_BUCKET": resources.output_bucket,
            "STATUS_TABLE": resources.status_table,
            "NOTIFICATION_QUEUE_URL": resources.queue_url,
            "OPERATIONS_INBOX_URL": resources.operations_inbox_url,
            "SAGEMAKER_ENDPOINT_NAME": resources.endpoint_name,
            "AIRFLOW_URL": self.settings.url(self.settings.ports.airflow),
        }
        lines = [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
        lines.append(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')  # this airflow
        lines.append(f"export PYTHONPATH={shlex.quote(plugins)}${{PYTHONPATH:+:$PYTHONPATH}}")
        (self.settings.state_dir / "stack.env").write_text("\n".join(lines) + "\n")
