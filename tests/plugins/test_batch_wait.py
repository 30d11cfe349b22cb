from __future__ import annotations

import time

from audio_pipeline.batch_wait import build_batch_watcher
from audio_pipeline.batches import BatchManifests
from audio_pipeline.ledger import inference_id_for

from .conftest import CONFIG


def test_the_watcher_s_clients_carry_the_botocore_config(s3, ledger):
    uri = "s3://audio-in/calls/0.flac"
    files = [{"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")}]
    assert ledger.claim(files, "run-1", lease_seconds=600).applied == [uri]
    (ref,) = BatchManifests(s3, CONFIG.output_bucket, "runs/run-1/").write(files, len(files), 10, 1)
    watcher = build_batch_watcher(
        manifest=ref["manifest"],
        status_table=CONFIG.status_table,
        fallback_deadline=time.time() + 60,
        output_path=CONFIG.output_path,
        refresh_interval_seconds=30,
        reconcile_interval_seconds=120,
        aws_conn_id=None,
        region_name=None,
        botocore_config={"read_timeout": 7},
    )
    assert watcher.s3.meta.config.read_timeout == 7
    assert watcher.ledger.store.client.meta.config.read_timeout == 7
    assert watcher.ledger.table_name == CONFIG.status_table
    assert watcher.output_path == CONFIG.output_path, "a success outside the output path is never recorded"
    assert list(watcher.pending) == [uri]
