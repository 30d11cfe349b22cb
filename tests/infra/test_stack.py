from __future__ import annotations

import hashlib
import json
import re

import aws_cdk as cdk
import botocore.session
import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match
from cfnlint.api import lint_file

from audio_pipeline.config import (
    CONFIG_VARIABLE,
    SECRETS_BACKEND,
    VARIABLES_PREFIX,
    PipelineConfig,
    StackNames,
    secrets_backend_options,
)
from audio_pipeline.ledger import table_definition
from audio_pipeline.summaries import summary_location
from infra.app import build
from infra.plugins_zip import build as build_plugins_zip
from infra.settings import AIRFLOW_VERSION, DEFAULT_PARAKEET_MODEL, INFERENCE_AMI_VERSION, InfraSettings, SettingError
from infra.stacks.inference import CONCURRENT_INVOCATIONS_PER_INSTANCE
from infra.stacks.mwaa import bedrock_resources
from tests.infra.conftest import CDK_CONTEXT, IMAGE, REPO, STACK, cdk_synth

CONFIG, NAMES = PipelineConfig(), StackNames()
PROFILE = CONFIG.bedrock_model_id
FOUNDATION_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"  # the customised fixture's bedrockModelId


def resources(template, kind):
    return template.find_resources(kind)


def logical_id(template, kind, prefix):
    (found,) = [name for name in resources(template, kind) if name.startswith(prefix)]
    return found


def ref(template, kind, prefix):
    return {"Ref": logical_id(template, kind, prefix)}


def as_list(value):
    return value if isinstance(value, list) else [value]


def policy_documents(template):
    """Every policy document in the template: identity policies, inline role policies, resource policies."""
    for resource in template.to_json()["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("PolicyDocument", "KeyPolicy"):
            if key in props:
                yield resource["Type"], props[key]
        for inline in props.get("Policies", []):
            yield resource["Type"], inline["PolicyDocument"]


def role_statements(template, role_prefix):
    """The statements of the policies attached to the role whose logical id starts with ``role_prefix``."""
    role = logical_id(template, "AWS::IAM::Role", role_prefix)
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def actions_on(statements, needle):
    """The actions of the statements whose resources mention ``needle``."""
    return {
        action
        for statement in statements
        if needle in json.dumps(statement.get("Resource"))
        for action in as_list(statement["Action"])
    }


def test_buckets_are_private_encrypted_versioned_and_tls_only(template):
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 3  # output, MWAA, access logs
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(template, "AWS::S3::BucketPolicy").values()
    }
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert "AccessControl" not in props, "log delivery by bucket policy, not a legacy ACL"
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policies[name]
        ), f"{name} admits plain HTTP"


def test_the_input_bucket_is_only_read(template):
    statements = [s for _, doc in policy_documents(template) for s in doc["Statement"]]
    actions = actions_on(statements, "s3:::team-audio")
    assert actions and all(a.startswith(("s3:Get", "s3:List")) for a in actions), actions
    buckets = resources(template, "AWS::S3::Bucket").values()
    assert not [b for b in buckets if "team-audio" in json.dumps(b)], "the user's bucket: named, never created"


