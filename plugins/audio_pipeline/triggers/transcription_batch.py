"""Wait, in the triggerer, until every file of a batch is ``completed`` or ``failed``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from audio_pipeline.batch_wait import WAIT_TIME_SECONDS, build_batch_watcher
from audio_pipeline.batch_watcher import REFRESH_INTERVAL_SECONDS, BatchWatcher
from audio_pipeline.config import DEFAULTS
from audio_pipeline.hooks.notification_queue import NotificationQueueHook
from audio_pipeline.reporting import describe_counts
from audio_pipeline.task_log import TaskLog
from audio_pipeline.transient import TransientRetry

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient


class _Progress:
    """Logs how many of a batch's files are settled, when that changes, at most once a minute."""

    def __init__(self, log: TaskLog, manifest: str, total: int, interval_seconds: float = 60) -> None:
        self.log, self.manifest, self.total, self.interval = log, manifest, total, interval_seconds
        self.last_count = 0
        self.last_time = time.monotonic()

    def report(self, settled: Counter[str]) -> None:
        count = sum(settled.values())
        if count == self.last_count or (count < self.total and time.monotonic() - self.last_time < self.interval):
            return
        self.log.info("%s: %d of %d files settled (%s)", self.manifest, count, self.total, describe_counts(settled))
        self.last_count, self.last_time = count, time.monotonic()


class _Pause:
    """The pause after a receive that was not full, so that the next receive collects more
    notifications: doubled after each such receive up to ``most``, halved after a full one. With
    many triggers on one queue, each finds the pause at which its receives come close to full."""

    def __init__(self, least: float, most: float) -> None:
        self.least, self.most, self.seconds = least, max(least, most), least

    def after(self, received: int) -> float:
        """Seconds to pause after a receive of ``received`` messages."""
        if received >= 10:
            self.seconds = max(self.least, self.seconds / 2)
            return 0.0
        if received == 0:  # the long poll waited already
            return 0.0
        pause, self.seconds = self.seconds, min(self.most, self.seconds * 2)
        return pause


