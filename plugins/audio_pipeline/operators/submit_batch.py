"""Submit one batch of claimed audio files to a SageMaker asynchronous inference endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from audio_pipeline.batches import BatchRef, read_manifest
from audio_pipeline.config import DEFAULTS
from audio_pipeline.hooks.sagemaker_async import SageMakerAsyncInferenceHook
from audio_pipeline.hooks.status_table import StatusTableHook
from audio_pipeline.links import S3OutputPrefixLink, SageMakerEndpointLink
from audio_pipeline.submission import BatchSubmitter, InvocationSettings

if TYPE_CHECKING:
    from airflow.sdk import Context


class SubmitTranscriptionBatchOperator(AwsBaseOperator[SageMakerAsyncInferenceHook]):
    """
    Call ``InvokeEndpointAsync`` for every file of a batch and record ``submitted`` or ``failed``.

    A file whose submission fails is marked ``failed`` with the reason and the rest of
    the batch goes on; throttling is retried by the hook's client. Re-running the task
    never submits a file twice: only files still ``processing`` under this claim are sent.

    :param batch: the batch reference (label, manifest URI, file count) from the claim task
    :param endpoint_name: name of the asynchronous inference endpoint
    :param status_table: DynamoDB status table
    :param request_ttl_seconds: ``RequestTTLSeconds`` of each invocation
    :param invocation_timeout_seconds: ``InvocationTimeoutSeconds`` of each invocation
    :param result_window_seconds: how long after submission a file's result may still arrive
        (``PipelineConfig.result_window_seconds``): the lease the submission renews
    :param inputs_path: ``s3://bucket/prefix/`` where the claimed version of each file is copied and
        sent from, so an object overwritten while it waits is never transcribed as the claimed version
    :param output_path: the endpoint's ``S3OutputPath``, for the task's console link to the batch's output
    """

    aws_hook_class = SageMakerAsyncInferenceHook
    operator_extra_links = (SageMakerEndpointLink(), S3OutputPrefixLink())
    template_fields: Sequence[str] = aws_template_fields(
        "batch",
        "endpoint_name",
        "status_table",
        "request_ttl_seconds",
        "invocation_timeout_seconds",
        "result_window_seconds",
        "inputs_path",
        "output_path",
    )
    ui_color = "#7dc4e4"

    def __init__(
        self,
        *,
        batch: BatchRef,
        endpoint_name: str,
        status_table: str,
        request_ttl_seconds: int = DEFAULTS.request_ttl_seconds,
        invocation_timeout_seconds: int = DEFAULTS.invocation_timeout_seconds,
        result_window_seconds: int = DEFAULTS.result_window_seconds,
        inputs_path: str,
        output_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.output_path = output_path
        self.inputs_path = inputs_path
        self.endpoint_name = endpoint_name
        self.status_table = status_table
        self.request_ttl_seconds = request_ttl_seconds
        self.invocation_timeout_seconds = invocation_timeout_seconds
        self.result_window_seconds = result_window_seconds

    def execute(self, context: Context) -> dict[str, int]:
        aws: dict[str, Any] = {
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "verify": self.verify,
            "config": self.botocore_config,
        }
        s3 = S3Hook(**aws)
        files = read_manifest(s3.conn, self.batch["manifest"])
        ledger = StatusTableHook(status_table=self.status_table, **aws).ledger
        settings = InvocationSettings(
            endpoint_name=self.endpoint_name,
            request_ttl_seconds=self.request_ttl_seconds,
            invocation_timeout_seconds=self.invocation_timeout_seconds,
            result_window_seconds=self.result_window_seconds,
            inputs_path=self.inputs_path,
        )
        self.log.info("Submitting %s (%d files) to endpoint %s", self.batch["label"], len(files), self.endpoint_name)
        report = BatchSubmitter(ledger, self.hook, s3.conn, settings, context["run_id"]).submit(files)
        for uri, reason in report.failed:
            self.log.warning("failed: %s: %s", uri, reason)
        self.log.info(
            "%s: %d submitted, %d failed to submit, %d sent without a clear answer (awaited, never sent again), "
            "%d already submitted or settled",
            self.batch["label"],
            report.submitted,
            len(report.failed),
            len(report.unclear),
            report.already_done,
        )
        return {
            "submitted": report.submitted,
            "failed": len(report.failed),
            "unclear": len(report.unclear),
            "already_done": report.already_done,
        }