def test_status_table_from_the_shared_definition(template):
    definition = table_definition()
    (table,) = resources(template, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["TableName"] == CONFIG.status_table
    assert props["KeySchema"] == definition["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(definition["AttributeDefinitions"], key=str)
    assert props["GlobalSecondaryIndexes"] == definition["GlobalSecondaryIndexes"]
    assert props["BillingMode"] == definition["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_topics_queue_and_dead_letters(template):
    every_topic = resources(template, "AWS::SNS::Topic")
    dead_letters = logical_id(template, "AWS::SQS::Queue", "NotificationsDeadLetters")
    assert {t["Properties"]["TopicName"] for t in every_topic.values()} == {
        NAMES.success_topic,
        NAMES.error_topic,
        NAMES.operations_topic,
    }
    topics = {name: t for name, t in every_topic.items() if name.startswith("Notifications")}
    assert {t["Properties"]["TopicName"] for t in topics.values()} == {NAMES.success_topic, NAMES.error_topic}
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": CONFIG.notification_queue,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [dead_letters, "Arn"]},
                "maxReceiveCount": NAMES.max_receive_count,
            },
        },
    )
    template.has_resource_properties("AWS::SQS::Queue", {"QueueName": NAMES.dead_letter_queue})
    queue = logical_id(template, "AWS::SQS::Queue", "NotificationsQueue")
    subscriptions = [s["Properties"] for s in resources(template, "AWS::SNS::Subscription").values()]
    assert sorted(s["TopicArn"]["Ref"] for s in subscriptions) == sorted(topics)
    assert all(
        s["Protocol"] == "sqs" and s["Endpoint"] == {"Fn::GetAtt": [queue, "Arn"]} and s["RawMessageDelivery"] is False
        for s in subscriptions
    ), "the sensor reads the SNS envelope"
    policies = [p["Properties"] for p in resources(template, "AWS::SQS::QueuePolicy").values()]
    (policy,) = [p for p in policies if p["Queues"] == [{"Ref": queue}]]
    allowed = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert all(s["Principal"] == {"Service": "sns.amazonaws.com"} and s["Action"] == "sqs:SendMessage" for s in allowed)
    assert sorted(s["Condition"]["ArnEquals"]["aws:SourceArn"]["Ref"] for s in allowed) == sorted(topics)


