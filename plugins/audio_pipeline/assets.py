"""The Airflow Assets the pipeline updates, for DAGs scheduled on new transcripts."""

from __future__ import annotations

from airflow.sdk import Asset

from audio_pipeline.config import PipelineConfig

_DEFAULTS = PipelineConfig()

RUN_MANIFESTS = Asset(
    name="audio_transcription_run_manifests",
    uri=f"s3://{_DEFAULTS.output_bucket}/{_DEFAULTS.runs_prefix.rstrip('/')}",  # Airflow drops a trailing /
    group="audio_transcription",
)
"""Run manifests (``runs/<run_id>/manifest.json`` in the output bucket): ``report_run`` emits an
event for each run's manifest, whose ``extra`` gives the manifest's URI (in the ``output_bucket``
of the Variable ``audio_pipeline_config``), the run id and the per-status counts."""
