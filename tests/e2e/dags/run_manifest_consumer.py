"""An example downstream DAG: scheduled on the pipeline's run manifests, it reads each new
manifest from S3 and lists the run's summaries (a real consumer would index or forward them)."""

from __future__ import annotations

import json
from typing import Any

import pendulum
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import dag, task

from audio_pipeline.assets import RUN_MANIFESTS


@dag(
    dag_id="run_manifest_consumer",
    schedule=[RUN_MANIFESTS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["audio", "example"],
)
def run_manifest_consumer() -> None:
    @task
    def list_new_summaries(triggering_asset_events: Any = None) -> list[str]:
        summaries = []
        for event in triggering_asset_events[RUN_MANIFESTS]:
            manifest_uri = event.extra["manifest"]
            bucket, key = S3Hook.parse_s3_url(manifest_uri)
            manifest = json.loads(S3Hook(aws_conn_id="aws_default").read_key(key, bucket))
            print(f"{manifest_uri}: run {manifest['run_id']}, {manifest['counts']}")
            summaries += [f["summary_location"] for f in manifest["files"] if f.get("summary_location")]
        for location in summaries:
            print(f"new summary: {location}")
        return summaries

    list_new_summaries()


run_manifest_consumer()