def test_every_store_is_encrypted(template):
    assert all("BucketEncryption" in b["Properties"] for b in resources(template, "AWS::S3::Bucket").values())
    tables = resources(template, "AWS::DynamoDB::Table").values()
    assert all(t["Properties"]["SSESpecification"]["SSEEnabled"] for t in tables)
    for kind in ("AWS::SQS::Queue", "AWS::SNS::Topic"):
        stores = resources(template, kind).values()
        assert stores and all("KmsMasterKeyId" in s["Properties"] for s in stores), kind
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_async_endpoint_on_our_container(template):
    output = logical_id(template, "AWS::S3::Bucket", "StorageOutput")

    def path(prefix):
        return {"Fn::Join": ["", ["s3://", {"Ref": output}, f"/{prefix}"]]}

    (config,) = resources(template, "AWS::SageMaker::EndpointConfig").values()
    assert config["Properties"]["AsyncInferenceConfig"] == {
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": CONCURRENT_INVOCATIONS_PER_INSTANCE},
        "OutputConfig": {
            "S3OutputPath": path(CONFIG.transcripts_prefix),
            "S3FailurePath": path(CONFIG.failures_prefix),
            "NotificationConfig": {
                "SuccessTopic": ref(template, "AWS::SNS::Topic", "NotificationsSuccess"),
                "ErrorTopic": ref(template, "AWS::SNS::Topic", "NotificationsError"),
            },
        },
    }
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    startup = (variant["ModelDataDownloadTimeoutInSeconds"], variant["ContainerStartupHealthCheckTimeoutInSeconds"])
    assert startup == (1800, 1800), "a cold start downloads the checkpoint"
    (model,) = resources(template, "AWS::SageMaker::Model").values()
    assert model["Properties"]["PrimaryContainer"] == {
        "Image": IMAGE,
        "Environment": {"MODEL_BACKEND": "parakeet", "PARAKEET_MODEL": DEFAULT_PARAKEET_MODEL},
    }
    # both are replaced on any change (image, instance type); CloudFormation cannot replace a named resource
    assert "ModelName" not in model["Properties"] and "EndpointConfigName" not in config["Properties"]
    template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": CONFIG.endpoint_name})
    ecr = actions_on(role_statements(template, "InferenceRole"), ":ecr:us-east-1:123456789012:repository/audio-asr")
    assert ecr == {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"}


def test_the_variant_runs_on_a_host_whose_driver_fits_the_images_cuda(template):
    """Without InferenceAmiVersion, g4dn/g5 hosts carry NVIDIA driver 470 (CUDA 11.4): NeMo's CUDA 12 sees no GPU."""
    (config,) = resources(template, "AWS::SageMaker::EndpointConfig").values()
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["InferenceAmiVersion"] == INFERENCE_AMI_VERSION
    shape = (
        botocore.session.get_session().get_service_model("sagemaker").shape_for("ProductionVariantInferenceAmiVersion")
    )
    assert INFERENCE_AMI_VERSION in shape.enum, "a value CreateEndpointConfig accepts"
    assert INFERENCE_AMI_VERSION.startswith("al2023-ami-sagemaker-inference-gpu-")


def deletion(resource):
    return resource.get("DeletionPolicy", "Delete"), resource.get("UpdateReplacePolicy", "Delete")


def test_a_failed_first_create_rolls_back_to_nothing_and_a_retry_starts_clean(template):
    """CloudFormation deletes what a rolled-back first create made, and DeleteBucket fails on a bucket that
    holds any object version (the stack ends in ROLLBACK_FAILED and the next deploy fails too). Kept by a
    stack deletion or replacement: the table, the output bucket and the flow logs (RetainExceptOnCreate:
    deleted by that rollback, so the table's fixed name is free again; nothing writes to the output bucket
    before the DAG runs), and the access logs (Retain: S3 delivers them late, so the bucket may not be
    empty; its generated name does not collide). The MWAA bucket is deleted, emptied first."""
    every = template.to_json()["Resources"]
    kept = {name: deletion(r) for name, r in every.items() if deletion(r) != ("Delete", "Delete")}
    on_create = ("RetainExceptOnCreate", "Retain")
    assert kept == {
        logical_id(template, "AWS::DynamoDB::Table", "Status"): on_create,
        logical_id(template, "AWS::S3::Bucket", "StorageOutput"): on_create,
        logical_id(template, "AWS::Logs::LogGroup", "AirflowFlowLogs"): on_create,
        logical_id(template, "AWS::S3::Bucket", "StorageAccessLogs"): ("Retain", "Retain"),
    }
    (key,) = resources(template, "AWS::KMS::Key").values()
    assert deletion(key) == ("Delete", "Delete"), "it encrypts only the topics and queues, deleted too"


def test_the_mwaa_bucket_is_emptied_of_every_version_before_it_is_deleted(template):
    """BucketDeployment keeps what it uploaded when it is deleted (``retain_on_delete`` defaults to true), and
    the bucket is versioned (MWAA requires it). CDK's auto-delete custom resource, deleted before the bucket it
    depends on, deletes every object version and delete marker of a bucket tagged for it; each deploy uploads
    dags/, plugins.zip and requirements.txt again, so nothing is lost."""
    every = template.to_json()["Resources"]
    mwaa = logical_id(template, "AWS::S3::Bucket", "StorageMwaa")
    bucket = every[mwaa]
    assert deletion(bucket) == ("Delete", "Delete")
    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert {"Key": "aws-cdk:auto-delete-objects", "Value": "true"} in bucket["Properties"]["Tags"]
    (emptier,) = [r for r in every.values() if r["Type"] == "Custom::S3AutoDeleteObjects"]
    assert emptier["Properties"]["BucketName"] == {"Ref": mwaa}
    policy = logical_id(template, "AWS::S3::BucketPolicy", "StorageMwaaPolicy")
    assert emptier["DependsOn"] == [policy], "deleted before the policy that lets it empty the bucket"
    handler = emptier["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    role = every[handler]["Properties"]["Role"]["Fn::GetAtt"][0]
    (grant,) = [
        s
        for s in every[policy]["Properties"]["PolicyDocument"]["Statement"]
        if s["Principal"] == {"AWS": {"Fn::GetAtt": [role, "Arn"]}}
    ]
    assert {"s3:List*", "s3:DeleteObject*"} <= set(grant["Action"])
    deployments = [r["Properties"] for r in every.values() if r["Type"] == "Custom::CDKBucketDeployment"]
    assert len(deployments) == 2, "dags/; plugins.zip and requirements.txt"
    for deployment in deployments:
        assert deployment["DestinationBucketName"] == {"Ref": mwaa}, "the deploy writes into no other bucket"
        assert deployment.get("RetainOnDelete", "true") == "true", "its files stay when it is deleted"


def test_the_input_bucket_is_required(tmp_path):
    """No default bucket: a made-up name would grant read access to a bucket someone else may own."""
    result = cdk_synth(tmp_path, {"modelImageUri": IMAGE})
    assert result.returncode != 0 and "inputBucketName is required" in result.stderr, result.stderr[-2000:]
    assert not list(tmp_path.glob("*.template.json"))
    assert "inputBucketName" not in CDK_CONTEXT, "cdk.json names no bucket"
    with pytest.raises(SettingError, match="inputBucketName 's3://team-audio/' is not an S3 bucket name"):
        InfraSettings.from_context(cdk.App(context={"inputBucketName": "s3://team-audio/"}))


def test_the_variant_and_its_scaling_are_named_for_the_instance_type(template, customised):
    """Changing instanceType makes a new variant, and CloudFormation registers scaling on it anew."""
    for instance_type, synthesised in (("ml.g4dn.xlarge", template), ("ml.g5.xlarge", customised[0])):
        variant = instance_type.replace(".", "-")
        (config,) = resources(synthesised, "AWS::SageMaker::EndpointConfig").values()
        assert [v["VariantName"] for v in config["Properties"]["ProductionVariants"]] == [variant]
        (target,) = resources(synthesised, "AWS::ApplicationAutoScaling::ScalableTarget").values()
        assert joined(target["Properties"]["ResourceId"]).endswith(f"/variant/{variant}")
        # and the runs price the instance type they run on (the cost estimate)
        assert pipeline_settings(synthesised)["endpoint_instance_type"] == instance_type


def test_the_old_variants_scaling_is_released_before_the_endpoint_changes(template, customised):
    """SageMaker refuses an update that removes a variant registered with autoscaling: before the endpoint's
    update, the variant last recorded (on create: the legacy AllTraffic) is deregistered."""
    for instance_type, synthesised in (("ml.g4dn.xlarge", template), ("ml.g5.xlarge", customised[0])):
        every = synthesised.to_json()["Resources"]
        (name,) = [n for n, r in every.items() if r["Type"] == "Custom::AWS" and n.startswith("InferenceReleaseOld")]
        create, update = (json.loads(every[name]["Properties"][key]) for key in ("Create", "Update"))
        target = f"endpoint/{CONFIG.endpoint_name}/variant/"
        dimensions = {"ServiceNamespace": "sagemaker", "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
        for call in (create, update):
            assert (call["service"], call["action"]) == ("ApplicationAutoScaling", "deregisterScalableTarget")
            assert call["physicalResourceId"] == {"id": target + instance_type.replace(".", "-")}, (
                "what the next update releases"
            )
            assert call["ignoreErrorCodesMatching"] == "ObjectNotFoundException"
        assert create["parameters"] == {**dimensions, "ResourceId": target + "AllTraffic"}
        assert update["parameters"] == {**dimensions, "ResourceId": "PHYSICAL:RESOURCEID:"}, "the previous variant"
        (endpoint,) = [n for n, r in every.items() if r["Type"] == "AWS::SageMaker::Endpoint"]
        assert name in every[endpoint]["DependsOn"]


def test_scaling_from_zero_on_the_backlog(template):
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": 0, "MaxCapacity": 3, "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"},
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "CustomizedMetricSpecification": Match.object_like(
                        {"MetricName": "ApproximateBacklogSizePerInstance", "Namespace": "AWS/SageMaker"}
                    ),
                    "TargetValue": CONCURRENT_INVOCATIONS_PER_INSTANCE,
                }
            ),
        },
    )
    step = logical_id(template, "AWS::ApplicationAutoScaling::ScalingPolicy", "InferenceScalingFromZero")
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": Match.object_like(
                {
                    "AdjustmentType": "ChangeInCapacity",
                    "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
                }
            ),
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "HasBacklogWithoutCapacity",
            "Namespace": "AWS/SageMaker",
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 0.5,
            "AlarmActions": [{"Ref": step}],
        },
    )


