"""The configuration: one JSON Variable read once, the settings' defaults, the secrets backend."""

from __future__ import annotations

import json

import boto3
import pytest

from audio_pipeline.config import (
    CONFIG_VARIABLE,
    DEFAULTS,
    VARIABLES_PREFIX,
    PipelineConfig,
    UnusableInputError,
    secrets_backend_options,
    setting,
)


def test_settings_round_trip_through_the_variable_and_unset_ones_default():
    config = PipelineConfig.from_json(json.dumps({"max_batches": "8", "bedrock_model_id": "eu.model"}))
    assert config.max_batches == 8 and config.bedrock_model_id == "eu.model"
    assert config.status_table == PipelineConfig().status_table
    assert PipelineConfig.from_json(config.to_json()) == config
    assert PipelineConfig.from_mapping(config.to_dict()) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "'audio_pipeline_config' is not valid JSON"),
        ('["endpoint_name"]', "must be a JSON object of settings, got list"),
        ('{"endpoint": "x"}', "unknown settings 'endpoint' .known: audio_extensions, "),
        ('{"max_batches": "many"}', "'max_batches' must be an integer, got 'many'"),
    ],
)
def test_a_wrong_variable_is_named_with_what_is_wrong(text, message):
    with pytest.raises(UnusableInputError, match=message):
        PipelineConfig.from_json(text)


def test_the_json_variable_is_one_lookup(monkeypatch):
    from airflow.sdk import Variable

    monkeypatch.setenv("AIRFLOW_VAR_AUDIO_PIPELINE_CONFIG", '{"max_batches": 5}')
    reads = []
    real = Variable.get
    monkeypatch.setattr(Variable, "get", lambda key, *args, **kwargs: reads.append(key) or real(key, *args, **kwargs))
    assert PipelineConfig.from_variable().max_batches == 5
    assert reads == [CONFIG_VARIABLE]


def test_without_the_variable_every_setting_takes_its_default(monkeypatch):
    from airflow.sdk import Variable

    monkeypatch.delenv("AIRFLOW_VAR_AUDIO_PIPELINE_CONFIG", raising=False)
    reads = []
    real = Variable.get
    monkeypatch.setattr(Variable, "get", lambda key, *args, **kwargs: reads.append(key) or real(key, *args, **kwargs))
    assert PipelineConfig.from_variable() == DEFAULTS == PipelineConfig()
    assert reads == [CONFIG_VARIABLE], "one lookup, whether it exists or not"


def test_text_naming_a_setting_fails_when_the_setting_does_not_exist():
    assert setting("max_batches") == "max_batches"
    with pytest.raises(ValueError, match="'audio_pipeline_max_batches' is not a setting"):
        setting("audio_pipeline_max_batches")


def test_the_secrets_backend_looks_up_the_pipelines_variables_and_never_aws_default(aws):
    from airflow.providers.amazon.aws.secrets.systems_manager import SystemsManagerParameterStoreBackend

    options = secrets_backend_options()
    assert options["secrets.backend"].endswith("SystemsManagerParameterStoreBackend")
    backend = SystemsManagerParameterStoreBackend(**json.loads(options["secrets.backend_kwargs"]))
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"{VARIABLES_PREFIX}/{CONFIG_VARIABLE}", Value='{"max_batches": 3}', Type="String")
    lookups = []
    backend.client.meta.events.register(
        "before-parameter-build.ssm.GetParameter", lambda params, **kw: lookups.append(params)
    )

    assert backend.get_variable(CONFIG_VARIABLE) == '{"max_batches": 3}'
    assert backend.get_conn_value("aws_default") is None
    assert backend.get_variable("some_other_teams_variable") is None
    assert backend.get_variable(f"{CONFIG_VARIABLE}_old") is None
    assert backend.get_conn_value("slack_alerts") is None  # looked up: other connections may live in SSM
    assert [p["Name"] for p in lookups] == [
        f"{VARIABLES_PREFIX}/{CONFIG_VARIABLE}",
        "/airflow/connections/slack_alerts",
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_batches": True}, "'max_batches' must be an integer, got True"),
        ({"summary_concurrency": 2.5}, "'summary_concurrency' must be an integer, got 2.5"),
        ({"max_batches": 0}, "'max_batches' must be at least 1, got 0"),
        ({"reconcile_interval_seconds": "-5"}, "'reconcile_interval_seconds' must be at least 1, got -5"),
        ({"result_grace_seconds": -1}, "'result_grace_seconds' must be at least 0, got -1"),
        ({"endpoint_name": ["a", "b"]}, "'endpoint_name' must be a string, got \\['a', 'b'\\]"),
        ({"status_table": {"name": "t"}}, "'status_table' must be a string, got \\{'name': 't'\\}"),
    ],
)
def test_a_setting_of_the_wrong_kind_or_range_is_named_not_coerced(settings, message):
    """A value that would run with something other than what the user wrote (True as 1, 2.5 as 2,
    a list as its repr) or cannot work (no batches, a negative interval) fails naming the setting."""
    with pytest.raises(UnusableInputError, match=f"Airflow Variable 'audio_pipeline_config': {message}"):
        PipelineConfig.from_json(json.dumps(settings))


def test_integers_written_as_json_numbers_or_strings_are_read_alike():
    written = {"max_batches": 8, "summary_max_tokens": "2048", "result_grace_seconds": 0, "request_ttl_seconds": 60.0}
    config = PipelineConfig.from_json(json.dumps(written))
    assert (config.max_batches, config.summary_max_tokens, config.result_grace_seconds) == (8, 2048, 0)
    assert config.request_ttl_seconds == 60 and isinstance(config.request_ttl_seconds, int)


def test_a_run_hands_on_its_settings_and_the_values_operators_take_and_reads_them_back():
    config = PipelineConfig(max_batches=3, request_ttl_seconds=60, invocation_timeout_seconds=10)
    run = config.run_xcom("s3://audio-in/calls/")
    assert run["bucket_uri"] == "s3://audio-in/calls/"
    assert run["output_path"] == config.output_path and run["result_window_seconds"] == 60 + 10 + 300
    assert json.loads(json.dumps(run)) == run, "an XCom: JSON"
    assert PipelineConfig.from_run(run) == config
