"""What the transcription-batch sensor and its trigger share: the batch's watcher, one receive
of the wait (the trigger's loop and the sensor's poke), and the check of what SQS deleted."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from airflow.providers.common.compat.sdk import AirflowException

from audio_pipeline.batch_watcher import BatchWatcher
from audio_pipeline.batches import read_manifest
from audio_pipeline.hooks.shared_loader import SharedLoaderAwsHook
from audio_pipeline.hooks.status_table import StatusTableHook
from audio_pipeline.task_log import TaskLog

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestTypeDef,
        DeleteMessageBatchResultTypeDef,
        ReceiveMessageRequestTypeDef,
        ReceiveMessageResultTypeDef,
    )


class _AwaitableSqs(Protocol):
    """The two SQS calls of a receive, awaitable: aiobotocore's client has them."""

    async def receive_message(self, **kwargs: Unpack[ReceiveMessageRequestTypeDef]) -> ReceiveMessageResultTypeDef: ...
    async def delete_message_batch(
        self, **kwargs: Unpack[DeleteMessageBatchRequestTypeDef]
    ) -> DeleteMessageBatchResultTypeDef: ...


class BlockingSqs:
    """boto3's SQS client behind the awaitable calls of :func:`receive_and_record`, for the
    sensor's poke (in a worker, where a blocking call is what a poke makes)."""

    def __init__(self, client: SQSClient) -> None:
        self.client = client

    async def receive_message(self, **kwargs: Unpack[ReceiveMessageRequestTypeDef]) -> ReceiveMessageResultTypeDef:
        return self.client.receive_message(**kwargs)

    async def delete_message_batch(
        self, **kwargs: Unpack[DeleteMessageBatchRequestTypeDef]
    ) -> DeleteMessageBatchResultTypeDef:
        return self.client.delete_message_batch(**kwargs)


async def receive_and_record(
    sqs: _AwaitableSqs, queue_url: str, watcher: BatchWatcher, wait_time_seconds: int, log: TaskLog
) -> int:
    """One receive of a batch's wait: record its notifications, delete the recorded ones, then the
    watcher's periodic work (refresh, S3 reconcile, deadlines); returns how many messages came.

    The trigger's loop runs it with aiobotocore's client, the sensor's poke with
    :class:`BlockingSqs`. Safe to run again after any error: a notification is deleted only once
    recorded, and recording one twice is a no-op.
    """
    response = await sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=min(wait_time_seconds, 20)
    )
    messages = response.get("Messages", [])
    if messages:
        result = await asyncio.to_thread(watcher.record_messages, messages)
        if result.delete:
            deleted = await sqs.delete_message_batch(QueueUrl=queue_url, Entries=result.delete)
            check_deleted(deleted, result.delete, log)
    await asyncio.to_thread(watcher.tick)
    return len(messages)


def build_batch_watcher(
    *,
    manifest: str,
    status_table: str,
    fallback_deadline: float,
    output_path: str | None,
    refresh_interval_seconds: float,
    reconcile_interval_seconds: float,
    aws_conn_id: str | None,
    region_name: str | None,
    verify: bool | str | None = None,
    botocore_config: dict[str, Any] | None = None,
) -> BatchWatcher:
    """A watcher over one batch, its pending files already read from the table (blocking I/O).

    Its clients share the process's service models: a triggerer runs many of these at once.
    """
    aws: dict[str, Any] = {
        "aws_conn_id": aws_conn_id,
        "region_name": region_name,
        "verify": verify,
        "config": botocore_config,
    }
    s3 = SharedLoaderAwsHook(client_type="s3", **aws).conn
    watcher = BatchWatcher(
        StatusTableHook(status_table=status_table, **aws).ledger,
        s3,
        read_manifest(s3, manifest),
        fallback_deadline=fallback_deadline,
        output_path=output_path,
        refresh_interval_seconds=refresh_interval_seconds,
        reconcile_interval_seconds=reconcile_interval_seconds,
    )
    watcher.refresh()
    return watcher


def check_deleted(response: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], log: TaskLog) -> None:
    """Raise, as the Amazon provider's SQS sensor does, when ``DeleteMessageBatch`` answered no
    ``Successful`` list; log each entry it failed to delete. A notification left on the queue is
    already recorded: it comes back after its visibility timeout and recording it again is a no-op."""
    if "Successful" not in response:
        raise AirflowException(f"Delete SQS Messages failed {response} for messages {entries}")
    for failure in response.get("Failed", []):
        log.warning(
            "SQS did not delete recorded notification %s (%s: %s); it will be received and recorded again",
            failure.get("Id"),
            failure.get("Code"),
            failure.get("Message"),
        )
