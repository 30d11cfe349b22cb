"""The MWAA environment: network, least-privilege execution role, Variables, deployed code."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_mwaa as mwaa
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as deployment
from aws_cdk import aws_ssm as ssm
from aws_cdk import custom_resources as cr
from constructs import Construct

from audio_pipeline.config import CONFIG_VARIABLE, CONNECTIONS_PREFIX, VARIABLES_PREFIX, secrets_backend_options
from infra.plugins_zip import build as build_plugins_zip
from infra.settings import AIRFLOW_VERSION, InfraSettings

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENT_NAME = "audio-transcription"
PROFILE_PREFIXES = ("us", "eu", "apac", "us-gov", "jp", "au", "global")
"""Model ids with these prefixes are cross-region inference profiles."""


def bedrock_resources(partition: str, region: str, account: str, model_id: str) -> list[str]:
    """The ARNs ``bedrock:InvokeModel`` needs for a model id or a cross-region inference profile id."""
    prefix, _, base = model_id.partition(".")
    if prefix in PROFILE_PREFIXES:
        return [
            f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}",
            f"arn:{partition}:bedrock:*::foundation-model/{base}",  # the profile routes to any of its regions
        ]
    return [f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"]


class Mwaa(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: InfraSettings,
        pipeline_settings: dict[str, Any],
        source_bucket: s3.Bucket,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
            ],
            flow_logs={
                "all": ec2.FlowLogOptions(
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                        logs.LogGroup(
                            self,
                            "FlowLogs",
                            retention=logs.RetentionDays.TWO_YEARS,
                            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
                        )
                    ),
                )
            },
        )
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=self.vpc, description="MWAA workers, schedulers and web server"
        )
        self.security_group.add_ingress_rule(self.security_group, ec2.Port.all_traffic(), "MWAA components")
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.CompositePrincipal(
                iam.ServicePrincipal("airflow.amazonaws.com"), iam.ServicePrincipal("airflow-env.amazonaws.com")
            ),
            description="MWAA execution role of the audio transcription pipeline",
        )
        self._grant_mwaa_basics(stack, source_bucket)
        self._pipeline_settings(pipeline_settings)
        versions = self._deploy_code(source_bucket)
        self.environment = mwaa.CfnEnvironment(
            self,
            "Environment",
            name=ENVIRONMENT_NAME,
            airflow_version=AIRFLOW_VERSION,
            environment_class=settings.environment_class,
            execution_role_arn=self.role.role_arn,
            source_bucket_arn=source_bucket.bucket_arn,
            dag_s3_path="dags",
            plugins_s3_path="plugins.zip",
            plugins_s3_object_version=versions["plugins.zip"],
            requirements_s3_path="requirements.txt",
            requirements_s3_object_version=versions["requirements.txt"],
            webserver_access_mode=settings.webserver_access_mode,
            network_configuration=mwaa.CfnEnvironment.NetworkConfigurationProperty(
                security_group_ids=[self.security_group.security_group_id],
                subnet_ids=[s.subnet_id for s in self.vpc.private_subnets[:2]],
            ),
            logging_configuration=mwaa.CfnEnvironment.LoggingConfigurationProperty(
                **{
                    name: mwaa.CfnEnvironment.ModuleLoggingConfigurationProperty(enabled=True, log_level="INFO")
                    for name in ("dag_processing_logs", "scheduler_logs", "task_logs", "webserver_logs", "worker_logs")
                }
            ),
            airflow_configuration_options={
                # the SSM backend with the pipeline's lookup patterns and the secrets cache
                **secrets_backend_options(),
                # the environment runs this pipeline alone: its DAG starts unpaused, so the nightly
                # schedule fires and a triggered run starts (a paused DAG's run waits, queued, forever)
                "core.dags_are_paused_at_creation": "False",
            },
        )
        self.environment.node.add_dependency(self.code)
        self.trigger_policy = self._trigger_policy(stack)
        self.environment.node.add_dependency(self.role.node.find_child("DefaultPolicy"))

    def _trigger_policy(self, stack: Stack) -> iam.ManagedPolicy:
        """What a person (or CI) needs to trigger, watch and unpause the DAG with ``aws mwaa invoke-rest-api``
        and to open the Airflow UI: Airflow's ``User`` role in this environment. Attached to no one: attach
        it to your user or role."""
        return iam.ManagedPolicy(
            self,
            "TriggerPolicy",
            description=f"Trigger and watch the audio pipeline: aws mwaa invoke-rest-api --name {ENVIRONMENT_NAME}",
            statements=[
                iam.PolicyStatement(
                    actions=["airflow:InvokeRestApi", "airflow:CreateWebLoginToken"],
                    resources=[
                        f"arn:{stack.partition}:airflow:{stack.region}:{stack.account}:role/{ENVIRONMENT_NAME}/User"
                    ],
                )
            ],
        )

    def _grant_mwaa_basics(self, stack: Stack, source_bucket: s3.Bucket) -> None:
        """What MWAA itself needs (AWS's documented execution-role policy, scoped to this environment)."""
        arn = f"arn:{stack.partition}"
        source_bucket.grant_read(self.role)
        statements = [
            iam.PolicyStatement(
                actions=["airflow:PublishMetrics"],
                resources=[f"{arn}:airflow:{stack.region}:{stack.account}:environment/{ENVIRONMENT_NAME}"],
            ),
            iam.PolicyStatement(actions=["s3:GetAccountPublicAccessBlock"], resources=["*"]),
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogStream",
                    "logs:CreateLogGroup",
                    "logs:PutLogEvents",
                    "logs:GetLogEvents",
                    "logs:GetLogRecord",
                    "logs:GetLogGroupFields",
                    "logs:GetQueryResults",
                ],
                resources=[f"{arn}:logs:{stack.region}:{stack.account}:log-group:airflow-{ENVIRONMENT_NAME}-*"],
            ),
            iam.PolicyStatement(actions=["logs:DescribeLogGroups"], resources=["*"]),
            iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"]),
            iam.PolicyStatement(
                actions=[
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage",
                    "sqs:SendMessage",
                ],
                resources=[f"{arn}:sqs:{stack.region}:*:airflow-celery-*"],
            ),
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"],
                not_resources=[f"{arn}:kms:*:{stack.account}:key/*"],
                conditions={"StringLike": {"kms:ViaService": [f"sqs.{stack.region}.amazonaws.com"]}},
            ),
            iam.PolicyStatement(
                actions=["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                resources=[
                    f"{arn}:ssm:{stack.region}:{stack.account}:parameter{VARIABLES_PREFIX}/*",
                    f"{arn}:ssm:{stack.region}:{stack.account}:parameter{CONNECTIONS_PREFIX}/*",
                ],
            ),
        ]
        for statement in statements:
            self.role.add_to_policy(statement)

    def _pipeline_settings(self, values: dict[str, Any]) -> None:
        """The DAG's settings as the one Variable it reads per run: a JSON SSM parameter behind MWAA's
        secrets backend (values from the stack's own resources, resolved at deploy time)."""
        ssm.StringParameter(
            self,
            "PipelineConfig",
            parameter_name=f"{VARIABLES_PREFIX}/{CONFIG_VARIABLE}",
            string_value=Stack.of(self).to_json_string(values),
            description=f"Airflow Variable {CONFIG_VARIABLE}: the audio pipeline's settings",
        )

    def _deploy_code(self, source_bucket: s3.Bucket) -> dict[str, str]:
        """Upload dags/ with include/ in it (the prompt templates: ``dags/include/``), plugins.zip and
        requirements.txt; return the S3 versions of the last two."""
        staging = Path(tempfile.mkdtemp(prefix="plugins-zip-"))
        build_plugins_zip(staging / "plugins.zip")
        requirements = (REPO / "requirements.txt").read_text()
        include = Path(tempfile.mkdtemp(prefix="include-"))
        shutil.copytree(REPO / "include", include / "include")
        self.code = deployment.BucketDeployment(
            self,
            "Code",
            destination_bucket=source_bucket,
            sources=[
                deployment.Source.asset(str(REPO / "dags"), exclude=["__pycache__", "*.pyc"]),
                deployment.Source.asset(str(include)),
            ],
            destination_key_prefix="dags",
            prune=True,
        )
        upload = deployment.BucketDeployment(
            self,
            "PluginsAndRequirements",
            destination_bucket=source_bucket,
            sources=[deployment.Source.asset(str(staging)), deployment.Source.data("requirements.txt", requirements)],
            prune=False,
        )
        contents = {"plugins.zip": (staging / "plugins.zip").read_bytes(), "requirements.txt": requirements.encode()}
        return {key: self._object_version(source_bucket, key, content, upload) for key, content in contents.items()}

    def _object_version(self, bucket: s3.Bucket, key: str, content: bytes, upload: Construct) -> str:
        """The S3 version of ``key`` after ``upload``, read again whenever its content changes.

        MWAA installs a new plugins.zip or requirements.txt only when the environment names a
        new version of it; without one, a redeploy would leave the old code running.
        """
        call = cr.AwsSdkCall(
            service="S3",
            action="headObject",
            parameters={"Bucket": bucket.bucket_name, "Key": key},
            physical_resource_id=cr.PhysicalResourceId.of(hashlib.sha256(content).hexdigest()),
        )
        version = cr.AwsCustomResource(
            self,
            f"Version{key.title().replace('.', '')}",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(key)])]
            ),
            install_latest_aws_sdk=False,
        )
        version.node.add_dependency(upload)
        return version.get_response_field("VersionId")
