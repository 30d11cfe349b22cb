"""The pipeline's configuration: one typed object, the one Airflow Variable holding it, its defaults.

Every name the DAG, the local bootstrap and ``infra/`` share lives here, so the three can
never drift: resource names, the S3 layout of outputs, the Variable's name and the
secrets-backend settings that MWAA and the local Airflow both use.
Nothing in this module imports Airflow at import time, so ``infra/`` and the local stack
can use it without an Airflow installation.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONFIG_VARIABLE = "audio_pipeline_config"
"""The one Airflow Variable holding the pipeline's settings: a JSON object ``{field: value}``.

One Variable is one secrets-backend lookup (one SSM ``GetParameter`` on MWAA), read once per
run by the DAG's first task, which passes the settings on to every later task by XCom."""
SECRETS_BACKEND = "airflow.providers.amazon.aws.secrets.systems_manager.SystemsManagerParameterStoreBackend"
VARIABLES_PREFIX = "/airflow/variables"
CONNECTIONS_PREFIX = "/airflow/connections"


def secrets_backend_options() -> dict[str, str]:
    """Airflow's ``[secrets]`` options as MWAA's ``AirflowConfigurationOptions`` (``section.key``);
    the local stack sets the same as ``AIRFLOW__SECTION__KEY`` environment variables.

    - Variables and connections live in SSM Parameter Store under the two prefixes.
    - Only the pipeline's Variable (``audio_pipeline_config``) is looked up in SSM; any other
      Variable goes straight to the environment and the metadata database.
    - ``aws_default`` is never looked up in SSM: on MWAA it is the execution role (the
      metadata database's connection, or none at all), so each hook's lookup would be a
      ``GetParameter`` answered ``ParameterNotFound``. Other connections are looked up there.
    - The secrets cache is on (it serves DAG parsing; a run's lookups are bounded by its first
      task reading one Variable: docs/deploy.md).
    """
    kwargs = {
        "variables_prefix": VARIABLES_PREFIX,
        "connections_prefix": CONNECTIONS_PREFIX,
        "variables_lookup_pattern": f"^{re.escape(CONFIG_VARIABLE)}$",
        "connections_lookup_pattern": "^(?!aws_default$)",
    }
    return {
        "secrets.backend": SECRETS_BACKEND,
        "secrets.backend_kwargs": json.dumps(kwargs),
        "secrets.use_cache": "True",
        "secrets.cache_ttl_seconds": "900",
    }


DEFAULT_AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "mp3", "flac", "m4a", "ogg", "opus", "webm", "aac")


class UnusableInputError(Exception):
    """The run's input or configuration cannot work, and retrying will not change that.

    The message says exactly what is wrong; the DAG fails the task at once, without retries.
    """


MAX_ASYNC_PAYLOAD_BYTES = 1_000_000_000
"""SageMaker asynchronous inference accepts input payloads up to 1 GB."""


def _doc(default: Any, description: str, minimum: int = 1) -> Any:
    """A setting's default and description; ``minimum`` bounds an integer setting."""
    return field(default=default, metadata={"description": description, "minimum": minimum})


def _integer(setting: dataclasses.Field[Any], raw: Any, source: str) -> int:
    """An integer setting as written (a JSON number or a string of digits), never coerced from
    ``true`` or ``2.5``, and at least the setting's minimum."""
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(raw)
        value = int(raw)
    except (TypeError, ValueError):
        raise UnusableInputError(f"{source}: {setting.name!r} must be an integer, got {raw!r}") from None
    if value < setting.metadata["minimum"]:
        raise UnusableInputError(
            f"{source}: {setting.name!r} must be at least {setting.metadata['minimum']}, got {value}"
        )
    return value


