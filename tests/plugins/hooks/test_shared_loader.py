from __future__ import annotations

from audio_pipeline.hooks.shared_loader import LOADER, SharedLoaderAwsHook
from audio_pipeline.hooks.status_table import StatusTableHook


def test_blocking_clients_of_many_hooks_share_one_parsed_service_model(aws, s3):
    hooks = [SharedLoaderAwsHook(client_type="s3") for _ in range(2)] + [StatusTableHook(status_table="t")]
    loaders = {id(h.get_session()._session.get_component("data_loader")) for h in hooks}
    assert loaders == {id(LOADER)}
    clients = [h.conn for h in hooks[:2]]
    assert clients[0] is not clients[1], "each hook keeps its own client, from its own connection"
    assert "audio-in" in {b["Name"] for b in clients[1].list_buckets()["Buckets"]}


def test_the_session_takes_the_hooks_region_and_the_connections_credentials(aws, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KEYED",
        '{"conn_type": "aws", "login": "AKIAKEYED", "password": "secret", "extra": {"region_name": "eu-west-2"}}',
    )
    keyed = SharedLoaderAwsHook(aws_conn_id="keyed", client_type="s3")
    assert keyed.conn.meta.region_name == "eu-west-2"
    assert keyed.get_session().get_credentials().access_key == "AKIAKEYED"
    assert SharedLoaderAwsHook(
        aws_conn_id="keyed", client_type="s3", region_name="us-west-1"
    ).conn.meta.region_name == ("us-west-1")
    assert SharedLoaderAwsHook(aws_conn_id=None, client_type="s3").conn.meta.region_name == "us-east-1"
