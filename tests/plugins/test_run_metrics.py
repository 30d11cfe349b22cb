"""A run's figures reach CloudWatch under the names infra/'s alarm and dashboard read."""

from __future__ import annotations

import boto3

from audio_pipeline.metrics_names import FILES_FAILED, FILES_SUCCEEDED, NAMESPACE, RUN_DURATION_SECONDS
from audio_pipeline.run_metrics import publish_run_metrics, run_metrics

from .conftest import REGION


def test_transcribed_files_count_as_succeeded_and_failed_ones_as_failed():
    counts = {"summarized": 3, "completed": 1, "failed": 2, "skipped": 4}
    assert run_metrics(counts, 90.5) == {FILES_SUCCEEDED: 4, FILES_FAILED: 2, RUN_DURATION_SECONDS: 90.5}
    assert run_metrics({}, 1)[FILES_FAILED] == 0, "a run with no file fails none: the alarm stays quiet"


def test_published_figures_are_read_back_from_cloudwatch(aws):
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    publish_run_metrics(cloudwatch, run_metrics({"summarized": 5, "failed": 1}, 42))
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in listed} == {FILES_SUCCEEDED, FILES_FAILED, RUN_DURATION_SECONDS}
    assert all(m["Dimensions"] == [{"Name": "Dag", "Value": "audio_transcription"}] for m in listed)
    data = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "failed",
                "MetricStat": {
                    "Metric": {
                        "Namespace": NAMESPACE,
                        "MetricName": FILES_FAILED,
                        "Dimensions": listed[0]["Dimensions"],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime="2000-01-01T00:00:00Z",
        EndTime="2100-01-01T00:00:00Z",
    )["MetricDataResults"][0]
    assert data["Values"] == [1.0]
