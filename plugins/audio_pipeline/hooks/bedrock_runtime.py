"""The Bedrock runtime hook: Converse, retried adaptively, its errors told apart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.bedrock import BedrockRuntimeHook
from botocore.exceptions import ClientError

from audio_pipeline.hooks.retries import AdaptiveRetries
from audio_pipeline.summaries import ConverseError
from audio_pipeline.transient import THROTTLING_CODES

if TYPE_CHECKING:
    from types_boto3_bedrock_runtime.type_defs import ConverseResponseTypeDef

RETRYABLE_ERRORS = THROTTLING_CODES | {
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "ModelTimeoutException",
    "InternalServerException",
}
"""Bedrock errors a later attempt may outlast: throttling (the codes :mod:`audio_pipeline.transient`
knows) and the service's own transient answers."""


class AdaptiveBedrockRuntimeHook(AdaptiveRetries, BedrockRuntimeHook):
    """
    The provider's ``BedrockRuntimeHook`` whose client retries throttling, 5xx answers and
    ``ModelNotReadyException`` adaptively unless its botocore configuration names retries.

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """

    def converse(
        self, *, model_id: str, system: str | None, user_text: str, max_tokens: int, temperature: float
    ) -> ConverseResponseTypeDef:
        """One Converse request of one user message (``system``: its system prompt, if any).

        The client has retried throttling and 5xx answers already; an error that reaches here is
        raised as :class:`~audio_pipeline.summaries.ConverseError`, ``retryable`` when a later
        attempt may outlast it (:data:`RETRYABLE_ERRORS`), not when Bedrock refused the request.
        """
        request: dict[str, Any] = {
            "modelId": model_id,
            "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature},
        }
        if system is not None:
            request["system"] = [{"text": system}]
        try:
            response: ConverseResponseTypeDef = self.conn.converse(
                **request, messages=[{"role": "user", "content": [{"text": user_text}]}]
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            message = err.response.get("Error", {}).get("Message", "")
            if code not in RETRYABLE_ERRORS:
                raise ConverseError(f"Bedrock model {model_id}: {code}: {message}", code, message) from err
            attempts = err.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            raise ConverseError(
                f"Bedrock model {model_id}: {code} after {attempts} attempts: {message}", code, message, retryable=True
            ) from err
        return response
