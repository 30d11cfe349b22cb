"""The SageMaker asynchronous endpoint: model, endpoint config, endpoint, scaling 0..N."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, IgnoreMode, Stack
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from audio_pipeline.config import PipelineConfig, StackNames
from infra.settings import InfraSettings
from infra.stacks.notifications import Notifications

REPO = Path(__file__).resolve().parents[2]


def variant_name(instance_type: str) -> str:
    """The production variant is named for its instance type (``ml.g4dn.xlarge`` -> ``ml-g4dn-xlarge``):
    a new instance type is a new variant, so its scalable target and policies are replaced (registered
    on the new variant) instead of left unchanged on a variant that no longer exists."""
    return instance_type.replace(".", "-")


STARTUP_TIMEOUT_SECONDS = 1800


class AsyncEndpoint(Construct):
    """The endpoint on our own container: model, config, endpoint, its role and its scaling."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: InfraSettings,
        config: PipelineConfig,
        names: StackNames,
        output_bucket: s3.IBucket,
        input_bucket: s3.IBucket,
        notifications: Notifications,
    ) -> None:
        super().__init__(scope, id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker async endpoint: reads audio, writes transcripts, publishes notifications",
        )
        input_bucket.grant_read(self.role)
        for prefix in (config.transcripts_prefix, config.failures_prefix):  # the endpoint only writes results
            output_bucket.grant_put(self.role, f"{prefix}*")
        notifications.success_topic.grant_publish(self.role)  # with the topics' KMS key
        notifications.error_topic.grant_publish(self.role)
        stack = Stack.of(self)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:/aws/sagemaker/*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
            )
        )
        image = self._image(settings)
        environment = {"MODEL_BACKEND": "parakeet"}
        if settings.model_data_url:
            bucket, _, key = settings.model_data_url.removeprefix("s3://").partition("/")
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"arn:{stack.partition}:s3:::{bucket}/{key}"])
            )
        else:
            environment["PARAKEET_MODEL"] = settings.parakeet_model
        # No fixed names for the model and its config: both are replaced whenever they change
        # (a new image, instance type...), which CloudFormation refuses for named resources.
        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image, model_data_url=settings.model_data_url, environment=environment
            ),
        )
        model.node.add_dependency(self.role.node.find_child("DefaultPolicy"))  # the image pull is checked
        config_resource = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=variant_name(settings.instance_type),
                    model_name=model.attr_model_name,
                    initial_instance_count=1,
                    instance_type=settings.instance_type,
                    inference_ami_version=settings.inference_ami_version,  # a driver for the image's CUDA 12
                    # the Parakeet checkpoint (~2.5 GB) is downloaded when an instance starts:
                    # every scale-out from zero waits for it, so allow it the time it takes
                    model_data_download_timeout_in_seconds=STARTUP_TIMEOUT_SECONDS,
                    container_startup_health_check_timeout_in_seconds=STARTUP_TIMEOUT_SECONDS,
                )
            ],
            async_inference_config=sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty(
                client_config=sagemaker.CfnEndpointConfig.AsyncInferenceClientConfigProperty(
                    max_concurrent_invocations_per_instance=names.max_concurrent_invocations_per_instance
                ),
                output_config=sagemaker.CfnEndpointConfig.AsyncInferenceOutputConfigProperty(
                    s3_output_path=output_bucket.s3_url_for_object(config.transcripts_prefix),
                    s3_failure_path=output_bucket.s3_url_for_object(config.failures_prefix),
                    notification_config=sagemaker.CfnEndpointConfig.AsyncInferenceNotificationConfigProperty(
                        success_topic=notifications.success_topic.topic_arn,
                        error_topic=notifications.error_topic.topic_arn,
                    ),
                ),
            ),
        )
        endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=config.endpoint_name,
            endpoint_config_name=config_resource.attr_endpoint_config_name,
        )
        self._scaling(endpoint, settings, names)

    def _image(self, settings: InfraSettings) -> str:
        if settings.model_image_uri:
            repository = settings.model_image_uri.split("@")[0].rsplit(":", 1)[0]
            host, _, name = repository.partition("/")
            account, region = host.split(".")[0], host.split(".")[3]
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    resources=[f"arn:{Stack.of(self).partition}:ecr:{region}:{account}:repository/{name}"],
                )
            )
            self.role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
            return settings.model_image_uri
        asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO),
            file="infra/container/Dockerfile",
            exclude=["*", "!model_server", "!infra/container/Dockerfile", "**/__pycache__"],
            ignore_mode=IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_AMD64,  # SageMaker's hosts; a build on Apple silicon gives arm64
        )
        asset.repository.grant_pull(self.role)
        return asset.image_uri

    def _scaling(self, endpoint: sagemaker.CfnEndpoint, settings: InfraSettings, names: StackNames) -> None:
        target = autoscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{endpoint.attr_endpoint_name}/variant/{variant_name(settings.instance_type)}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=0,
            max_capacity=settings.max_instances,
        )
        dimensions = {"EndpointName": endpoint.attr_endpoint_name}
        target.scale_to_track_metric(
            "Backlog",
            target_value=float(names.max_concurrent_invocations_per_instance),
            custom_metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="ApproximateBacklogSizePerInstance",
                dimensions_map=dimensions,
                statistic="Average",
                period=Duration.minutes(1),
            ),
            scale_in_cooldown=Duration.minutes(10),
            scale_out_cooldown=Duration.minutes(1),
        )
        target.scale_on_metric(
            "FromZero",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="HasBacklogWithoutCapacity",
                dimensions_map=dimensions,
                statistic="Average",
                period=Duration.minutes(1),
            ),
            scaling_steps=[
                autoscaling.ScalingInterval(upper=0.5, change=0),
                autoscaling.ScalingInterval(lower=0.5, change=1),
            ],
            adjustment_type=autoscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(2),
            evaluation_periods=1,
        )
