"""Wait until every file of a batch is ``completed`` or ``failed``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, conf

from audio_pipeline.batch_wait import WAIT_TIME_SECONDS, build_batch_watcher
from audio_pipeline.batch_watcher import REFRESH_INTERVAL_SECONDS, BatchWatcher
from audio_pipeline.batches import BatchRef
from audio_pipeline.config import DEFAULTS
from audio_pipeline.hooks.notification_queue import NotificationQueueHook
from audio_pipeline.links import S3OutputPrefixLink, SageMakerEndpointLink
from audio_pipeline.reporting import describe_counts
from audio_pipeline.triggers.transcription_batch import TranscriptionBatchTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class TranscriptionBatchSensor(AwsBaseSensor[NotificationQueueHook]):
    """
    Wait for a batch's transcriptions, recording every SageMaker notification in the status table.

    Watches the SQS queue that the endpoint's success and error SNS topics feed. Each
    notification received, of this batch or any other, is written to the status table
    before it is deleted; duplicates and unknown inference ids are dropped, messages
    that are not notifications stay on the queue for its dead-letter queue. A file whose
    notification never arrives is settled from its output or failure object in S3, and
    fails once ``result_window_seconds`` have passed since its submission (a file without a
    deadline of its own, ``result_window_seconds`` after the wait began).

    :param batch: the batch reference (label, manifest URI, file count) from the claim task
    :param status_table: DynamoDB status table
    :param notification_queue: name or URL of the SQS notification queue
    :param result_window_seconds: how long after submission a file's result may still arrive
        (``RequestTTLSeconds`` + ``InvocationTimeoutSeconds`` + a grace; the setting of that name);
        the deadline of a file whose status item has none of its own
    :param reconcile_interval_seconds: time between looks for results in S3, however busy the queue
    :param deferrable: wait in the triggerer instead of occupying a worker slot (default: the
        ``operators.default_deferrable`` setting, False unless set)
    :param endpoint_name: the endpoint the batch was submitted to, for the task's console link
    :param output_path: the endpoint's ``S3OutputPath``, for the task's console link to the batch's output
    """

    aws_hook_class = NotificationQueueHook
    template_fields: Sequence[str] = aws_template_fields(
        "batch",
        "status_table",
        "notification_queue",
        "result_window_seconds",
        "reconcile_interval_seconds",
        "endpoint_name",
        "output_path",
    )
    operator_extra_links = (SageMakerEndpointLink(), S3OutputPrefixLink())
    ui_color = "#a6da95"

    def __init__(
        self,
        *,
        batch: BatchRef,
        status_table: str,
        notification_queue: str,
        result_window_seconds: int = DEFAULTS.result_window_seconds,
        reconcile_interval_seconds: int = DEFAULTS.reconcile_interval_seconds,
        refresh_interval_seconds: int = REFRESH_INTERVAL_SECONDS,
        wait_time_seconds: int = WAIT_TIME_SECONDS,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        endpoint_name: str | None = None,
        output_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.output_path = output_path
        self.batch = batch
        self.status_table = status_table
        self.notification_queue = notification_queue
        self.result_window_seconds = result_window_seconds
        self.reconcile_interval_seconds = reconcile_interval_seconds
        self.refresh_interval_seconds = refresh_interval_seconds
        self.wait_time_seconds = wait_time_seconds
        self.deferrable = deferrable
        self.watcher: BatchWatcher
        """The batch's watcher, built when :meth:`execute` begins the wait."""

    @cached_property
    def queue_url(self) -> str:
        return self.hook.queue_url(self.notification_queue)

    def _wait_began(self, context: Context) -> float:
        """Epoch seconds when this wait began: the first poke of a rescheduled sensor, else now."""
        first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
        return first.timestamp() if first else time.time()

    def _watcher_arguments(self, fallback_deadline: float) -> dict[str, Any]:
        """What the batch's watcher is built from: here in poke mode, in the trigger when deferred."""
        return {
            "manifest": self.batch["manifest"],
            "status_table": self.status_table,
            "fallback_deadline": fallback_deadline,
            "output_path": self.output_path,
            "refresh_interval_seconds": self.refresh_interval_seconds,
            "reconcile_interval_seconds": self.reconcile_interval_seconds,
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "verify": self.verify,
            "botocore_config": self.botocore_config,
        }

    def execute(self, context: Context) -> dict[str, int] | None:
        arguments = self._watcher_arguments(self._wait_began(context) + self.result_window_seconds)
        self.watcher = build_batch_watcher(**arguments)
        if not self.deferrable:
            super().execute(context)
            return self._report(dict(self.watcher.settled))
        if self.watcher.done:
            return self._report(dict(self.watcher.settled))
        self.log.info(
            "%s: %d of %d files pending; deferring to the triggerer",
            self.batch["label"],
            len(self.watcher.pending),
            len(self.watcher.files),
        )
        self.defer(
            trigger=TranscriptionBatchTrigger(
                queue_url=self.queue_url, wait_time_seconds=self.wait_time_seconds, **arguments
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return None

    def poke(self, context: Context) -> bool:
        """One receive: record its notifications, delete the recorded ones, then the watcher's
        periodic work (refresh, S3 reconcile, deadlines)."""
        messages = self.hook.receive_notifications(self.queue_url, self.wait_time_seconds)
        if messages:
            self.hook.delete_recorded(self.queue_url, self.watcher.record_messages(messages).delete, self.log)
        self.watcher.tick()
        return self.watcher.done

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, int]:
        event = validate_execute_complete_event(event)
        if event.get("status") != "success":
            raise AirflowException(f"Waiting for {self.batch['label']} failed: {event.get('message')}")
        settled: dict[str, int] = event["settled"]
        return self._report(settled)

    def _report(self, settled: dict[str, int]) -> dict[str, int]:
        counts = describe_counts(settled) or "nothing left to wait for"
        self.log.info("%s settled: %s", self.batch["label"], counts)
        return settled
