"""A hook for the pipeline's DynamoDB status table."""

from __future__ import annotations

from typing import Any

from audio_pipeline.hooks.retries import AdaptiveRetries
from audio_pipeline.hooks.shared_loader import SharedLoaderAwsHook
from audio_pipeline.ledger import Ledger


class StatusTableHook(AdaptiveRetries, SharedLoaderAwsHook):
    """
    The status table on a low-level ``boto3.client("dynamodb")``.

    The provider's ``DynamoDBHook`` is built on the resource API, whose client rewrites
    attribute values; the conditional transactions of :class:`~audio_pipeline.ledger.Ledger` need the
    plain client, which retries throttling adaptively (see :class:`AdaptiveRetries`).

    :param status_table: name of the status table

    Additional arguments (such as ``aws_conn_id``) may be specified and
    are passed down to the underlying AwsBaseHook.
    """

    def __init__(self, *args: Any, status_table: str, **kwargs: Any) -> None:
        kwargs["client_type"] = "dynamodb"
        super().__init__(*args, **kwargs)
        self.status_table = status_table

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.conn, self.status_table)
