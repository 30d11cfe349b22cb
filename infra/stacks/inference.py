"""The SageMaker asynchronous endpoint: model, endpoint config, endpoint, scaling 0..N."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Duration, Stack, Validations
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
VARIANT = "AllTraffic"


class AsyncEndpoint(Construct):
    """The endpoint's names, for ARNs and policies, whether deployed here or existing."""

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
        output_bucket.grant_read_write(self.role)
        notifications.success_topic.grant_publish(self.role)
        notifications.error_topic.grant_publish(self.role)
        notifications.key.grant_encrypt_decrypt(self.role)
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
        if not settings.model_data_url:
            environment["PARAKEET_MODEL"] = settings.parakeet_model
        model = sagemaker.CfnModel(
            self,
            "Model",
            model_name=names.model_name,
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image, model_data_url=settings.model_data_url, environment=environment
            ),
        )
        model.node.add_dependency(self.role)
        config_resource = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            endpoint_config_name=names.endpoint_config_name,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=model.attr_model_name,
                    initial_instance_count=1,
                    instance_type=settings.instance_type,
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
        Validations.of(config_resource).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SM2",
                reason="GPU instances with local NVMe storage (g4dn, g5) reject a volume KmsKeyId; "
                "their instance storage is hardware-encrypted.",
            )
        )
        endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=config.endpoint_name,
            endpoint_config_name=config_resource.attr_endpoint_config_name,
        )
        self.endpoint_name = endpoint.attr_endpoint_name
        self._scaling(endpoint, settings, names)

    def _image(self, settings: InfraSettings) -> str:
        if settings.model_image_uri:
            repository = settings.model_image_uri.split("@")[0].rsplit(":", 1)[0]
            host, _, name = repository.partition("/")
            account, region = host.split(".")[0], host.split(".")[3]
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    resources=[f"arn:aws:ecr:{region}:{account}:repository/{name}"],
                )
            )
            self.role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
            return settings.model_image_uri
        asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO),
            file="infra/container/Dockerfile",
            exclude=[".venv", ".local", ".git", "infra/cdk.out", "dist", "tests", "samples"],
        )
        asset.repository.grant_pull(self.role)
        return asset.image_uri

    def _scaling(self, endpoint: sagemaker.CfnEndpoint, settings: InfraSettings, names: StackNames) -> None:
        target = autoscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{endpoint.attr_endpoint_name}/variant/{VARIANT}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=0,
            max_capacity=settings.max_instances,
        )
        target.node.add_dependency(endpoint)
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
