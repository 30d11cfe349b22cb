"""What the transcription-batch sensor and its trigger share: the batch's watcher, and the
check of what SQS deleted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from airflow.providers.common.compat.sdk import AirflowException

from audio_pipeline.batch_watcher import BatchWatcher
from audio_pipeline.batches import read_manifest
from audio_pipeline.hooks.shared_loader import SharedLoaderAwsHook
from audio_pipeline.hooks.status_table import StatusTableHook


class _Log(Protocol):
    def warning(self, msg: Any, /, *args: Any) -> Any: ...


def build_batch_watcher(
    *,
    manifest: str,
    status_table: str,
    fallback_deadline: float,
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
        StatusTableHook(status_table=status_table, **aws).table,
        s3,
        read_manifest(s3, manifest),
        fallback_deadline=fallback_deadline,
        refresh_interval_seconds=refresh_interval_seconds,
        reconcile_interval_seconds=reconcile_interval_seconds,
    )
    watcher.refresh()
    return watcher


def check_deleted(response: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], log: _Log) -> None:
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
