"""A hook for the SQS queue the endpoint's notifications arrive on: receive them, delete the recorded ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from airflow.providers.common.compat.sdk import AirflowException

from audio_pipeline.task_log import TaskLog

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient as AsyncSQSClient
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        MessageTypeDef,
        ReceiveMessageRequestTypeDef,
    )

MAX_MESSAGES = 10
"""The most messages one ``ReceiveMessage`` returns."""
MAX_WAIT_SECONDS = 20
"""The longest long poll SQS allows."""


def _receive_request(queue_url: str, wait_time_seconds: int) -> ReceiveMessageRequestTypeDef:
    return {
        "QueueUrl": queue_url,
        "MaxNumberOfMessages": MAX_MESSAGES,
        "WaitTimeSeconds": min(wait_time_seconds, MAX_WAIT_SECONDS),
    }


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


class NotificationQueueHook(SqsHook):
    """
    The provider's ``SqsHook`` with the two calls of a batch's wait, blocking (the sensor's poke)
    and awaitable on an aiobotocore client (the trigger's loop): receive up to 10 notifications
    with a long poll, and delete the ones recorded, raising when SQS answers the delete with no
    ``Successful`` list and logging each message it failed to delete (see :func:`check_deleted`).

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """

    @property
    def sqs(self) -> SQSClient:
        """The hook's blocking client."""
        client: SQSClient = self.conn
        return client

    async def get_async_conn(self) -> AsyncSQSClient:
        """An aiobotocore client, to be used as an async context manager."""
        client: AsyncSQSClient = await super().get_async_conn()  # type: ignore[no-untyped-call]  # the provider's
        return client

    def queue_url(self, queue: str) -> str:
        """The URL of ``queue``, a queue name or already a URL."""
        if queue.startswith(("https://", "http://")):
            return queue
        url: str = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        return url

    def receive_notifications(self, queue_url: str, wait_time_seconds: int) -> list[MessageTypeDef]:
        """Up to 10 messages, waiting up to ``wait_time_seconds`` (at most 20) for the first."""
        messages: list[MessageTypeDef] = self.sqs.receive_message(**_receive_request(queue_url, wait_time_seconds)).get(
            "Messages", []
        )
        return messages

    def delete_recorded(
        self, queue_url: str, entries: Sequence[DeleteMessageBatchRequestEntryTypeDef], log: TaskLog
    ) -> None:
        """Delete the messages recorded (none: no call)."""
        if entries:
            check_deleted(self.sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries), entries, log)

    async def areceive_notifications(
        self, client: AsyncSQSClient, queue_url: str, wait_time_seconds: int
    ) -> list[MessageTypeDef]:
        """:meth:`receive_notifications` on ``client``, from :meth:`get_async_conn`."""
        response = await client.receive_message(**_receive_request(queue_url, wait_time_seconds))
        messages: list[MessageTypeDef] = response.get("Messages", [])
        return messages

    async def adelete_recorded(
        self,
        client: AsyncSQSClient,
        queue_url: str,
        entries: Sequence[DeleteMessageBatchRequestEntryTypeDef],
        log: TaskLog,
    ) -> None:
        """:meth:`delete_recorded` on ``client``, from :meth:`get_async_conn`."""
        if entries:
            check_deleted(await client.delete_message_batch(QueueUrl=queue_url, Entries=entries), entries, log)
