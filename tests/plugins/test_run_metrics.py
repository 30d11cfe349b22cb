"""A run's figures reach CloudWatch under the names infra/'s alarm and dashboard read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from audio_pipeline.costs import FileCost, RunCosts
from audio_pipeline.metrics_names import (
    AUDIO_SECONDS,
    ESTIMATED_COST_USD,
    FILES_FAILED,
    FILES_SUCCEEDED,
    NAMESPACE,
    RUN_DURATION_SECONDS,
)
from audio_pipeline.run_metrics import publish_run_metrics, run_metrics
from audio_pipeline.work import FileWork

from .conftest import RATES, REGION


def costs_of(*works: FileWork) -> RunCosts:
    costs = RunCosts(RATES)
    costs.add(FileCost.of(RATES, w, endpoint_counted=True) for w in works)
    return costs


def test_transcribed_files_count_as_succeeded_and_failed_ones_as_failed():
    counts = {"summarized": 3, "completed": 1, "failed": 2, "skipped": 4}
    work = FileWork(audio_seconds=3600, processing_seconds=180, concurrent_requests=1, input_tokens=1000)
    assert run_metrics(counts, 90.5, costs_of(work)) == {
        FILES_SUCCEEDED: 4,
        FILES_FAILED: 2,
        RUN_DURATION_SECONDS: 90.5,
        AUDIO_SECONDS: 3600,
        # ml.g4dn.xlarge at $0.736/h for 180 s, 1,000 input tokens at $0.0011 per 1k
        ESTIMATED_COST_USD: pytest.approx(0.736 * 180 / 3600 + 0.0011),
    }
    assert run_metrics({}, 1, costs_of())[FILES_FAILED] == 0, "a run with no file fails none: the alarm stays quiet"


def test_published_figures_are_read_back_from_cloudwatch(aws):
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    work = FileWork(audio_seconds=60, processing_seconds=6, concurrent_requests=2, input_tokens=100, output_tokens=50)
    publish_run_metrics(cloudwatch, run_metrics({"summarized": 5, "failed": 1}, 42, costs_of(work)))
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in listed} == {
        FILES_SUCCEEDED,
        FILES_FAILED,
        RUN_DURATION_SECONDS,
        AUDIO_SECONDS,
        ESTIMATED_COST_USD,
    }
    assert all(m["Dimensions"] == [{"Name": "Dag", "Value": "audio_transcription"}] for m in listed)

    def values(name: str) -> list[float]:
        query = {
            "Id": "q",
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": listed[0]["Dimensions"]},
                "Period": 60,
                "Stat": "Sum",
            },
        }
        now = datetime.now(UTC)  # an hour either side: moto walks every period of the range
        return cloudwatch.get_metric_data(
            MetricDataQueries=[query], StartTime=now - timedelta(hours=1), EndTime=now + timedelta(hours=1)
        )["MetricDataResults"][0]["Values"]

    assert values(FILES_FAILED) == [1.0]
    assert values(AUDIO_SECONDS) == [60.0]
    expected = 0.736 * 6 / 3600 / 2 + (100 * 0.0011 + 50 * 0.0055) / 1000
    assert values(ESTIMATED_COST_USD) == [pytest.approx(expected, abs=1e-6)]
