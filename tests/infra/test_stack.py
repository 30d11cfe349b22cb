from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aws_cdk.assertions import Match

from audio_pipeline.config import PipelineConfig, StackNames
from audio_pipeline.status import KEY_SCHEMA, RUN_INDEX
from infra.settings import AIRFLOW_VERSION
from infra.stacks.mwaa import SECRETS_BACKEND

CONFIG, NAMES = PipelineConfig(), StackNames()


def resources(template, kind):
    return template.find_resources(kind)


def test_buckets_are_private_encrypted_versioned_and_tls_only(template):
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 3  # output, MWAA, access logs
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    policies = json.dumps(resources(template, "AWS::S3::BucketPolicy"))
    assert policies.count('"aws:SecureTransport": "false"') >= 3


def test_status_table_from_the_shared_definition(template):
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": CONFIG.status_table,
            "KeySchema": KEY_SCHEMA,
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "GlobalSecondaryIndexes": [Match.object_like({"IndexName": RUN_INDEX})],
        },
    )


def test_topics_queue_and_dead_letters(template):
    topics = resources(template, "AWS::SNS::Topic")
    assert {t["Properties"]["TopicName"] for t in topics.values()} == {NAMES.success_topic, NAMES.error_topic}
    assert all("KmsMasterKeyId" in t["Properties"] for t in topics.values())
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": CONFIG.notification_queue,
            "KmsMasterKeyId": Match.any_value(),
            "RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": NAMES.max_receive_count},
        },
    )
    template.has_resource_properties(
        "AWS::SQS::Queue", {"QueueName": NAMES.dead_letter_queue, "KmsMasterKeyId": Match.any_value()}
    )
    subscriptions = resources(template, "AWS::SNS::Subscription")
    assert len(subscriptions) == 2
    assert all(
        s["Properties"]["Protocol"] == "sqs" and not s["Properties"].get("RawMessageDelivery")
        for s in subscriptions.values()
    )
    queue_policy = json.dumps(resources(template, "AWS::SQS::QueuePolicy"))
    assert queue_policy.count("aws:SourceArn") == 2, "only the two topics may send"


def test_async_endpoint_with_scaling_from_zero(template):
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "AsyncInferenceConfig": {
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": NAMES.max_concurrent_invocations_per_instance},
                "OutputConfig": {
                    "S3OutputPath": Match.any_value(),
                    "S3FailurePath": Match.any_value(),
                    "NotificationConfig": {"SuccessTopic": Match.any_value(), "ErrorTopic": Match.any_value()},
                },
            },
            "ProductionVariants": [Match.object_like({"InstanceType": "ml.g4dn.xlarge"})],
        },
    )
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like({"Environment": Match.object_like({"MODEL_BACKEND": "parakeet"})}),
        },
    )
    template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": CONFIG.endpoint_name})
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "MinCapacity": 0,
            "MaxCapacity": 3,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        },
    )
    policies = json.dumps(resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy"))
    assert "ApproximateBacklogSizePerInstance" in policies and "StepScaling" in policies
    alarms = json.dumps(resources(template, "AWS::CloudWatch::Alarm"))
    assert "HasBacklogWithoutCapacity" in alarms


def test_mwaa_environment_matches_requirements_and_reads_variables_from_ssm(template):
    requirements = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text()
    assert f"constraints-{AIRFLOW_VERSION}/" in requirements
    template.has_resource_properties(
        "AWS::MWAA::Environment",
        {
            "AirflowVersion": AIRFLOW_VERSION,
            "PluginsS3Path": "plugins.zip",
            "RequirementsS3Path": "requirements.txt",
            "DagS3Path": "dags",
            "AirflowConfigurationOptions": Match.object_like(
                {
                    "secrets.backend": SECRETS_BACKEND,
                }
            ),
        },
    )
    names = {p["Properties"]["Name"] for p in resources(template, "AWS::SSM::Parameter").values()}
    assert names == {f"/airflow/variables/{PipelineConfig.variable_name(f.name)}" for f in PipelineConfig.fields()}


def test_no_statement_grants_every_action_on_every_resource(template):
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(a == "*" or a.endswith(":*") for a in actions), statement


def test_bedrock_access_is_the_configured_model_only(template):
    text = json.dumps(resources(template, "AWS::IAM::Policy"))
    profile = CONFIG.bedrock_model_id
    assert f"inference-profile/{profile}" in text
    assert f"foundation-model/{profile.partition('.')[2]}" in text
    actions = {
        a
        for policy in resources(template, "AWS::IAM::Policy").values()
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
        if a.startswith("bedrock:")
    }
    assert actions == {"bedrock:InvokeModel"}, "Converse is authorised by bedrock:InvokeModel"


def test_every_store_is_encrypted(template):
    assert all("KmsMasterKeyId" in q["Properties"] for q in resources(template, "AWS::SQS::Queue").values())
    assert all(
        t["Properties"].get("SSESpecification", {}).get("SSEEnabled")
        for t in resources(template, "AWS::DynamoDB::Table").values()
    )


def test_existing_endpoint_skips_inference_and_is_granted(existing_endpoint):
    assert existing_endpoint.find_resources("AWS::SageMaker::Endpoint") == {}
    assert existing_endpoint.find_resources("AWS::SageMaker::Model") == {}
    text = json.dumps(existing_endpoint.find_resources("AWS::IAM::Policy"))
    assert "endpoint/parakeet-async-endpoint" in text
    params = existing_endpoint.find_resources("AWS::SSM::Parameter")
    values = {p["Properties"]["Name"]: p["Properties"]["Value"] for p in params.values()}
    assert values["/airflow/variables/audio_pipeline_endpoint_name"] == "parakeet-async-endpoint"


def test_cfn_lint_finds_no_errors(deployed):
    _, path = deployed
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "json", str(path)], capture_output=True, text=True
    )
    findings = json.loads(result.stdout or "[]")
    errors = [f for f in findings if f["Level"] == "Error"]
    assert errors == [], errors
