"""The SageMaker asynchronous endpoint: model, endpoint config, endpoint, scaling 0..N."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import custom_resources as cr
from constructs import Construct

from audio_pipeline.config import PipelineConfig, StackNames
from infra.settings import InfraSettings
from infra.stacks.notifications import Notifications

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = "infra/container/Dockerfile"


def image_context() -> Path:
    """The image's build context: the Dockerfile and model_server/ alone, copied out of the repository,
    so that no other file (not even the repository's .dockerignore) changes the asset and rebuilds it."""
    context = Path(tempfile.mkdtemp(prefix="model-image-"))
    shutil.copytree(REPO / "model_server", context / "model_server", ignore=shutil.ignore_patterns("__pycache__"))
    (context / DOCKERFILE).parent.mkdir(parents=True)
    shutil.copyfile(REPO / DOCKERFILE, context / DOCKERFILE)
    return context


def variant_name(instance_type: str) -> str:
    """The production variant is named for its instance type (``ml.g4dn.xlarge`` -> ``ml-g4dn-xlarge``):
    a new instance type is a new variant, so its scalable target and policies are replaced (registered
    on the new variant) instead of left unchanged on a variant that no longer exists."""
    return instance_type.replace(".", "-")


STARTUP_TIMEOUT_SECONDS = 1800
CONCURRENT_INVOCATIONS_PER_INSTANCE = 1
"""MaxConcurrentInvocationsPerInstance: what the container serves at once. The model server takes one
request into the model at a time (model_server/server.py's slots: the backend's ``max_concurrency``,
1 when it sets none, as the Parakeet backend does); with more, SageMaker sends requests that wait
inside the container, spending their InvocationTimeoutSeconds there instead of in the endpoint's queue."""
LEGACY_VARIANT = "AllTraffic"
"""The variant's name before it carried the instance type (stacks deployed then still have it)."""
SCALING = {"ServiceNamespace": "sagemaker", "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}


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
        output_bucket.grant_read(self.role, f"{config.inputs_prefix}*")  # the pinned copies it is sent
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
                    max_concurrent_invocations_per_instance=CONCURRENT_INVOCATIONS_PER_INSTANCE
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
        endpoint.node.add_dependency(self._release_old_variant(config.endpoint_name, settings.instance_type))
        self._scaling(endpoint, settings)

    def _release_old_variant(self, endpoint_name: str, instance_type: str) -> Construct:
        """Deregister the old variant's scaling before the endpoint moves to a new instance type.

        SageMaker refuses to update an endpoint that would remove a variant registered with
        Application Auto Scaling. This runs before the endpoint's update: on an instanceType
        change it deregisters the variant it last recorded (its physical id), and when first
        created the ``AllTraffic`` variant of stacks deployed before variants carried the type.
        The new variant's scalable target and policies are then created by CloudFormation.
        """

        stack = Stack.of(self)

        def deregister(resource_id: str | cr.PhysicalResourceIdReference) -> cr.AwsSdkCall:
            return cr.AwsSdkCall(
                service="ApplicationAutoScaling",
                action="deregisterScalableTarget",
                parameters={**SCALING, "ResourceId": resource_id},
                physical_resource_id=cr.PhysicalResourceId.of(
                    f"endpoint/{endpoint_name}/variant/{variant_name(instance_type)}"
                ),
                ignore_error_codes_matching="ObjectNotFoundException",  # nothing registered: nothing to release
            )

        return cr.AwsCustomResource(
            self,
            "ReleaseOldVariant",
            on_create=deregister(f"endpoint/{endpoint_name}/variant/{LEGACY_VARIANT}"),
            on_update=deregister(cr.PhysicalResourceIdReference()),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    # Application Auto Scaling offers no resource-level permissions for this action
                    iam.PolicyStatement(actions=["application-autoscaling:DeregisterScalableTarget"], resources=["*"]),
                    # deregistering deletes the target-tracking policy and with it its alarms
                    iam.PolicyStatement(
                        actions=["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
                        resources=[
                            f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:TargetTracking-endpoint/{endpoint_name}/*"
                        ],
                    ),
                ]
            ),
            install_latest_aws_sdk=False,
        )

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
            directory=str(image_context()),
            file=DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64,  # SageMaker's hosts; a build on Apple silicon gives arm64
        )
        asset.repository.grant_pull(self.role)
        return asset.image_uri

    def _scaling(self, endpoint: sagemaker.CfnEndpoint, settings: InfraSettings) -> None:
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
            target_value=float(CONCURRENT_INVOCATIONS_PER_INSTANCE),  # a request queued per instance: add one
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