@dataclass(frozen=True)
class PipelineConfig:
    """Settings the DAG reads once per run from the Airflow Variable ``audio_pipeline_config``.

    A setting the Variable leaves out takes the default below; the defaults are the names
    that ``infra/`` and the local bootstrap create.
    """

    endpoint_name: str = _doc("audio-transcription-async", "SageMaker asynchronous inference endpoint")
    endpoint_instance_type: str = _doc(
        "ml.g4dn.xlarge",
        "the endpoint's instance type, whose price per hour in include/prices.json the run's cost estimate uses",
    )
    status_table: str = _doc("audio-transcription-status", "DynamoDB table that tracks every file")
    notification_queue: str = _doc(
        "audio-transcription-notifications",
        "SQS queue (name or URL) subscribed to the endpoint's success and error SNS topics",
    )
    output_bucket: str = _doc(
        "audio-transcription-output",
        "bucket of the endpoint's output and failure paths; batch and run manifests go here too",
    )
    transcripts_prefix: str = _doc("transcripts/", "key prefix of the endpoint's S3OutputPath")
    failures_prefix: str = _doc("failures/", "key prefix of the endpoint's S3FailurePath")
    inputs_prefix: str = _doc(
        "inputs/",
        "key prefix of the copy of each file version sent to the endpoint (infra/ expires them after 2 days)",
    )
    runs_prefix: str = _doc("runs/", "key prefix of batch manifests and run manifests")
    bedrock_model_id: str = _doc(
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "Bedrock model id or inference profile id used through Converse",
    )
    audio_extensions: str = _doc(",".join(DEFAULT_AUDIO_EXTENSIONS), "comma-separated file extensions treated as audio")
    max_batches: int = _doc(64, "upper bound on mapped batches per run; batches grow beyond batch_size to respect it")
    request_ttl_seconds: int = _doc(21600, "RequestTTLSeconds sent with each InvokeEndpointAsync")
    invocation_timeout_seconds: int = _doc(900, "InvocationTimeoutSeconds sent with each InvokeEndpointAsync")
    result_grace_seconds: int = _doc(
        300, "extra wait past TTL + invocation timeout before a silent file is marked failed", minimum=0
    )
    reconcile_interval_seconds: int = _doc(
        120, "how often the sensor looks in S3 for results whose notification has not arrived"
    )
    summary_chunk_chars: int = _doc(12000, "transcript characters per Bedrock request before chunking")
    summary_max_tokens: int = _doc(1024, "maxTokens of each Converse request")
    summary_concurrency: int = _doc(4, "concurrent Bedrock requests per summarising task")
    summary_retry_seconds: int = _doc(
        3600,
        "how long a summarising task rides out Bedrock throttling: 7 retries, their pauses doubling up to a "
        "quarter of this and adding up to it, the worker slot free between them (Airflow 3.3 follows this "
        "value; 3.2, its default); then the run ends with the transcripts waiting, and the next run takes "
        "them whatever prefix it lists",
        minimum=7,
    )
    schedule_bucket_uri: str = _doc("", "s3://bucket/prefix/ processed by the nightly schedule")
    schedule_max_files: int = _doc(
        5000,
        "files a nightly run claims at most (a trigger's max_files decides for its own run): about what one "
        "endpoint instance transcribes within RequestTTLSeconds (6 h at ~4 s a file), so nothing claimed "
        "expires in the endpoint's queue; the rest wait for the next night",
    )
    operations_topic_arn: str = _doc(
        "", "SNS topic a failed run is announced to (the Amazon provider's SnsNotifier); empty: none"
    )

    @classmethod
    def fields(cls) -> list[dataclasses.Field[Any]]:
        return list(dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: dict[str, Any], source: str = CONFIG_VARIABLE) -> PipelineConfig:
        """Build from ``{field: raw value}``; strings are converted to each field's type.

        Raises :class:`UnusableInputError` naming ``source`` and the setting that is wrong.
        """
        known = {f.name for f in cls.fields()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UnusableInputError(
                f"{source}: unknown settings {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})"
            )
        kwargs: dict[str, Any] = {}
        for f in cls.fields():
            if f.name not in values or values[f.name] is None:
                continue
            raw = values[f.name]
            if f.type == "int":
                kwargs[f.name] = _integer(f, raw, source)
            elif isinstance(raw, str):
                kwargs[f.name] = raw
            else:
                raise UnusableInputError(f"{source}: {f.name!r} must be a string, got {raw!r}")
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> PipelineConfig:
        """Parse the value of the Variable ``audio_pipeline_config``."""
        try:
            values = json.loads(text)
        except ValueError as err:
            raise UnusableInputError(f"Airflow Variable {CONFIG_VARIABLE!r} is not valid JSON: {err}") from None
        if not isinstance(values, dict):
            raise UnusableInputError(
                f"Airflow Variable {CONFIG_VARIABLE!r} must be a JSON object of settings, got {type(values).__name__}"
            )
        return cls.from_mapping(values, source=f"Airflow Variable {CONFIG_VARIABLE!r}")

    @classmethod
    def from_variable(cls) -> PipelineConfig:
        """The settings from the Variable ``audio_pipeline_config`` (one lookup); all defaults without it."""
        from airflow.sdk import Variable

        text = Variable.get(CONFIG_VARIABLE, default=None)
        return cls() if text is None else cls.from_json(text)

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-serialisable: the XCom a run's tasks share and the Variable's value."""
        return dataclasses.asdict(self)

    def run_xcom(self, bucket_uri: str) -> dict[str, Any]:
        """What a run's first task hands on: its bucket URI, every setting, and the values
        derived from them that operators take (``output_path``, ``inputs_path``, ``result_window_seconds``).
        Pushed key by key too (``multiple_outputs``), so that an operator takes one setting as an
        XComArg of the setting's own type rather than a rendered template string."""
        return {
            "bucket_uri": bucket_uri,
            **self.to_dict(),
            "output_path": self.output_path,
            "inputs_path": self.inputs_path,
            "result_window_seconds": self.result_window_seconds,
        }

    @classmethod
    def from_run(cls, run: Mapping[str, Any]) -> PipelineConfig:
        """The settings of a run, from its first task's XCom (:meth:`run_xcom`)."""
        return cls.from_mapping({f.name: run[f.name] for f in cls.fields() if f.name in run})

    def to_json(self) -> str:
        """The value of the Variable ``audio_pipeline_config`` holding exactly these settings."""
        return json.dumps(self.to_dict(), indent=1)

    @property
    def extensions(self) -> frozenset[str]:
        return frozenset(e.strip().lower().lstrip(".") for e in self.audio_extensions.split(",") if e.strip())

    @property
    def output_path(self) -> str:
        """The endpoint's ``S3OutputPath``."""
        return f"s3://{self.output_bucket}/{self.transcripts_prefix}"

    @property
    def inputs_path(self) -> str:
        """Where the submitter puts the copy of each file version it sends (:mod:`audio_pipeline.pinning`)."""
        return f"s3://{self.output_bucket}/{self.inputs_prefix}"

    @property
    def failure_path(self) -> str:
        """The endpoint's ``S3FailurePath``."""
        return f"s3://{self.output_bucket}/{self.failures_prefix}"

    @property
    def result_window_seconds(self) -> int:
        """How long after its submission a file's result may still arrive: the request may wait
        ``RequestTTLSeconds`` in the endpoint's queue, then run ``InvocationTimeoutSeconds``, plus a
        grace for the notification. Past it a file is failed, and its claim's lease ends."""
        return self.request_ttl_seconds + self.invocation_timeout_seconds + self.result_grace_seconds

    def run_prefix(self, run_id: str) -> str:
        """Key prefix (in ``output_bucket``) of one DAG run's batch manifests and run manifest."""
        return f"{self.runs_prefix}{run_id}/"


DEFAULTS = PipelineConfig()
"""Every setting at its default: what operators, sensors and summaries take when not given a setting."""


def setting(name: str) -> str:
    """``name``, which must be a setting's: for text that tells a user which setting to change."""
    if name not in {f.name for f in PipelineConfig.fields()}:
        raise ValueError(f"{name!r} is not a setting of PipelineConfig")
    return name


@dataclass(frozen=True)
class StackNames:
    """Names and settings of the AWS resources the pipeline needs beside those in :class:`PipelineConfig`.

    Used by ``infra/`` and the local bootstrap, never by the DAG. ``infra/`` leaves the model
    and endpoint config unnamed (CloudFormation replaces them on every change), so their
    names here are the local bootstrap's.
    """

    success_topic: str = "audio-transcription-success"
    error_topic: str = "audio-transcription-error"
    dead_letter_queue: str = "audio-transcription-notifications-dlq"
    operations_topic: str = "audio-transcription-operations"
    """Alarms and the DAG's failure notifier publish here; people subscribe to it."""
    model_name: str = "audio-transcription-asr"
    endpoint_config_name: str = "audio-transcription-async-config"
    max_concurrent_invocations_per_instance: int = 4
    max_receive_count: int = 5
    """Deliveries of one SQS message before it moves to the dead-letter queue."""
