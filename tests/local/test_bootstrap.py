from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from audio_pipeline.config import CONFIG_VARIABLE, VARIABLES_PREFIX, PipelineConfig, StackNames
from audio_pipeline.ledger import table_definition
from local.bootstrap import bootstrap


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


def test_bootstrap_is_idempotent_and_matches_the_pipelines_names(aws):
    first = bootstrap()
    second = bootstrap()
    assert first == second
    config, names = PipelineConfig(), StackNames()
    table = boto3.client("dynamodb").describe_table(TableName=config.status_table)["Table"]
    definition = table_definition()
    assert table["KeySchema"] == definition["KeySchema"]
    indexes = [i["IndexName"] for i in definition["GlobalSecondaryIndexes"]]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == indexes
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(names.dead_letter_queue)
    assert int(redrive["maxReceiveCount"]) == names.max_receive_count
    sns = boto3.client("sns")
    for topic in (first.success_topic_arn, first.error_topic_arn):
        (sub,) = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert sub["Protocol"] == "sqs"
        raw = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
        assert raw.get("RawMessageDelivery", "false") == "false"
    sm = boto3.client("sagemaker")
    endpoint = sm.describe_endpoint(EndpointName=config.endpoint_name)
    async_config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])[
        "AsyncInferenceConfig"
    ]
    assert async_config["OutputConfig"]["S3OutputPath"] == config.output_path
    assert async_config["OutputConfig"]["S3FailurePath"] == config.failure_path
    assert async_config["OutputConfig"]["NotificationConfig"] == {
        "SuccessTopic": first.success_topic_arn,
        "ErrorTopic": first.error_topic_arn,
    }
    assert (
        async_config["ClientConfig"]["MaxConcurrentInvocationsPerInstance"]
        == names.max_concurrent_invocations_per_instance
    )
    buckets = {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}
    assert {first.input_bucket, config.output_bucket} <= buckets


def test_notifications_reach_the_queue_in_an_sns_envelope(aws):
    resources = bootstrap()
    boto3.client("sns").publish(TopicArn=resources.error_topic_arn, Message='{"inferenceId": "x"}')
    (message,) = boto3.client("sqs").receive_message(QueueUrl=resources.queue_url)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["Type"] == "Notification" and json.loads(envelope["Message"]) == {"inferenceId": "x"}


def test_bootstrap_writes_the_variable_to_ssm_as_infra_does(aws):
    resources = bootstrap(config=PipelineConfig(reconcile_interval_seconds=15))
    value = boto3.client("ssm").get_parameter(Name=f"{VARIABLES_PREFIX}/{CONFIG_VARIABLE}")["Parameter"]["Value"]
    assert PipelineConfig.from_json(value) == PipelineConfig(
        reconcile_interval_seconds=15, operations_topic_arn=resources.operations_topic_arn
    )


def test_the_operations_topic_delivers_to_a_queue_a_test_can_read(aws):
    """The DAG's failure notifier publishes to the topic the Variable names; locally a queue stands for
    the people subscribed to it."""
    first = bootstrap()
    assert bootstrap() == first
    assert first.operations_topic_arn.endswith(":" + StackNames().operations_topic)
    boto3.client("sns").publish(TopicArn=first.operations_topic_arn, Subject="s", Message="run failed")
    (message,) = boto3.client("sqs").receive_message(QueueUrl=first.operations_inbox_url)["Messages"]
    assert json.loads(message["Body"])["Message"] == "run failed"
    explicit = bootstrap(config=PipelineConfig(operations_topic_arn="arn:aws:sns:us-east-1:123456789012:other"))
    value = boto3.client("ssm").get_parameter(Name=f"{VARIABLES_PREFIX}/{CONFIG_VARIABLE}")["Parameter"]["Value"]
    assert PipelineConfig.from_json(value).operations_topic_arn.endswith(":other"), "a configured topic is kept"
    assert explicit.operations_topic_arn == first.operations_topic_arn
