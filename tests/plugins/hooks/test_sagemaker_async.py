"""The submission hook: a ``sagemaker-runtime`` client (its retries: test_retries.py)."""

from __future__ import annotations

from audio_pipeline.hooks.sagemaker_async import SageMakerAsyncInferenceHook
from tests.plugins.conftest import REGION


def test_the_hooks_client_is_sagemaker_runtime_in_the_connections_region(aws):
    client = SageMakerAsyncInferenceHook().conn
    assert client.meta.service_model.service_name == "sagemaker-runtime" and client.meta.region_name == REGION
    assert SageMakerAsyncInferenceHook(region_name="eu-west-1").conn.meta.region_name == "eu-west-1"
