"""The app's parameters, read from CDK context (``cdk deploy -c name=value`` or cdk.json)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import App

from audio_pipeline.config import PipelineConfig

AIRFLOW_VERSION = "3.3.1"
"""Must match the constraints line in requirements.txt."""
DEFAULT_PARAKEET_MODEL = "nvidia/parakeet-tdt-0.6b-v2"
INFERENCE_AMI_VERSION = "al2023-ami-sagemaker-inference-gpu-4-1"
"""The endpoint's host image: NVIDIA driver 580 (CUDA 13.0), new enough for the CUDA 12 of
nvcr.io/nvidia/nemo:25.04. Without it, g4dn and g5 hosts get driver 470 (CUDA 11.4)."""
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SettingError(ValueError):
    """A required context value is missing or malformed: the synth stops, naming it."""


@dataclass(frozen=True)
class InfraSettings:
    input_bucket_name: str
    """The user's audio bucket: the roles get read access to it, nothing else."""
    model_image_uri: str | None = None
    """ECR image of infra/container (built and pushed by the user); None builds it as a CDK asset."""
    model_data_url: str | None = None
    """An S3 model artifact (model.tar.gz with model.nemo) for the Parakeet checkpoint."""
    parakeet_model: str = DEFAULT_PARAKEET_MODEL
    instance_type: str = PipelineConfig().endpoint_instance_type
    inference_ami_version: str = INFERENCE_AMI_VERSION
    max_instances: int = 3
    bedrock_model_id: str = PipelineConfig().bedrock_model_id
    existing_endpoint_name: str | None = None
    """Use this endpoint (like the original solution's) instead of deploying one."""
    schedule_bucket_uri: str | None = None
    """What the nightly run processes; None: nothing (the run is skipped, saying why) until you name a prefix."""
    environment_class: str = "mw1.small"
    webserver_access_mode: str = "PRIVATE_ONLY"
    """The Airflow UI and REST API reachable from inside the VPC only; PUBLIC_ONLY (or PUBLIC_AND_PRIVATE) puts
    them on the internet, behind IAM sign-in."""
    alarm_email: str | None = None
    """An address subscribed to the operations topic (it must confirm the subscription)."""

    @classmethod
    def from_context(cls, app: App) -> InfraSettings:
        def get(name: str, default=None):
            value = app.node.try_get_context(name)
            return default if value in (None, "") else value

        return cls(
            input_bucket_name=input_bucket_name(get("inputBucketName")),
            model_image_uri=get("modelImageUri"),
            model_data_url=get("modelDataUrl"),
            parakeet_model=get("parakeetModel", DEFAULT_PARAKEET_MODEL),
            instance_type=get("instanceType", PipelineConfig().endpoint_instance_type),
            inference_ami_version=get("inferenceAmiVersion", INFERENCE_AMI_VERSION),
            max_instances=int(get("maxInstances", 3)),
            bedrock_model_id=get("bedrockModelId", PipelineConfig().bedrock_model_id),
            existing_endpoint_name=get("existingEndpointName"),
            schedule_bucket_uri=get("scheduleBucketUri"),
            environment_class=get("environmentClass", "mw1.small"),
            webserver_access_mode=webserver_access_mode(get("webserverAccessMode", "PRIVATE_ONLY")),
            alarm_email=get("alarmEmail"),
        )


def input_bucket_name(value: str | None) -> str:
    """The user's audio bucket, required: a default would grant access to a bucket someone else may own."""
    if value is None:
        raise SettingError(
            "inputBucketName is required: the bucket holding your audio, e.g. cdk deploy -c inputBucketName=my-calls"
        )
    if not BUCKET_NAME.match(value):
        raise SettingError(f"inputBucketName {value!r} is not an S3 bucket name (give the name alone, no s3://)")
    return value


WEBSERVER_ACCESS_MODES = ("PRIVATE_ONLY", "PUBLIC_ONLY", "PUBLIC_AND_PRIVATE")
"""CreateEnvironment's values (botocore's MWAA model): PUBLIC_AND_PRIVATE, a public load balancer for browsers
and a VPC endpoint for the workers, only on Airflow 3.2 and later."""


def webserver_access_mode(value: str) -> str:
    """MWAA's ``WebserverAccessMode``: one of its values, refused otherwise at synth (not 30 minutes into a deploy)."""
    if value not in WEBSERVER_ACCESS_MODES:
        raise SettingError(f"webserverAccessMode {value!r} is not one of {', '.join(WEBSERVER_ACCESS_MODES)}")
    return value
