from __future__ import annotations

from audio_pipeline.hooks.status_table import StatusTableHook


def test_the_status_table_is_on_a_dynamodb_client(aws):
    ledger = StatusTableHook(status_table="t").ledger
    assert ledger.store.client.meta.service_model.service_name == "dynamodb" and ledger.table_name == "t"
