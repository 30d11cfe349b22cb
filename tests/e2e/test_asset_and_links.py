"""What the run leaves for other DAGs and for people: the run manifests' Asset event, which
runs the example consumer DAG (tests/e2e/dags), and the batch tasks' console links."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import CONSUMER_DAG_ID

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_report_run_emits_an_asset_event_for_the_run_manifest(outcome):
    events = outcome["api"].asset_events(source_dag_id="audio_transcription", source_run_id=outcome["run_id"])
    assert len(events) == 1, events
    (event,) = events
    assert event["uri"] == "s3://audio-transcription-output/runs" and event["source_task_id"] == "report_run"
    manifest = f"s3://audio-transcription-output/runs/{outcome['run_id']}/manifest.json"
    assert event["extra"]["manifest"] == manifest
    assert event["extra"]["counts"] == {"summarized": 5, "failed": 1}


def test_the_event_runs_the_consumer_dag_which_reads_the_manifest(outcome):
    api, manifest = outcome["api"], f"runs/{outcome['run_id']}/manifest.json"
    deadline = time.monotonic() + 180
    while True:
        done = [r for r in api.dag_runs(CONSUMER_DAG_ID) if r["state"] == "success"]
        logs = [api.task_log(r["dag_run_id"], "list_new_summaries", dag_id=CONSUMER_DAG_ID) for r in done]
        mine = [log for log in logs if manifest in log]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert mine, f"no successful {CONSUMER_DAG_ID} run read {manifest}: {api.dag_runs(CONSUMER_DAG_ID)}"
    summaries = {r.uri: r for r in outcome["rows"].values() if r.status == "summarized"}
    assert mine[0].count("new summary: s3://audio-transcription-output/transcripts/") >= len(summaries)


@pytest.mark.parametrize("task_id", ["transcribe.submit", "transcribe.await_transcripts"])
def test_batch_tasks_link_to_the_endpoint_and_the_output_prefix_in_the_console(outcome, task_id):
    links = outcome["api"].extra_links(outcome["run_id"], task_id, map_index=0)
    assert links == {
        "SageMaker endpoint": "https://console.aws.amazon.com/sagemaker/home?region=us-east-1"
        "#/endpoints/audio-transcription-async",
        "Batch output in S3": "https://console.aws.amazon.com/s3/buckets/audio-transcription-output"
        "?region=us-east-1&prefix=transcripts/",
    }
