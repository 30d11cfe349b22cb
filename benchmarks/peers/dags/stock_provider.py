"""The DAG a user would write from the Amazon provider's building blocks (benchmarks/peers, issue 22).

``S3ListOperator`` lists the prefix; a task group mapped over the keys runs, per file: ``invoke``
(``InvokeEndpointAsync`` through the provider's ``AwsBaseHook`` on ``sagemaker-runtime``, the
client type ``SageMakerHook`` does not cover), an ``SqsSensor`` (reschedule mode) that takes the next
notification from the endpoint's queue, and ``summarise`` (``Converse`` through the provider's
``BedrockRuntimeHook``, the summary written next to the transcript with ``S3Hook``).

What it was given, as a competent user would: retries 3 with exponential back-off from 10 s on
every task (botocore's own retries underneath); ``weight_rule="upstream"``, so a file's later
tasks go before the next file's ``invoke`` (with Airflow's default, ``downstream``, every
``invoke`` of the listing runs before any sensor, so no file is summarised until all are
invoked: at 1,000 files on the benchmark's shared machine, some 16 ``invoke`` tries every two
minutes); the sensor in reschedule mode (no worker slot held between pokes) with a 5 s poke
interval and 10 s long polls, and a timeout (``PEERS_WAIT_TIMEOUT_SECONDS``, the benchmark sets
it) after which a sensor that saw nothing fails its file. Not deferrable: on Airflow 3.3.1 a
deferred sensor whose trigger fires at once (its message is already there) races the
scheduler, which fails the resumed try while it runs ("Task Instance not found" when it reports
its end); the message its trigger deleted from the queue is then gone (docs/benchmarks.md). Each
sensor takes one message, whichever file it names: filtering by inference id
(``message_filtering``) would hide every other file's message from the queue for its visibility
timeout. Airflow's default ``max_map_length`` (1,024) is left as it is: a listing of more keys
fails the mapping.

Only the benchmark's stack loads this folder (``Settings.dag_bundles``), never the production
DAG folder.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.bedrock import BedrockRuntimeHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.providers.amazon.aws.sensors.sqs import SqsSensor
from airflow.sdk import Param, dag, task, task_group

DAG_ID = "peers_stock_provider"
AWS = "aws_default"
WAIT_TIMEOUT = int(os.environ.get("PEERS_WAIT_TIMEOUT_SECONDS", "3600"))
PROMPT = "Summarise this meeting transcript in three sentences.\n\n<transcript>\n{text}\n</transcript>"


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=10),
        "retry_exponential_backoff": True,
        "weight_rule": "upstream",
    },
    params={
        "bucket": Param("audio-transcription-input", type="string"),
        "prefix": Param("", type="string"),
        "endpoint_name": Param("audio-transcription-async", type="string"),
        "queue_url": Param("", type="string"),
        "model_id": Param("us.anthropic.claude-haiku-4-5-20251001-v1:0", type="string"),
    },
)
def peers_stock_provider() -> None:
    listed = S3ListOperator(
        task_id="list_audio", bucket="{{ params.bucket }}", prefix="{{ params.prefix }}", aws_conn_id=AWS
    )

    @task
    def invoke(key: str, params: dict[str, Any] | None = None) -> str:
        runtime = AwsBaseHook(aws_conn_id=AWS, client_type="sagemaker-runtime").conn
        answer = runtime.invoke_endpoint_async(
            EndpointName=params["endpoint_name"],
            InputLocation=f"s3://{params['bucket']}/{key}",
            ContentType="audio/wav",
        )
        return str(answer["InferenceId"])

    @task
    def summarise(messages: list[dict[str, Any]], params: dict[str, Any] | None = None) -> None:
        s3 = S3Hook(aws_conn_id=AWS)
        bedrock = BedrockRuntimeHook(aws_conn_id=AWS).conn
        for message in messages:
            notification = json.loads(json.loads(message["Body"])["Message"])
            if notification.get("invocationStatus") != "Completed":
                raise RuntimeError(f"inference failed: {notification.get('failureReason')}")
            out = notification["responseParameters"]["outputLocation"]
            bucket, _, key = out.removeprefix("s3://").partition("/")
            text = json.loads(s3.conn.get_object(Bucket=bucket, Key=key)["Body"].read())["text"]
            answer = bedrock.converse(
                modelId=params["model_id"],
                messages=[{"role": "user", "content": [{"text": PROMPT.format(text=text)}]}],
                inferenceConfig={"maxTokens": 512},
            )
            summary = answer["output"]["message"]["content"][0]["text"]
            s3.load_string(
                json.dumps({"transcript": out, "summary": summary}),
                key.removesuffix(".out") + ".summary.json",
                bucket,
                replace=True,
            )

    @task_group
    def per_file(key: str) -> None:
        wait = SqsSensor(
            task_id="wait_for_notification",
            sqs_queue="{{ params.queue_url }}",
            aws_conn_id=AWS,
            max_messages=1,
            wait_time_seconds=10,
            poke_interval=5,
            timeout=WAIT_TIMEOUT,
            mode="reschedule",
        )
        invoke(key) >> wait >> summarise(wait.output["messages"])

    per_file.expand(key=listed.output)


peers_stock_provider()
