"""Create, idempotently, every AWS resource the pipeline needs, on the local moto server.

The same shape ``infra/`` deploys in AWS, from the same definitions: names and S3 layout
from ``audio_pipeline.config``, the table from ``audio_pipeline.ledger``, and the Airflow
Variable ``audio_pipeline_config`` as an SSM parameter behind the secrets backend. Run it with
``python -m local.bootstrap`` (``AWS_ENDPOINT_URL`` pointing at moto).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from audio_pipeline.config import CONFIG_VARIABLE, VARIABLES_PREFIX, PipelineConfig, StackNames
from audio_pipeline.ledger import table_definition

log = logging.getLogger(__name__)

INPUT_BUCKET = "audio-transcription-input"
"""A bucket for users' audio on the local stack (in AWS, the audio bucket is the user's own)."""
MODEL_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/audio-transcription-asr:local"
ROLE_ARN = "arn:aws:iam::123456789012:role/audio-transcription-sagemaker"
INSTANCE_TYPE = "ml.g4dn.xlarge"
OPERATIONS_INBOX = "audio-transcription-operations-inbox"
"""A queue subscribed to the operations topic on the local stack, where a test (or you) reads what
the alarms' people would get by email (in AWS: ``-c alarmEmail``)."""


@dataclass(frozen=True)
class Resources:
    input_bucket: str
    output_bucket: str
    status_table: str
    queue_url: str
    dead_letter_queue_url: str
    success_topic_arn: str
    error_topic_arn: str
    endpoint_name: str
    operations_topic_arn: str
    operations_inbox_url: str


def _exists(err: ClientError, *codes: str) -> bool:
    return err.response.get("Error", {}).get("Code") in codes


def bootstrap(
    session: boto3.session.Session | None = None,
    config: PipelineConfig = PipelineConfig(),
    names: StackNames = StackNames(),
) -> Resources:
    session = session or boto3.session.Session()
    region = session.region_name or "us-east-1"
    s3, ddb, sns, sqs, sm, ssm = (
        session.client(s, region_name=region) for s in ("s3", "dynamodb", "sns", "sqs", "sagemaker", "ssm")
    )
    operations = sns.create_topic(Name=names.operations_topic)["TopicArn"]
    inbox_url = sqs.create_queue(QueueName=OPERATIONS_INBOX)["QueueUrl"]
    inbox_arn = _queue_arn(sqs, inbox_url)
    if inbox_arn not in {s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=operations)["Subscriptions"]}:
        sns.subscribe(TopicArn=operations, Protocol="sqs", Endpoint=inbox_arn)
    # the DAG's failure notifier publishes to it, as infra/ sets it (unless the settings name another)
    config = dataclasses.replace(config, operations_topic_arn=config.operations_topic_arn or operations)
    ssm.put_parameter(
        Name=f"{VARIABLES_PREFIX}/{CONFIG_VARIABLE}",
        Value=config.to_json(),
        Type="String",
        Overwrite=True,
        Description=f"Airflow Variable {CONFIG_VARIABLE}",
    )

    for bucket in (INPUT_BUCKET, config.output_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as err:
            if not _exists(err, "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    try:
        ddb.create_table(TableName=config.status_table, **table_definition())
    except ClientError as err:
        if not _exists(err, "ResourceInUseException"):
            raise

    success = sns.create_topic(Name=names.success_topic)["TopicArn"]
    error = sns.create_topic(Name=names.error_topic)["TopicArn"]
    dlq_url = sqs.create_queue(QueueName=names.dead_letter_queue)["QueueUrl"]
    dlq_arn = _queue_arn(sqs, dlq_url)
    queue_url = sqs.create_queue(QueueName=config.notification_queue)["QueueUrl"]
    queue_arn = _queue_arn(sqs, queue_url)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": [success, error]}},
            }
        ],
    }
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(names.max_receive_count)}
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy), "RedrivePolicy": json.dumps(redrive)}
    )
    for topic in (success, error):
        subscribed = {s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]}
        if queue_arn not in subscribed:
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)  # raw delivery off, as in AWS

    _ensure(
        lambda: sm.create_model(
            ModelName=names.model_name,
            ExecutionRoleArn=ROLE_ARN,
            PrimaryContainer={"Image": MODEL_IMAGE, "Environment": {"MODEL_BACKEND": "whisper"}},
        )
    )
    _ensure(
        lambda: sm.create_endpoint_config(
            EndpointConfigName=names.endpoint_config_name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": names.model_name,
                    "InitialInstanceCount": 1,
                    "InstanceType": INSTANCE_TYPE,
                }
            ],
            AsyncInferenceConfig={
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": names.max_concurrent_invocations_per_instance},
                "OutputConfig": {
                    "S3OutputPath": config.output_path,
                    "S3FailurePath": config.failure_path,
                    "NotificationConfig": {"SuccessTopic": success, "ErrorTopic": error},
                },
            },
        )
    )
    _ensure(
        lambda: sm.create_endpoint(EndpointName=config.endpoint_name, EndpointConfigName=names.endpoint_config_name)
    )
    return Resources(
        input_bucket=INPUT_BUCKET,
        output_bucket=config.output_bucket,
        status_table=config.status_table,
        queue_url=queue_url,
        dead_letter_queue_url=dlq_url,
        success_topic_arn=success,
        error_topic_arn=error,
        endpoint_name=config.endpoint_name,
        operations_topic_arn=operations,
        operations_inbox_url=inbox_url,
    )


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _ensure(create: Any) -> None:
    try:
        create()
    except ClientError as err:
        message = err.response.get("Error", {}).get("Message", "")
        if not (_exists(err, "ValidationException", "ResourceInUse") and "already exist" in message.lower()):
            raise


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from local.stack.services import Settings

    print(json.dumps(bootstrap(config=PipelineConfig.from_mapping(Settings().variables)).__dict__, indent=1))
