"""A hook for SageMaker asynchronous inference endpoints (the ``sagemaker-runtime`` API)."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config
from botocore.exceptions import HTTPClientError

from audio_pipeline.hooks.retries import AdaptiveRetries
from audio_pipeline.submission import AsyncInvocation, UnclearInvocationError


def _no_retry_when_unclear(caught_exception: BaseException | None = None, **_: Any) -> bool | None:
    """botocore ``needs-retry`` handler: an invocation that got no answer is never sent again."""
    return False if isinstance(caught_exception, HTTPClientError) else None


class SageMakerAsyncInferenceHook(AdaptiveRetries, AwsBaseHook):
    """
    Interact with SageMaker asynchronous inference through ``boto3.client("sagemaker-runtime")``.

    The Amazon provider's ``SageMakerHook`` covers the control plane only; nothing in it
    calls ``InvokeEndpointAsync``. The client retries throttling, 5xx answers and refused
    connections adaptively (unless its botocore configuration sets ``retries``: see
    :class:`~audio_pipeline.hooks.retries.AdaptiveRetries`), but never an invocation whose
    request went out without an answer coming back (a read timeout, a closed connection):
    SageMaker may have accepted it, and a second one would transcribe the file twice.

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "sagemaker-runtime"
        super().__init__(*args, **kwargs)

    def get_client_type(
        self, region_name: str | None = None, config: Config | None = None, deferrable: bool = False
    ) -> Any:
        client: Any = super().get_client_type(region_name=region_name, config=config, deferrable=deferrable)
        client.meta.events.register_first("needs-retry.sagemaker-runtime.InvokeEndpointAsync", _no_retry_when_unclear)
        return client

    def invoke_async(
        self,
        *,
        endpoint_name: str,
        input_location: str,
        content_type: str,
        inference_id: str,
        request_ttl_seconds: int,
        invocation_timeout_seconds: int,
    ) -> AsyncInvocation:
        """Queue one request on the endpoint (``InvokeEndpointAsync``) and return where its result will be.

        :raises UnclearInvocationError: the request went out and no answer came back: it may have
            been accepted, and must not be sent again
        :raises botocore.exceptions.ClientError: the endpoint refused it (nothing was queued)
        :raises botocore.exceptions.BotoCoreError: the request never reached the endpoint
        """
        try:
            response = self.conn.invoke_endpoint_async(
                EndpointName=endpoint_name,
                InputLocation=input_location,
                ContentType=content_type,
                InferenceId=inference_id,
                RequestTTLSeconds=request_ttl_seconds,
                InvocationTimeoutSeconds=invocation_timeout_seconds,
            )
        except HTTPClientError as err:
            raise UnclearInvocationError(f"InvokeEndpointAsync got no answer ({type(err).__name__}: {err})") from err
        return AsyncInvocation(
            inference_id=response.get("InferenceId"),
            output_location=response.get("OutputLocation"),
            failure_location=response.get("FailureLocation"),
        )
