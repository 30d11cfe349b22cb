"""The submission client's retries, as the DAG's operator builds it (not only a hook built directly)."""

from __future__ import annotations

import json

from audio_pipeline.hooks.retries import DEFAULT_RETRIES
from audio_pipeline.hooks.sagemaker_async import SageMakerAsyncInferenceHook
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from tests.plugins.conftest import CONFIG, REGION


def operator(**kwargs) -> SubmitTranscriptionBatchOperator:
    batch = {"label": "batch 1/1", "manifest": "s3://out/runs/r/batches/0.json", "count": 1}
    return SubmitTranscriptionBatchOperator(
        task_id="submit", batch=batch, endpoint_name="e", status_table=CONFIG.status_table, **kwargs
    )


def test_the_operators_client_retries_adaptively(aws):
    client = operator().hook.conn
    assert client.meta.service_model.service_name == "sagemaker-runtime"
    retries = client.meta.config.retries  # botocore counts max_attempts as retries after the first call
    assert retries == {"mode": "adaptive", "total_max_attempts": DEFAULT_RETRIES["max_attempts"] + 1}


def test_retries_set_by_the_user_win(aws, monkeypatch):
    retries = {"mode": "standard", "max_attempts": 3}
    assert operator(botocore_config={"retries": retries}).hook.conn.meta.config.retries["mode"] == "standard"
    extra = {"region_name": REGION, "config_kwargs": {"retries": retries}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": extra}))
    assert operator().hook.conn.meta.config.retries["mode"] == "standard", "the connection's config_kwargs"
    assert SageMakerAsyncInferenceHook().conn.meta.config.retries["mode"] == "standard"


def test_other_settings_keep_the_adaptive_default(aws):
    config = operator(botocore_config={"read_timeout": 7}).hook.conn.meta.config
    assert config.read_timeout == 7 and config.retries["mode"] == "adaptive"