def test_parameters_come_from_the_cdk_context():
    context = {"inputBucketName": "team-audio", "parakeetModel": "nvidia/parakeet-tdt-1.1b", "maxInstances": "5"}
    settings = InfraSettings.from_context(cdk.App(context={**context, "existingEndpointName": ""}))
    assert (settings.parakeet_model, settings.max_instances) == ("nvidia/parakeet-tdt-1.1b", 5), "-c gives strings"
    assert settings.existing_endpoint_name is None and settings.instance_type == "ml.g4dn.xlarge"


def test_inference_parameters(customised):
    template, _ = customised
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig", {"ProductionVariants": [Match.object_like({"InstanceType": "ml.g5.xlarge"})]}
    )
    template.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {"MaxCapacity": 5})
    (model,) = resources(template, "AWS::SageMaker::Model").values()
    container = model["Properties"]["PrimaryContainer"]
    assert container["ModelDataUrl"] == "s3://team-models/parakeet/model.tar.gz"
    assert container["Environment"] == {"MODEL_BACKEND": "parakeet"}, "the checkpoint comes from /opt/ml/model"
    assert "container-assets" in json.dumps(container["Image"]), "built from infra/container/Dockerfile"
    statements = role_statements(template, "InferenceRole")
    assert actions_on(statements, ":s3:::team-models/parakeet/model.tar.gz") == {"s3:GetObject"}
    assert actions_on(statements, "container-assets") >= {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}


