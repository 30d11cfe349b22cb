"""Publishing a run's figures to CloudWatch, under the names of :mod:`audio_pipeline.metrics_names`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from audio_pipeline.costs import RunCosts
from audio_pipeline.ledger import Status
from audio_pipeline.metrics_names import (
    AUDIO_SECONDS,
    ESTIMATED_COST_USD,
    FILES_FAILED,
    FILES_SUCCEEDED,
    NAMESPACE,
    RUN_DURATION_SECONDS,
    UNITS,
    dimensions,
)

if TYPE_CHECKING:
    from types_boto3_cloudwatch import CloudWatchClient

SUCCEEDED = (Status.COMPLETED, Status.SUMMARIZED)


def run_metrics(counts: Mapping[str, int], duration_seconds: float, costs: RunCosts) -> dict[str, float]:
    """A run's figures by metric name: files that ended transcribed, files that ended failed, its
    duration, the audio it transcribed and its estimated cost."""
    return {
        FILES_SUCCEEDED: sum(counts.get(s, 0) for s in SUCCEEDED),
        FILES_FAILED: counts.get(Status.FAILED, 0),
        RUN_DURATION_SECONDS: duration_seconds,
        AUDIO_SECONDS: costs.audio_seconds,
        ESTIMATED_COST_USD: round(costs.usd, 6),
    }


def publish_run_metrics(cloudwatch: CloudWatchClient, metrics: Mapping[str, float]) -> None:
    """One ``PutMetricData`` of one datum per metric (the infra's alarm fires on any ``FilesFailed``)."""
    data: list[Any] = [
        {"MetricName": name, "Value": float(value), "Unit": UNITS[name], "Dimensions": dimensions()}
        for name, value in metrics.items()
    ]
    cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data)
