"""The DAG's failure notifier: the Amazon provider's ``SnsNotifier``, to the configured operations topic.

The topic's ARN is the setting ``operations_topic_arn`` of the Variable ``audio_pipeline_config``
(``infra/`` writes its operations topic there, the local bootstrap its own), read when a run has
failed, never when the DAG is parsed. Empty: nothing is sent, and the callback's log says so.
Airflow runs a DAG's ``on_failure_callback`` in the DAG processor, synchronously (``notify``).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

from audio_pipeline.config import CONFIG_VARIABLE, PipelineConfig

SUBJECT = "audio pipeline: {{ dag.dag_id }} run failed"
"""SNS subjects: at most 100 ASCII characters, one line (the run id goes in the message)."""
MESSAGE = (
    "Run {{ run_id }} of DAG {{ dag.dag_id }} failed ({{ reason }})."
    "{% if ti is defined %} Last task: {{ ti.task_id }}.{% endif %}"
    " Each task's log is in the Airflow UI (Grid, the run, the task) and in CloudWatch Logs."
)


class OperationsNotifier(SnsNotifier):
    """``SnsNotifier`` whose target is the configured operations topic, or nothing when none is configured."""

    def __init__(self, *, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(aws_conn_id=aws_conn_id, target_arn="", message=MESSAGE, subject=SUBJECT, **kwargs)

    def notify(self, context: Any) -> None:
        topic = PipelineConfig.from_variable().operations_topic_arn
        if not topic:
            self.log.info("no operations_topic_arn in %s: no failure notification sent", CONFIG_VARIABLE)
            return
        self.target_arn = topic
        super().notify(context)  # type: ignore[no-untyped-call]  # the provider leaves it unannotated
        self.log.info("failure notification sent to %s", topic)
