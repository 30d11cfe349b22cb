"""The summaries' Bedrock hook: the provider's ``BedrockRuntimeHook`` whose client also retries
what Bedrock models as retryable (its retries by default and by the user: test_retries.py)."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.bedrock import BedrockRuntimeHook
from botocore.config import Config

from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook
from tests.plugins.conftest import REGION, answer_over_http, aws_error
from tests.plugins.test_summaries import PROFILE, answer


def test_the_providers_hook_with_a_bedrock_runtime_client_in_the_connections_region(aws):
    hook = AdaptiveBedrockRuntimeHook(config=Config(read_timeout=7))
    assert isinstance(hook, BedrockRuntimeHook)
    client = hook.conn
    assert client.meta.service_model.service_name == "bedrock-runtime" and client.meta.region_name == REGION
    assert client.meta.config.read_timeout == 7 and client.meta.config.retries["mode"] == "adaptive"
    assert AdaptiveBedrockRuntimeHook(region_name="eu-west-1").conn.meta.region_name == "eu-west-1"


def test_a_model_not_ready_yet_is_retried_by_the_client(monkeypatch):
    """Answered at the HTTP layer, without moto (which has no Converse), so that botocore retries."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    client = AdaptiveBedrockRuntimeHook(aws_conn_id=None, region_name=REGION).conn
    answers = [(429, aws_error("ModelNotReadyException", "loading")), (200, answer("ready"))]
    attempts = answer_over_http(client, "Converse", answers)
    response = client.converse(modelId=PROFILE, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert response["output"]["message"]["content"][0]["text"] == "ready"
    assert attempts == [429, 200], "one retry, by botocore: the error is modelled retryable"