def test_the_endpoint_writes_only_its_results_and_reads_only_the_copies_it_is_sent(template):
    output = logical_id(template, "AWS::S3::Bucket", "StorageOutput")
    on_output = [s for s in role_statements(template, "InferenceRole") if output in json.dumps(s["Resource"])]
    writes = [s for s in on_output if any(a.startswith("s3:PutObject") for a in as_list(s["Action"]))]
    reads = [s for s in on_output if s not in writes]
    assert {s["Resource"]["Fn::Join"][1][-1] for s in writes} == {
        f"/{CONFIG.transcripts_prefix}*",
        f"/{CONFIG.failures_prefix}*",
    }
    assert all(a.startswith(("s3:PutObject", "s3:Abort")) for s in writes for a in as_list(s["Action"]))
    objects = {json.dumps(r) for s in reads for r in as_list(s["Resource"]) if "/" in json.dumps(r)}
    assert len(objects) == 1 and f"/{CONFIG.inputs_prefix}*" in objects.pop(), "the pinned copies alone"
    assert all(a.startswith(("s3:GetObject", "s3:GetBucket", "s3:List")) for s in reads for a in as_list(s["Action"]))


def test_the_copies_sent_to_the_endpoint_expire(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": [
                    {
                        "Id": "ExpireSentCopies",
                        "Prefix": CONFIG.inputs_prefix,
                        "ExpirationInDays": 2,
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                        "Status": "Enabled",
                    }
                ]
            }
        },
    )


def test_mwaa_environment_in_its_vpc(template):
    requirements = (REPO / "requirements.txt").read_text()
    assert f"constraints-{AIRFLOW_VERSION}/" in requirements
    security_group = logical_id(template, "AWS::EC2::SecurityGroup", "AirflowSecurityGroup")
    private = [name for name in resources(template, "AWS::EC2::Subnet") if "private" in name]
    template.has_resource_properties(
        "AWS::MWAA::Environment",
        {
            "AirflowVersion": AIRFLOW_VERSION,
            "DagS3Path": "dags",
            "PluginsS3Path": "plugins.zip",
            "RequirementsS3Path": "requirements.txt",
            "SourceBucketArn": {"Fn::GetAtt": [logical_id(template, "AWS::S3::Bucket", "StorageMwaa"), "Arn"]},
            "NetworkConfiguration": {
                "SecurityGroupIds": [{"Fn::GetAtt": [security_group, "GroupId"]}],
                "SubnetIds": [{"Ref": name} for name in private],
            },
        },
    )
    assert len(private) == 2, "MWAA needs two private subnets in two AZs"
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": {"Fn::GetAtt": [security_group, "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [security_group, "GroupId"]},
            "IpProtocol": "-1",
        },
    )


def test_mwaa_installs_each_new_plugins_zip_and_requirements_txt(deployed, tmp_path):
    """MWAA installs a new plugins.zip or requirements.txt only when the environment names its new S3 version."""
    template, _ = deployed
    build_plugins_zip(tmp_path / "plugins.zip")
    contents = {
        "Plugins": (tmp_path / "plugins.zip").read_bytes(),
        "Requirements": (REPO / "requirements.txt").read_bytes(),
    }
    (environment,) = resources(template, "AWS::MWAA::Environment").values()
    for name, content in contents.items():
        version = environment["Properties"][f"{name}S3ObjectVersion"]["Fn::GetAtt"]
        assert version[1] == "VersionId"
        lookup = json.dumps(template.to_json()["Resources"][version[0]]["Properties"]["Update"])
        assert "headObject" in lookup and hashlib.sha256(content).hexdigest() in lookup, "re-read on every change"


