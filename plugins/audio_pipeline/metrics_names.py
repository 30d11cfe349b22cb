"""The CloudWatch metrics a run publishes: namespace, names, units and dimension, written once.

``report_run`` publishes one datum of each per run (``PutMetricData``); ``infra/`` alarms on
``FilesFailed`` and graphs all of them on the dashboard. Both import these names from here, so the
alarm and the publisher cannot drift apart. Nothing here imports Airflow or boto3.
"""

from __future__ import annotations

NAMESPACE = "AudioPipeline"
"""A custom namespace (CloudWatch reserves ``AWS/`` for AWS's own)."""
DIMENSION = "Dag"
"""The one dimension of every datum: the DAG's id."""
DAG_ID = "audio_transcription"
"""The value of ``Dag`` for this pipeline's DAG (dags/audio_transcription.py)."""

FILES_SUCCEEDED = "FilesSucceeded"
"""Files of the run that ended transcribed (summarised or not)."""
FILES_FAILED = "FilesFailed"
"""Files of the run that ended failed: the alarm fires on any."""
RUN_DURATION_SECONDS = "RunDurationSeconds"
"""From the run's start to its report."""
ESTIMATED_COST_USD = "EstimatedCostUSD"
"""The run's estimated cost (endpoint time and Bedrock tokens at the price table's rates): an estimate."""
AUDIO_SECONDS = "AudioSeconds"
"""Seconds of audio the run transcribed (the model server's figures)."""

UNITS: dict[str, str] = {
    FILES_SUCCEEDED: "Count",
    FILES_FAILED: "Count",
    RUN_DURATION_SECONDS: "Seconds",
    ESTIMATED_COST_USD: "None",
    AUDIO_SECONDS: "Seconds",
}
"""``PutMetricData``'s ``Unit`` of each metric (CloudWatch has no currency unit)."""


def dimensions(dag_id: str = DAG_ID) -> list[dict[str, str]]:
    """``PutMetricData``'s ``Dimensions`` for a datum of ``dag_id``."""
    return [{"Name": DIMENSION, "Value": dag_id}]
