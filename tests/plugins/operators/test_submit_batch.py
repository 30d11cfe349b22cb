from __future__ import annotations

from audio_pipeline.links import S3OutputPrefixLink, SageMakerEndpointLink
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from tests.plugins.conftest import CONFIG


def submit_operator(ref):
    return SubmitTranscriptionBatchOperator(
        task_id="submit",
        batch=ref,
        endpoint_name="audio-transcription-async",
        status_table=CONFIG.status_table,
        request_ttl_seconds=600,
        invocation_timeout_seconds=60,
        result_grace_seconds=30,
        output_path=CONFIG.output_path,
    )


def test_operator_submits_the_batch(batch, runtime, table):
    files, ref = batch
    result = submit_operator(ref).execute({})
    assert result == {"submitted": 3, "failed": 0, "already_done": 0}
    assert [c["InputLocation"] for c in runtime.calls] == [f["uri"] for f in files]
    assert {c["ContentType"] for c in runtime.calls} == {"audio/flac"}
    assert {i["status"] for i in table.get_many(f["uri"] for f in files).values()} == {"submitted"}


def test_operator_template_fields():
    assert {"batch", "endpoint_name", "status_table", "aws_conn_id"} <= set(
        SubmitTranscriptionBatchOperator.template_fields
    )


class RecordingTaskInstance:
    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


def links_of(ti):
    return {cls.name: cls().format_link(**ti.xcom[cls.key]) for cls in (SageMakerEndpointLink, S3OutputPrefixLink)}


def test_submit_stores_the_links_of_its_endpoint_and_output_prefix(batch, runtime):
    _, ref = batch
    ti = RecordingTaskInstance()
    submit_operator(ref).execute({"ti": ti})
    assert links_of(ti) == {
        "SageMaker endpoint": "https://console.aws.amazon.com/sagemaker/home?region=us-east-1"
        "#/endpoints/audio-transcription-async",
        "Batch output in S3": f"https://console.aws.amazon.com/s3/buckets/{CONFIG.output_bucket}"
        "?region=us-east-1&prefix=transcripts/",
    }