def pipeline_settings(template) -> dict:
    """The one SSM parameter behind the Variable audio_pipeline_config, its references as {"Ref": id}."""
    (parameter,) = resources(template, "AWS::SSM::Parameter").values()
    assert parameter["Properties"]["Name"] == f"{VARIABLES_PREFIX}/{CONFIG_VARIABLE}"
    value = parameter["Properties"]["Value"]
    parts = value["Fn::Join"][1] if isinstance(value, dict) else [value]
    text = "".join(p if isinstance(p, str) else f"<Ref:{p['Ref']}>" for p in parts)
    PipelineConfig.from_json(text)  # the DAG's own parser accepts it
    return {
        name: {"Ref": v[5:-1]} if isinstance(v, str) and v.startswith("<Ref:") else v
        for name, v in json.loads(text).items()
    }


def test_the_dags_settings_are_one_variable_behind_the_secrets_backend(template):
    """One GetParameter per run: every setting in the JSON Variable the DAG's first task reads."""
    (environment,) = resources(template, "AWS::MWAA::Environment").values()
    options = environment["Properties"]["AirflowConfigurationOptions"]
    assert options["secrets.backend"] == SECRETS_BACKEND
    assert json.loads(options["secrets.backend_kwargs"])["variables_prefix"] == VARIABLES_PREFIX
    values = pipeline_settings(template)
    assert set(values) == {f.name for f in PipelineConfig.fields()}
    expected = {
        "endpoint_name": CONFIG.endpoint_name,
        "status_table": ref(template, "AWS::DynamoDB::Table", "Status"),
        "notification_queue": ref(template, "AWS::SQS::Queue", "NotificationsQueue"),
        "output_bucket": ref(template, "AWS::S3::Bucket", "StorageOutput"),
        "transcripts_prefix": CONFIG.transcripts_prefix,
        "failures_prefix": CONFIG.failures_prefix,
        "bedrock_model_id": PROFILE,
        "endpoint_instance_type": "ml.g4dn.xlarge",  # the cost estimate's price per hour
        "schedule_bucket_uri": "",  # the first deploy processes nothing until a prefix is named
        "operations_topic_arn": ref(template, "AWS::SNS::Topic", "MonitoringTopic"),
        "max_batches": CONFIG.max_batches,
    }
    assert {name: values[name] for name in expected} == expected
    ssm = actions_on(role_statements(template, "AirflowExecutionRole"), f":parameter{VARIABLES_PREFIX}/*")
    assert "ssm:GetParameter" in ssm


def test_the_secrets_backend_looks_up_only_what_ssm_holds_and_caches(template):
    """Without lookup patterns every Variable and every hook's aws_default is a GetParameter (SSM's default
    throughput is about 40 per second); only the pipeline's Variables and other connections go there."""
    (environment,) = resources(template, "AWS::MWAA::Environment").values()
    options = environment["Properties"]["AirflowConfigurationOptions"]
    assert {k: v for k, v in options.items() if k.startswith("secrets.")} == secrets_backend_options()
    kwargs = json.loads(options["secrets.backend_kwargs"])
    variables, connections = kwargs["variables_lookup_pattern"], kwargs["connections_lookup_pattern"]
    assert re.match(variables, CONFIG_VARIABLE) and not re.match(variables, "some_other_dags_variable")
    assert not re.match(connections, "aws_default") and re.match(connections, "aws_other_account")
    assert options["secrets.use_cache"] == "True"


def test_outputs_name_what_a_user_needs(template):
    outputs = template.to_json()["Outputs"]
    environment = logical_id(template, "AWS::MWAA::Environment", "Airflow")
    assert {name: o["Value"] for name, o in outputs.items()} == {
        "StatusTable": ref(template, "AWS::DynamoDB::Table", "Status"),
        "NotificationQueueUrl": ref(template, "AWS::SQS::Queue", "NotificationsQueue"),
        "SuccessTopicArn": ref(template, "AWS::SNS::Topic", "NotificationsSuccess"),
        "ErrorTopicArn": ref(template, "AWS::SNS::Topic", "NotificationsError"),
        "EndpointName": CONFIG.endpoint_name,
        "OutputBucket": ref(template, "AWS::S3::Bucket", "StorageOutput"),
        "MwaaBucket": ref(template, "AWS::S3::Bucket", "StorageMwaa"),
        "AirflowUiUrl": {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [environment, "WebserverUrl"]}]]},
        "TriggerPolicyArn": ref(template, "AWS::IAM::ManagedPolicy", "AirflowTriggerPolicy"),
        "OperationsTopicArn": ref(template, "AWS::SNS::Topic", "MonitoringTopic"),
        "DashboardName": ref(template, "AWS::CloudWatch::Dashboard", "MonitoringDashboard"),
    }


