"""The three designs, each run to its end on the local stack over its own prefix of files.

Each runner returns what only it can say (its end-to-end seconds, its Airflow run's task
instances, XCom bytes and state, the CPU of processes of its own); ``benchmarks.peers.__main__``
measures the rest the same way for all three.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.peers import original
from benchmarks.peers.dags.stock_provider import DAG_ID as STOCK_DAG_ID
from benchmarks.run import xcom_bytes
from local.stack.airflow_api import DAG_ID as PACKAGE_DAG_ID
from local.stack.airflow_api import AirflowApi
from local.stack.launcher import Stack
from tests.moto_server import free_port

QUIET_SECONDS = 10
"""The original design has no end of its own: it is over once the endpoint has nothing left and
its notification handler has been idle this long."""


@dataclass(frozen=True)
class Design:
    name: str
    title: str
    run: Callable[[Stack, str, str, float], dict[str, Any]]
    """(stack, bucket, prefix, deadline seconds) -> the design's own figures."""


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _tree_cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its descendants, live and reaped."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def run_original(stack: Stack, bucket: str, prefix: str, deadline: float) -> dict[str, Any]:
    """The notification handler subscribed to both topics over HTTP, then the listing function
    (its own pace: the deadline is for Airflow runs)."""
    settings = stack.settings
    session = stack.aws_session()
    sns, ddb = session.client("sns"), session.client("dynamodb")
    if original.TABLE not in ddb.list_tables()["TableNames"]:
        ddb.create_table(
            TableName=original.TABLE,
            AttributeDefinitions=[{"AttributeName": "uri", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "uri", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    port = free_port()
    handler = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.peers.original", "serve", "--port", str(port)],
        env=stack.env,
        stdout=open(settings.state_dir / "logs" / "peers-original-handler.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    stats_url = f"http://{settings.host}:{port}/stats"
    deadline = time.monotonic() + 60
    while True:
        try:
            _json(stats_url)
            break
        except OSError:
            if time.monotonic() > deadline or handler.poll() is not None:
                raise
            time.sleep(0.2)
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(("-success", "-error"))]
    subscriptions = [
        sns.subscribe(TopicArn=t, Protocol="http", Endpoint=f"http://{settings.host}:{port}/")["SubscriptionArn"]
        for t in topics
    ]
    health = f"{settings.url(settings.ports.sagemaker_runtime)}/_emulator/health"
    try:
        started, before = time.time(), psutil.Process().cpu_times()
        lister = subprocess.run(
            [sys.executable, "-m", "benchmarks.peers.original", "list", f"s3://{bucket}/{prefix}"],
            env=stack.env,
            capture_output=True,
            check=True,
            timeout=7200,
        )
        listed_at, after = time.time(), psutil.Process().cpu_times()
        lister_cpu = after.children_user + after.children_system - before.children_user - before.children_system
        while True:
            endpoint = next(iter(_json(health)["endpoints"].values()))
            stats = _json(stats_url)
            idle = time.time() - max(stats["last_done_at"], 0.0)
            if endpoint["in_flight"] == 0 and stats["in_progress"] == 0 and idle > QUIET_SECONDS:
                break
            time.sleep(1)
        ended = max(listed_at, stats["last_done_at"])
        handler_cpu = _tree_cpu(psutil.Process(handler.pid))
    finally:
        for arn in subscriptions:
            sns.unsubscribe(SubscriptionArn=arn)
        handler.terminate()
        handler.wait(30)
    return {
        "end_to_end_s": round(ended - started, 1),
        "run_state": f"listed {json.loads(lister.stdout)['listed']}, handled {stats['handled']} notifications "
        f"({stats['errors']} errors)",
        "task_instances": 0,
        "xcom_bytes": 0,
        "own_cpu_s": round(lister_cpu + handler_cpu, 1),
        "unreported_ends": 0,
    }


def _airflow_run(stack: Stack, dag_id: str, conf: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Trigger the run and wait for its end; a run still going at the deadline is marked failed,
    as from the UI (its running tasks are stopped), and its figures are what it did until then."""
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    api.wait_for_dag(dag_id=dag_id)
    started = time.monotonic()
    run_id = api.trigger(conf, dag_id=dag_id)
    try:
        state = api.wait_for_run(run_id, timeout=deadline, dag_id=dag_id)
    except TimeoutError:
        _mark_failed(AirflowApi(stack.settings.url(stack.settings.ports.airflow), timeout=900), run_id, dag_id)
        api.wait_for_run(run_id, timeout=600, dag_id=dag_id)
        state = f"stopped at the {deadline:,.0f} s deadline"
    return {
        "end_to_end_s": round(time.monotonic() - started, 1),
        "run_state": state,
        "task_instances": len(api.task_instances(run_id, dag_id=dag_id)),
        "xcom_bytes": xcom_bytes(stack.settings.airflow_home / "airflow.db", run_id),
        "own_cpu_s": 0.0,
        "unreported_ends": unreported_ends(stack.settings.airflow_home / "logs", dag_id, run_id),
    }


def _mark_failed(api: AirflowApi, run_id: str, dag_id: str, attempts: int = 5) -> None:
    """Mark the run failed. The API server marks every unfinished task instance in the one request
    (minutes at N = 1,000, hence the long timeout) and answers 500 when SQLite stays locked under
    it: asked again after a pause, up to ``attempts`` times."""
    for attempt in range(1, attempts + 1):
        try:
            api.mark_run(run_id, "failed", dag_id=dag_id)
            return
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == attempts:
                raise
            time.sleep(30)


UNREPORTED = "Failed to report terminal task state"


def unreported_ends(logs: Path, dag_id: str, run_id: str) -> int:
    """Task tries of the run whose end Airflow's API server refused to record (the task's log says
    so): the scheduler then runs the task again, as a new try."""
    folder = logs / f"dag_id={dag_id}" / f"run_id={run_id}"
    return sum(1 for log in folder.rglob("attempt=*.log") if UNREPORTED in log.read_text(errors="replace"))


def run_stock(stack: Stack, bucket: str, prefix: str, deadline: float) -> dict[str, Any]:
    from audio_pipeline.config import PipelineConfig

    config = PipelineConfig.from_mapping(stack.settings.variables)
    queue = stack.aws_session().client("sqs").get_queue_url(QueueName=config.notification_queue)["QueueUrl"]
    conf = {
        "bucket": bucket,
        "prefix": prefix,
        "endpoint_name": config.endpoint_name,
        "queue_url": queue,
        "model_id": config.bedrock_model_id,
    }
    return _airflow_run(stack, STOCK_DAG_ID, conf, deadline)


def run_package(stack: Stack, bucket: str, prefix: str, deadline: float) -> dict[str, Any]:
    return _airflow_run(stack, PACKAGE_DAG_ID, {"bucket_uri": f"s3://{bucket}/{prefix}", "batch_size": 100}, deadline)


DESIGNS = (
    Design("original", "the original's design (listing function + SNS handler)", run_original),
    Design("stock", "stock-provider DAG (S3ListOperator, mapped invoke, SqsSensor, BedrockRuntimeHook)", run_stock),
    Design("package", "this package's DAG (audio_transcription)", run_package),
)
