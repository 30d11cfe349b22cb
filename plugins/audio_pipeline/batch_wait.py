"""What the transcription-batch sensor and its trigger share: the batch's watcher."""

from __future__ import annotations

from typing import Any

from audio_pipeline.batch_watcher import BatchWatcher
from audio_pipeline.batches import read_manifest
from audio_pipeline.hooks.shared_loader import SharedLoaderAwsHook
from audio_pipeline.hooks.status_table import StatusTableHook

WAIT_TIME_SECONDS = 10
"""The long poll of each receive while a batch waits (SQS allows up to 20)."""


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
