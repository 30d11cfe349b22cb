"""A hook for SageMaker asynchronous inference endpoints (the ``sagemaker-runtime`` API)."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from audio_pipeline.hooks.retries import AdaptiveRetries


class SageMakerAsyncInferenceHook(AdaptiveRetries, AwsBaseHook):
    """
    Interact with SageMaker asynchronous inference through ``boto3.client("sagemaker-runtime")``.

    The Amazon provider's ``SageMakerHook`` covers the control plane only; nothing in it
    calls ``InvokeEndpointAsync``. The client retries throttling adaptively unless its
    botocore configuration (the hook's ``config``, an operator's ``botocore_config`` or
    the connection's ``config_kwargs``) sets ``retries`` itself.

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "sagemaker-runtime"
        super().__init__(*args, **kwargs)
