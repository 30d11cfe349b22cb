"""The adaptive retries each AWS hook of the package gives its client (``AdaptiveRetries``),
whether the hook is built directly or by an operator, and the user's own retries winning."""

from __future__ import annotations

import json

import pytest
from botocore.config import Config

from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook
from audio_pipeline.hooks.retries import DEFAULT_RETRIES
from audio_pipeline.hooks.sagemaker_async import SageMakerAsyncInferenceHook
from audio_pipeline.hooks.status_table import StatusTableHook
from tests.plugins.conftest import REGION
from tests.plugins.operators.test_submit_batch import submit_operator

ADAPTIVE = {"mode": "adaptive", "total_max_attempts": DEFAULT_RETRIES["max_attempts"] + 1}
"""DEFAULT_RETRIES as the client holds it: botocore counts max_attempts as retries after the first call."""
USERS = {"mode": "standard", "max_attempts": 3}
BATCH = {"label": "batch 1/1", "manifest": "s3://out/runs/r/batches/0.json", "count": 1}

HOOKS = {
    "sagemaker-runtime": SageMakerAsyncInferenceHook,
    "dynamodb": lambda **kwargs: StatusTableHook(status_table="t", **kwargs),
    "bedrock-runtime": AdaptiveBedrockRuntimeHook,
}
each_hook = pytest.mark.parametrize("hook", HOOKS.values(), ids=HOOKS.keys())


@each_hook
def test_each_hooks_client_retries_adaptively(aws, hook):
    assert hook().conn.meta.config.retries == ADAPTIVE


def test_the_operators_client_retries_adaptively(aws):
    """``AwsBaseOperator`` passes its hook ``config=None``: the default applies all the same."""
    assert submit_operator(BATCH).hook.conn.meta.config.retries == ADAPTIVE


@each_hook
def test_retries_set_by_the_user_win(aws, monkeypatch, hook):
    assert hook(config=Config(retries=USERS)).conn.meta.config.retries["mode"] == "standard", "the hook's config"
    extra = {"region_name": REGION, "config_kwargs": {"retries": USERS}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": extra}))
    assert hook().conn.meta.config.retries["mode"] == "standard", "the connection's config_kwargs"


def test_the_operators_botocore_config_wins(aws):
    retries = submit_operator(BATCH, botocore_config={"retries": USERS}).hook.conn.meta.config.retries
    assert retries == {"mode": "standard", "total_max_attempts": USERS["max_attempts"] + 1}


def test_other_settings_keep_the_adaptive_default(aws):
    config = submit_operator(BATCH, botocore_config={"read_timeout": 7}).hook.conn.meta.config
    assert config.read_timeout == 7 and config.retries == ADAPTIVE
