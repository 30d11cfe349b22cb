"""The whole AWS side of the pipeline, and its MWAA environment, in one stack."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, CfnResource, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from audio_pipeline.config import PipelineConfig, StackNames
from audio_pipeline.summaries import summary_location
from infra.settings import InfraSettings
from infra.stacks.inference import AsyncEndpoint, variant_name
from infra.stacks.monitoring import Monitoring
from infra.stacks.mwaa import PROFILE_PREFIXES, Mwaa, bedrock_resources
from infra.stacks.notifications import Notifications
from infra.stacks.status_table import StatusTable
from infra.stacks.storage import Storage

SUMMARY_SUFFIX = summary_location("x.out").removeprefix("x")
"""``.summary.json``: the DAG writes each summary next to its transcript, named by this function."""
BUCKET_GRANT = "CDK's bucket grants: object-level actions on the objects of this stack's own buckets"


def nag_findings(
    stack: Stack, *, table, buckets, input_bucket: str, output, output_prefixes, dag_writes
) -> dict[str, str]:
    """Every wildcard cdk-nag reports, each acknowledged with the reason it is needed."""
    arn = lambda construct: f"<{stack.get_logical_id(construct.node.default_child)}.Arn>"  # noqa: E731
    findings = {
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": "CDK's Lambdas (BucketDeployment uploads dags/, plugins.zip and requirements.txt; AwsCustomResource reads their S3 versions) log with the AWS basic execution role.",
        "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "CDK's KMS grants for the encrypted topics and queues.",
        "AwsSolutions-IAM5[Resource::*]": "Actions AWS offers only on '*': ecr:GetAuthorizationToken, "
        "logs:DescribeLogGroups, cloudwatch:PutMetricData (namespace-conditioned), s3:GetAccountPublicAccessBlock, "
        "application-autoscaling:DeregisterScalableTarget.",
        f"AwsSolutions-IAM5[Resource::{arn(table)}/index/*]": "The DAG queries the table's run_id-index and awaiting_summary-index.",
        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{input_bucket}/*]": "Read-only access to the audio objects of the user's input bucket.",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
        "/aws/sagemaker/*]": "The endpoint's container logs.",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
        "airflow-audio-transcription-*]": "The MWAA environment's own log groups.",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-"
        "<AWS::Region>/*]": "BucketDeployment reads its source assets from the CDK bootstrap bucket.",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:*:airflow-celery-*]": "MWAA's Celery queues, named by the service (AWS's documented execution-role policy).",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/airflow/"
        "variables/*]": "The secrets backend reads the pipeline's Airflow Variables.",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:"
        "endpoint-config/*]": "DescribeEndpointConfig (read-only) of the endpoint's config, whose name an "
        "existing endpoint does not give the stack.",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/airflow/"
        "connections/*]": "The secrets backend looks connections up under their prefix.",
    }
    findings["AwsSolutions-L1"] = "The runtime of CDK's own Lambdas is chosen by aws-cdk-lib, not by us."
    for action in ("s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*"):
        findings[f"AwsSolutions-IAM5[Action::{action}]"] = BUCKET_GRANT
    for bucket in buckets:
        findings[f"AwsSolutions-IAM5[Resource::{arn(bucket)}/*]"] = BUCKET_GRANT
    for prefix in output_prefixes:
        findings[f"AwsSolutions-IAM5[Resource::{arn(output)}/{prefix}*]"] = (
            "The endpoint writes results and failures under its output and failure paths."
        )
    for pattern in dag_writes:
        findings[f"AwsSolutions-IAM5[Resource::{arn(output)}/{pattern}]"] = (
            "The DAG writes batch and run manifests under runs/, the copies it sends under inputs/ (the endpoint "
            "reads them) and each summary next to its transcript."
        )
    return findings


def dag_writes(config: PipelineConfig) -> list[str]:
    """The output-bucket objects the DAG writes: its manifests, the copies it sends, and the summaries."""
    return [f"{config.runs_prefix}*", f"{config.inputs_prefix}*", f"*{SUMMARY_SUFFIX}"]


class AudioPipelineStack(Stack):
    def __init__(self, scope: Construct, id: str, *, settings: InfraSettings, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        config, names = PipelineConfig(), StackNames()
        input_bucket = s3.Bucket.from_bucket_name(self, "Input", settings.input_bucket_name)
        storage = Storage(self, "Storage", inputs_prefix=config.inputs_prefix)
        table = StatusTable(self, "Status", table_name=config.status_table).table
        notifications = Notifications(self, "Notifications", config=config, names=names)

        if settings.existing_endpoint_name:
            endpoint_name = settings.existing_endpoint_name
        else:
            AsyncEndpoint(
                self,
                "Inference",
                settings=settings,
                config=config,
                names=names,
                output_bucket=storage.output,
                input_bucket=input_bucket,
                notifications=notifications,
            )
            endpoint_name = config.endpoint_name
        monitoring = Monitoring(
            self,
            "Monitoring",
            topic_name=names.operations_topic,
            key=notifications.key,
            dead_letter_queue=notifications.dead_letter_queue,
            endpoint_name=endpoint_name,
            variant_name=None if settings.existing_endpoint_name else variant_name(settings.instance_type),
            max_receive_count=names.max_receive_count,
            email=settings.alarm_email,
        )

        pipeline_settings = config.to_dict()
        pipeline_settings.update(
            endpoint_name=endpoint_name,
            status_table=table.table_name,
            notification_queue=notifications.queue.queue_url,
            output_bucket=storage.output.bucket_name,
            bedrock_model_id=settings.bedrock_model_id,
            endpoint_instance_type=settings.instance_type,  # the cost estimate's price
            # nothing until asked: the nightly run is skipped, saying why, until a prefix is named
            schedule_bucket_uri=settings.schedule_bucket_uri or "",
            operations_topic_arn=monitoring.topic.topic_arn,  # the DAG's failure notifier
        )
        airflow = Mwaa(
            self, "Airflow", settings=settings, pipeline_settings=pipeline_settings, source_bucket=storage.mwaa
        )
        self._grant_pipeline(airflow.role, settings, config, input_bucket, storage, table, notifications, endpoint_name)
        monitoring.topic.grant_publish(airflow.role)  # the failure notifier, with the topic's key
        self._acknowledge(table, storage, settings, config)
        for function in self.node.find_all():
            # CDK's own: BucketDeployment's and AwsCustomResource's (CfnFunction), the MWAA bucket's
            # auto-delete provider (a plain CfnResource)
            if isinstance(function, CfnResource) and function.cfn_resource_type == "AWS::Lambda::Function":
                function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})  # DependsOn its role

        for name, value in {
            "StatusTable": table.table_name,
            "NotificationQueueUrl": notifications.queue.queue_url,
            "SuccessTopicArn": notifications.success_topic.topic_arn,
            "ErrorTopicArn": notifications.error_topic.topic_arn,
            "EndpointName": endpoint_name,
            "OutputBucket": storage.output.bucket_name,
            "MwaaBucket": storage.mwaa.bucket_name,
            "AirflowUiUrl": f"https://{airflow.environment.attr_webserver_url}",
            "TriggerPolicyArn": airflow.trigger_policy.managed_policy_arn,
            "OperationsTopicArn": monitoring.topic.topic_arn,
            "DashboardName": monitoring.dashboard.dashboard_name,
        }.items():
            CfnOutput(self, name, value=value)

    def _grant_pipeline(
        self, role, settings, config, input_bucket, storage, table, notifications, endpoint_name
    ) -> None:
        """Exactly what the DAG's tasks call, on exactly these resources."""
        input_bucket.grant_read(role)
        storage.output.grant_read(role)  # transcripts, failures (and ListBucket, so a missing one is a 404)
        # batch and run manifests under runs/, summaries next to their transcripts; nothing else, nothing deleted
        for pattern in dag_writes(config):
            storage.output.grant_put(role, pattern)
        # BatchGetItem and Query (the run index) read; a one-item Scan asks whether the table is empty
        # (resolve_run: a table emptied behind a run history); TransactWriteItems of Puts and Updates writes
        table.grant(
            role, "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:PutItem", "dynamodb:UpdateItem"
        )
        notifications.queue.grant_consume_messages(role)  # GetQueueUrl, ReceiveMessage, DeleteMessage(Batch)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpointAsync", "sagemaker:DescribeEndpoint"],
                resources=[
                    f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:endpoint/{endpoint_name.lower()}"
                ],
            )
        )
        role.add_to_policy(  # resolve_run reads where the endpoint writes its results (an existing one's too)
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig"],
                resources=[f"arn:{self.partition}:sagemaker:{self.region}:{self.account}:endpoint-config/*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=bedrock_resources(self.partition, self.region, self.account, settings.bedrock_model_id),
            )
        )

    def _acknowledge(self, table, storage: Storage, settings: InfraSettings, config: PipelineConfig) -> None:
        findings = nag_findings(
            self,
            table=table,
            buckets=[storage.output, storage.mwaa],
            input_bucket=settings.input_bucket_name,
            output=storage.output,
            output_prefixes=[config.transcripts_prefix, config.failures_prefix],
            dag_writes=dag_writes(config),
        )
        if not settings.existing_endpoint_name:
            alarms = f"alarm:TargetTracking-endpoint/{config.endpoint_name}/*"
            findings[
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:{alarms}]"
            ] = (
                "The target-tracking alarms of the endpoint's variants, deleted with the old variant's scaling "
                "when the instance type changes."
            )
        prefix, _, base = settings.bedrock_model_id.partition(".")
        if prefix in PROFILE_PREFIXES:
            findings[f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/{base}]"] = (
                "A cross-region inference profile routes to the model in any of its regions."
            )
        for rule, reason in findings.items():
            Validations.of(self).acknowledge(Acknowledgment(id=f"AwsSolutions::{rule}", reason=reason))