class TranscriptionBatchTrigger(BaseTrigger):
    """
    Long-poll the notification queue, record every notification, and fire when a batch is settled.

    Every notification received is written to the status table before it is deleted
    from the queue, whichever batch or run it belongs to, so parallel triggers on one
    queue share the work instead of stealing each other's messages. Files whose
    notification never comes are settled from their output or failure object in S3
    (looked for every ``reconcile_interval_seconds`` however busy the queue, and again
    before a file is failed), and past their deadline they are marked ``failed``. A
    transient AWS error is retried with backoff, not reported. The trigger keeps no state that
    ``serialize()`` does not carry: a restarted triggerer rebuilds it from the manifest
    and the table.

    :param manifest: S3 URI of the batch manifest
    :param status_table: DynamoDB status table
    :param queue_url: URL of the SQS queue subscribed to the endpoint's SNS topics
    :param fallback_deadline: epoch seconds after which a file with no deadline of its own fails
    :param output_path: the endpoint's ``S3OutputPath``: a success notification naming an object
        elsewhere is never recorded
    :param reconcile_interval_seconds: time between looks for results in S3
    :param refresh_interval_seconds: how often to re-read the batch's pending files
    :param wait_time_seconds: SQS long-poll wait
    :param batch_wait_seconds: pause after a receive that was not full, so that the next one
        collects up to 10 notifications (fewer receive, delete and write calls per file);
        doubled after each receive that was not full, halved after a full one
    :param max_batch_wait_seconds: the longest such pause (64 triggers sharing a queue that
        brings 30 notifications a second each need ~20 s for full receives); a notification
        waits at most this long in the queue before it is recorded
    :param transient_error_timeout_seconds: how long SQS, S3 or DynamoDB may keep answering
        5xx or throttling (after botocore's own retries) before the trigger gives up; until
        then it retries with backoff, logging each retry
    :param aws_conn_id: the Airflow connection used for AWS credentials
    :param region_name: AWS region name; boto3's default when not given
    :param verify: whether to verify SSL certificates (``False``, or a CA bundle path); see
        https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html
    :param botocore_config: configuration (key-values) for the botocore clients; see
        https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html
    """

    def __init__(
        self,
        *,
        manifest: str,
        status_table: str,
        queue_url: str,
        fallback_deadline: float,
        output_path: str | None = None,
        reconcile_interval_seconds: int = DEFAULTS.reconcile_interval_seconds,
        refresh_interval_seconds: int = REFRESH_INTERVAL_SECONDS,
        wait_time_seconds: int = WAIT_TIME_SECONDS,
        batch_wait_seconds: float = 2.0,
        max_batch_wait_seconds: float = 10.0,
        transient_error_timeout_seconds: float = 600,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is unannotated
        self.manifest = manifest
        self.status_table = status_table
        self.queue_url = queue_url
        self.fallback_deadline = fallback_deadline
        self.output_path = output_path
        self.reconcile_interval_seconds = reconcile_interval_seconds
        self.refresh_interval_seconds = refresh_interval_seconds
        self.wait_time_seconds = wait_time_seconds
        self.batch_wait_seconds = batch_wait_seconds
        self.max_batch_wait_seconds = max_batch_wait_seconds
        self.transient_error_timeout_seconds = transient_error_timeout_seconds
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {
                "manifest": self.manifest,
                "status_table": self.status_table,
                "queue_url": self.queue_url,
                "fallback_deadline": self.fallback_deadline,
                "output_path": self.output_path,
                "reconcile_interval_seconds": self.reconcile_interval_seconds,
                "refresh_interval_seconds": self.refresh_interval_seconds,
                "wait_time_seconds": self.wait_time_seconds,
                "batch_wait_seconds": self.batch_wait_seconds,
                "max_batch_wait_seconds": self.max_batch_wait_seconds,
                "transient_error_timeout_seconds": self.transient_error_timeout_seconds,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def build_watcher(self) -> BatchWatcher:
        """The batch's watcher, its pending files read from the table (blocking I/O)."""
        return build_batch_watcher(
            manifest=self.manifest,
            status_table=self.status_table,
            fallback_deadline=self.fallback_deadline,
            output_path=self.output_path,
            refresh_interval_seconds=self.refresh_interval_seconds,
            reconcile_interval_seconds=self.reconcile_interval_seconds,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
        )

    @cached_property
    def hook(self) -> NotificationQueueHook:
        return NotificationQueueHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        retrying = TransientRetry(self.log, self.manifest, self.transient_error_timeout_seconds)
        try:
            watcher = await retrying(asyncio.to_thread, self.build_watcher)
            progress = _Progress(self.log, self.manifest, len(watcher.files))
            pause = _Pause(self.batch_wait_seconds, self.max_batch_wait_seconds)
            async with await self.hook.get_async_conn() as sqs:
                while not watcher.done:
                    await retrying(self._receive_and_record, sqs, watcher, pause)
                    progress.report(watcher.settled)
            progress.report(watcher.settled)  # also when everything settled before the first receive
        except Exception as err:
            self.log.exception("Waiting for batch %s failed", self.manifest)
            yield TriggerEvent(
                {"status": "error", "manifest": self.manifest, "message": f"{type(err).__name__}: {err}"}
            )
            return
        yield TriggerEvent({"status": "success", "manifest": self.manifest, "settled": dict(watcher.settled)})

    async def _receive_and_record(self, sqs: SQSClient, watcher: BatchWatcher, pause: _Pause) -> None:
        """One receive: record its notifications, delete the recorded ones, then the watcher's periodic
        work (refresh, S3 reconcile, deadlines), and the pause after it. Safe to run again after any
        error: a notification is deleted only once recorded, and recording one twice is a no-op."""
        messages = await self.hook.areceive_notifications(sqs, self.queue_url, self.wait_time_seconds)
        if messages:
            recorded = await asyncio.to_thread(watcher.record_messages, messages)
            await self.hook.adelete_recorded(sqs, self.queue_url, recorded.delete, self.log)
        await asyncio.to_thread(watcher.tick)
        seconds = pause.after(len(messages))
        if seconds and not watcher.done:
            await asyncio.sleep(seconds)
