"""The Bedrock runtime hook, retrying throttling adaptively."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.bedrock import BedrockRuntimeHook

from audio_pipeline.hooks.retries import AdaptiveRetries


class AdaptiveBedrockRuntimeHook(AdaptiveRetries, BedrockRuntimeHook):
    """
    The provider's ``BedrockRuntimeHook`` whose client retries throttling, 5xx answers and
    ``ModelNotReadyException`` adaptively unless its botocore configuration names retries.

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """
