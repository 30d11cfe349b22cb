"""The pipeline's configuration: one typed object, its Airflow Variables and their defaults.

Every name the DAG, the local bootstrap and ``infra/`` share lives here, so the three can
never drift: resource names, the S3 layout of outputs and the Variable names themselves.
Nothing in this module imports Airflow at import time, so ``infra/`` and the local stack
can use it without an Airflow installation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

VARIABLE_PREFIX = "audio_pipeline_"
"""Each field ``x`` of :class:`PipelineConfig` is read from the Variable ``audio_pipeline_x``."""

DEFAULT_AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "mp3", "flac", "m4a", "ogg", "opus", "webm", "aac")


class UnusableInputError(Exception):
    """The run's input or configuration cannot work, and retrying will not change that.

    The message says exactly what is wrong; the DAG fails the task at once, without retries.
    """


def result_window_seconds(
    request_ttl_seconds: int | str, invocation_timeout_seconds: int | str, result_grace_seconds: int | str
) -> int:
    """How long after its submission a file's result may still arrive: the request may wait
    ``RequestTTLSeconds`` in the endpoint's queue, then run ``InvocationTimeoutSeconds``, plus a
    grace for the notification. Past it a file is failed, and its claim's lease ends.
    (Rendered templates pass the settings as strings.)"""
    return int(request_ttl_seconds) + int(invocation_timeout_seconds) + int(result_grace_seconds)


MAX_ASYNC_PAYLOAD_BYTES = 1_000_000_000
"""SageMaker asynchronous inference accepts input payloads up to 1 GB."""


def _doc(default: Any, description: str) -> Any:
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class PipelineConfig:
    """Settings the DAG reads at run time from Airflow Variables (``audio_pipeline_<field>``).

    A Variable that is not set falls back to the default below; the defaults are the names
    that ``infra/`` and the local bootstrap create.
    """

    endpoint_name: str = _doc("audio-transcription-async", "SageMaker asynchronous inference endpoint")
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
        300, "extra wait past TTL + invocation timeout before a silent file is marked failed"
    )
    reconcile_interval_seconds: int = _doc(
        120, "how often the sensor looks in S3 for results whose notification has not arrived"
    )
    summary_chunk_chars: int = _doc(12000, "transcript characters per Bedrock request before chunking")
    summary_max_tokens: int = _doc(1024, "maxTokens of each Converse request")
    summary_concurrency: int = _doc(4, "concurrent Bedrock requests per summarising task")
    schedule_bucket_uri: str = _doc("", "s3://bucket/prefix/ processed by the nightly schedule")

    @classmethod
    def variable_name(cls, field_name: str) -> str:
        return VARIABLE_PREFIX + field_name

    @classmethod
    def template(cls, field_name: str) -> str:
        """A Jinja expression that renders the field's Variable, or its default when unset."""
        default = next(f.default for f in cls.fields() if f.name == field_name)
        return f"{{{{ var.value.get({cls.variable_name(field_name)!r}, {str(default)!r}) }}}}"

    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> PipelineConfig:
        """Build from ``{field: raw value}``; strings are converted to each field's type."""
        kwargs: dict[str, Any] = {}
        for f in cls.fields():
            if f.name not in values or values[f.name] is None:
                continue
            raw = values[f.name]
            if f.type == "int":
                try:
                    kwargs[f.name] = int(raw)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Airflow Variable {cls.variable_name(f.name)!r} must be an integer, got {raw!r}"
                    ) from None
            else:
                kwargs[f.name] = str(raw)
        return cls(**kwargs)

    @classmethod
    def from_variables(cls) -> PipelineConfig:
        """Read every field from its Airflow Variable, falling back to the default."""
        from airflow.sdk import Variable

        return cls.from_mapping({f.name: Variable.get(cls.variable_name(f.name), default=None) for f in cls.fields()})

    @property
    def extensions(self) -> frozenset[str]:
        return frozenset(e.strip().lower().lstrip(".") for e in self.audio_extensions.split(",") if e.strip())

    @property
    def output_path(self) -> str:
        """The endpoint's ``S3OutputPath``."""
        return f"s3://{self.output_bucket}/{self.transcripts_prefix}"

    @property
    def failure_path(self) -> str:
        """The endpoint's ``S3FailurePath``."""
        return f"s3://{self.output_bucket}/{self.failures_prefix}"

    @property
    def result_window_seconds(self) -> int:
        """:func:`result_window_seconds` with these settings; also a claim's lease."""
        return result_window_seconds(
            self.request_ttl_seconds, self.invocation_timeout_seconds, self.result_grace_seconds
        )

    def run_prefix(self, run_id: str) -> str:
        """Key prefix (in ``output_bucket``) of one DAG run's batch manifests and run manifest."""
        return f"{self.runs_prefix}{run_id}/"


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
    model_name: str = "audio-transcription-asr"
    endpoint_config_name: str = "audio-transcription-async-config"
    max_concurrent_invocations_per_instance: int = 4
    max_receive_count: int = 5
    """Deliveries of one SQS message before it moves to the dead-letter queue."""
