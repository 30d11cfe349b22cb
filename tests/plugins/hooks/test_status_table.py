from __future__ import annotations

from audio_pipeline.hooks.sagemaker_async import SageMakerAsyncInferenceHook
from audio_pipeline.hooks.status_table import StatusTableHook


def test_hooks_use_the_clients_the_pipeline_needs(aws):
    assert SageMakerAsyncInferenceHook().conn.meta.service_model.service_name == "sagemaker-runtime"
    assert SageMakerAsyncInferenceHook().conn.meta.config.retries["mode"] == "adaptive"
    table = StatusTableHook(status_table="t").table
    assert table.client.meta.service_model.service_name == "dynamodb" and table.table_name == "t"
