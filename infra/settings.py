"""The app's parameters, read from CDK context (``cdk deploy -c name=value`` or cdk.json)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App

from audio_pipeline.config import PipelineConfig

AIRFLOW_VERSION = "3.3.1"
"""Must match the constraints line in requirements.txt."""
DEFAULT_PARAKEET_MODEL = "nvidia/parakeet-tdt-0.6b-v2"


@dataclass(frozen=True)
class InfraSettings:
    input_bucket_name: str
    """The user's audio bucket: the roles get read access to it, nothing else."""
    model_image_uri: str | None = None
    """ECR image of infra/container (built and pushed by the user); None builds it as a CDK asset."""
    model_data_url: str | None = None
    """An S3 model artifact (model.tar.gz with model.nemo) for the Parakeet checkpoint."""
    parakeet_model: str = DEFAULT_PARAKEET_MODEL
    instance_type: str = "ml.g4dn.xlarge"
    max_instances: int = 3
    bedrock_model_id: str = PipelineConfig().bedrock_model_id
    existing_endpoint_name: str | None = None
    """Use this endpoint (like the original solution's) instead of deploying one."""
    schedule_bucket_uri: str | None = None
    environment_class: str = "mw1.small"
    webserver_access_mode: str = "PUBLIC_ONLY"

    @classmethod
    def from_context(cls, app: App) -> InfraSettings:
        def get(name: str, default=None):
            value = app.node.try_get_context(name)
            return default if value in (None, "") else value

        return cls(
            input_bucket_name=get("inputBucketName", "my-audio-bucket"),
            model_image_uri=get("modelImageUri"),
            model_data_url=get("modelDataUrl"),
            parakeet_model=get("parakeetModel", DEFAULT_PARAKEET_MODEL),
            instance_type=get("instanceType", "ml.g4dn.xlarge"),
            max_instances=int(get("maxInstances", 3)),
            bedrock_model_id=get("bedrockModelId", PipelineConfig().bedrock_model_id),
            existing_endpoint_name=get("existingEndpointName"),
            schedule_bucket_uri=get("scheduleBucketUri"),
            environment_class=get("environmentClass", "mw1.small"),
            webserver_access_mode=get("webserverAccessMode", "PUBLIC_ONLY"),
        )
