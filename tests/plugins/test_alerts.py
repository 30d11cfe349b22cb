"""The DAG's failure notifier: the provider's SnsNotifier, to the topic the Variable names, or to none."""

from __future__ import annotations

import json

import boto3
import pendulum

from audio_pipeline.alerts import OperationsNotifier
from audio_pipeline.config import PipelineConfig
from tests.plugins.conftest import REGION


def failed_run_context(dag_id: str = "audio_transcription") -> dict:
    """What Airflow's DAG processor hands a DAG's failure callback when no task instance is known."""
    from airflow.sdk import DAG

    dag = DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
    return {"dag": dag, "run_id": "manual__2026-12-03T01:02:03", "reason": "task_failure"}


def inbox(topic_arn: str) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", region_name=REGION).subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def test_a_failed_run_is_announced_on_the_configured_topic(aws, monkeypatch):
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="audio-transcription-operations")["TopicArn"]
    url = inbox(topic)
    monkeypatch.setenv("AIRFLOW_VAR_AUDIO_PIPELINE_CONFIG", PipelineConfig(operations_topic_arn=topic).to_json())
    OperationsNotifier()(failed_run_context())
    (message,) = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=url)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["TopicArn"] == topic
    assert envelope["Subject"] == "audio pipeline: audio_transcription run failed"
    assert envelope["Message"].startswith(
        "Run manual__2026-12-03T01:02:03 of DAG audio_transcription failed (task_failure)."
    )
    assert "Last task" not in envelope["Message"], "no task instance in this context"


def test_without_a_topic_nothing_is_sent_and_the_log_says_so(aws, monkeypatch, caplog, capsys):
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="audio-transcription-operations")["TopicArn"]
    url = inbox(topic)
    monkeypatch.setenv("AIRFLOW_VAR_AUDIO_PIPELINE_CONFIG", PipelineConfig().to_json())
    with caplog.at_level("INFO"):
        OperationsNotifier()(failed_run_context())
    logged = caplog.text + capsys.readouterr().out  # the notifier logs through Airflow's structlog
    assert "no operations_topic_arn in audio_pipeline_config: no failure notification sent" in logged
    assert "Messages" not in boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=url)


def test_the_dag_announces_its_failures():
    from tests.dags.test_audio_transcription import dagbag

    bag = dagbag()
    assert bag.import_errors == {}
    assert isinstance(bag.dags["audio_transcription"].on_failure_callback, OperationsNotifier)