def test_no_statement_grants_every_action_on_every_resource(template):
    for kind, document in policy_documents(template):
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            assert "NotAction" not in statement, statement
            actions = as_list(statement["Action"])
            assert "*" not in actions or "*" not in as_list(statement.get("Resource")), statement
            if kind.startswith("AWS::IAM::"):  # no role may have all of a service either
                assert not any(a == "*" or a.endswith(":*") for a in actions), statement


def test_execution_role_calls_only_what_the_dag_calls(template):
    statements = role_statements(template, "AirflowExecutionRole")
    table = logical_id(template, "AWS::DynamoDB::Table", "Status")
    assert actions_on(statements, table) == {
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    queue = logical_id(template, "AWS::SQS::Queue", "NotificationsQueue")
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl"} <= actions_on(statements, queue)
    assert "sqs:SendMessage" not in actions_on(statements, queue)
    assert actions_on(statements, ":endpoint/audio-transcription-async") == {
        "sagemaker:InvokeEndpointAsync",
        "sagemaker:DescribeEndpoint",
    }
    assert actions_on(statements, ":endpoint-config/") == {"sagemaker:DescribeEndpointConfig"}
    output = logical_id(template, "AWS::S3::Bucket", "StorageOutput")
    assert not [a for a in actions_on(statements, output) if "Delete" in a], "nothing in the output bucket is deleted"


def joined(value):
    """An ARN built with Fn::Join, with its references written as <Ref> / <LogicalId.Attr>."""

    def part(p):
        if isinstance(p, str):
            return p
        if "Ref" in p:
            return f"<{p['Ref']}>"
        return "<" + ".".join(p["Fn::GetAtt"]) + ">"

    return "".join(part(p) for p in value["Fn::Join"][1]) if isinstance(value, dict) else value


def test_the_dag_writes_only_its_manifests_the_copies_it_sends_and_summaries(template):
    output = logical_id(template, "AWS::S3::Bucket", "StorageOutput")
    writes = {
        joined(resource)
        for statement in role_statements(template, "AirflowExecutionRole")
        if any(a.startswith("s3:Put") for a in as_list(statement["Action"]))
        for resource in as_list(statement["Resource"])
        if output in json.dumps(resource)
    }
    assert writes == {
        f"<{output}.Arn>/{CONFIG.runs_prefix}*",
        f"<{output}.Arn>/{CONFIG.inputs_prefix}*",
        f"<{output}.Arn>/*.summary.json",
    }
    assert summary_location(f"s3://b/{CONFIG.transcripts_prefix}x.out").endswith("/x.summary.json"), (
        "the DAG's own name"
    )


def test_new_dags_start_unpaused(template):
    """MWAA pauses new DAGs by default: the nightly schedule would never fire and a triggered run would wait."""
    (environment,) = resources(template, "AWS::MWAA::Environment").values()
    assert environment["Properties"]["AirflowConfigurationOptions"]["core.dags_are_paused_at_creation"] == "False"


def test_a_trigger_policy_for_people_to_attach(template):
    """``aws mwaa invoke-rest-api`` needs airflow:InvokeRestApi on an Airflow role of this environment (the UI
    airflow:CreateWebLoginToken); Airflow's User role may trigger, watch and unpause DAGs."""
    (name,) = resources(template, "AWS::IAM::ManagedPolicy")
    policy = template.to_json()["Resources"][name]["Properties"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["airflow:InvokeRestApi", "airflow:CreateWebLoginToken"]
    assert joined(statement["Resource"]) == (
        "arn:<AWS::Partition>:airflow:<AWS::Region>:<AWS::AccountId>:role/audio-transcription/User"
    )
    assert not {"Roles", "Users", "Groups"} & set(policy), "attached by the user to whoever triggers runs"


def test_sagemaker_may_use_the_notification_key_for_this_account_only(template):
    (key,) = resources(template, "AWS::KMS::Key").values()
    (statement,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    ]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_bedrock_resources_for_models_and_inference_profiles():
    assert bedrock_resources("aws", "eu-west-1", "111122223333", "anthropic.claude-3-haiku-20240307-v1:0") == [
        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"
    ]
    for profile in ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "global.anthropic.claude-haiku-4-5-20251001-v1:0"):
        assert bedrock_resources("aws", "us-east-1", "111122223333", profile) == [
            f"arn:aws:bedrock:us-east-1:111122223333:inference-profile/{profile}",
            # the profile routes to its regions; a global one also to the region-less model ARN
            "arn:aws:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
        ]


def bedrock_grants(template):
    statements = role_statements(template, "AirflowExecutionRole")
    (grant,) = [s for s in statements if any(a.startswith("bedrock:") for a in as_list(s["Action"]))]
    return grant["Action"], [
        "".join(p if isinstance(p, str) else "<" + p["Ref"] + ">" for p in r["Fn::Join"][1])
        for r in as_list(grant["Resource"])
    ]


def test_bedrock_access_is_the_configured_model_only(template, customised):
    assert bedrock_grants(template) == (
        "bedrock:InvokeModel",  # which authorises Converse too
        [
            f"arn:<AWS::Partition>:bedrock:<AWS::Region>:<AWS::AccountId>:inference-profile/{PROFILE}",
            f"arn:<AWS::Partition>:bedrock:*::foundation-model/{PROFILE.partition('.')[2]}",
        ],
    )
    assert bedrock_grants(customised[0]) == (
        "bedrock:InvokeModel",
        [f"arn:<AWS::Partition>:bedrock:<AWS::Region>::foundation-model/{FOUNDATION_MODEL}"],
    )


def test_existing_endpoint_skips_inference_and_is_granted(existing_endpoint):
    for kind in (
        "AWS::SageMaker::Model",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Endpoint",
        "AWS::ApplicationAutoScaling::ScalableTarget",
    ):
        assert existing_endpoint.find_resources(kind) == {}, kind
    statements = role_statements(existing_endpoint, "AirflowExecutionRole")
    assert actions_on(statements, ":endpoint/parakeet-async-endpoint") == {
        "sagemaker:InvokeEndpointAsync",
        "sagemaker:DescribeEndpoint",
    }
    assert pipeline_settings(existing_endpoint)["endpoint_name"] == "parakeet-async-endpoint"
    assert existing_endpoint.to_json()["Outputs"]["EndpointName"]["Value"] == "parakeet-async-endpoint"


def test_cdk_nag_findings_are_all_acknowledged_with_reasons_and_all_used(deployed):
    _, path = deployed
    report = json.loads((path.parent / "validation-report.json").read_text())
    (nag,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert nag["conclusion"] == "success" and nag["violations"] == []
    used = {v["acknowledgedId"] for v in nag["suppressedViolations"]}
    assert all(v["reason"].strip() for v in nag["suppressedViolations"])
    metadata = json.loads((path.parent / f"{STACK}.metadata.json").read_text())
    acknowledged = {
        rule
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule in entry["data"]
        if "AwsSolutions" in rule
    }
    # an acknowledgment nothing needs would hide a future finding; acknowledge as 'AwsSolutions::<rule>'
    # so that the report records each use ('AwsSolutions-<rule>' ones are consumed inside cdk-nag)
    assert acknowledged == used


def test_cdk_nag_fails_the_synth_on_an_unacknowledged_finding(tmp_path):
    app = cdk.App(
        context={**CDK_CONTEXT, "inputBucketName": "team-audio", "modelImageUri": IMAGE}, outdir=str(tmp_path)
    )
    sqs.Queue(build(app), "WithoutDeadLettersOrTls")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert any("AwsSolutions-SQS" in v["ruleName"] for p in report["pluginReports"] for v in p["violations"])


@pytest.mark.parametrize("variant", ["deployed", "customised"])
def test_cfn_lint_passes(variant, request):
    _, path = request.getfixturevalue(variant)
    findings = lint_file(path)
    assert findings == [], [f"{m.rule.id} {m.message} {m.path}" for m in findings]
