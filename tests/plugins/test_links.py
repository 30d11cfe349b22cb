"""The console links of a batch's submit and sensor tasks."""

from __future__ import annotations

import pytest

from audio_pipeline.links import S3OutputPrefixLink, SageMakerEndpointLink
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from audio_pipeline.sensors.transcription_batch import TranscriptionBatchSensor
from tests.plugins.operators.test_submit_batch import pinned_batch, submit_operator

BATCH_TASKS = [SubmitTranscriptionBatchOperator, TranscriptionBatchSensor]


def batch_task(operator, **kwargs):
    common = {"task_id": "t", "batch": {"label": "batch 1 of 1", "manifest": "s3://m/1.json", "files": 1}}
    if operator is TranscriptionBatchSensor:
        return operator(**common, status_table="t", notification_queue="q", **kwargs)
    return operator(**common, status_table="t", **{"endpoint_name": None, "inputs_path": "s3://m/inputs/", **kwargs})


def links_of(task):
    """What Airflow stores as the task instance's links when the task finishes."""
    return {link.name: link.get_link(task, ti_key=None) for link in task.operator_extra_links}


def test_link_urls():
    where = {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com"}
    assert (
        SageMakerEndpointLink().format_link(**where, endpoint_name="asr-async")
        == "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/endpoints/asr-async"
    )
    assert (
        S3OutputPrefixLink().format_link(**where, bucket="out", prefix="transcripts/")
        == "https://console.aws.amazon.com/s3/buckets/out?region=eu-west-1&prefix=transcripts/"
    )


@pytest.mark.parametrize("operator", BATCH_TASKS)
def test_submit_and_sensor_carry_both_links(operator):
    assert {type(link) for link in operator.operator_extra_links} == {SageMakerEndpointLink, S3OutputPrefixLink}
    assert {"endpoint_name", "output_path"} <= set(operator.template_fields)


@pytest.mark.parametrize("operator", BATCH_TASKS)
def test_links_come_from_the_task_and_its_connection_s_region(operator):
    """Built as the task finishes, a deferred sensor's in a new process that never ran ``execute``."""
    task = batch_task(
        operator, endpoint_name="asr-async", output_path="s3://out-bucket/transcripts/", region_name="eu-west-1"
    )
    assert links_of(task) == {
        "SageMaker endpoint": "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/endpoints/asr-async",
        "Batch output in S3": "https://console.aws.amazon.com/s3/buckets/out-bucket?region=eu-west-1"
        "&prefix=transcripts/",
    }


def test_links_follow_the_region_s_partition():
    task = batch_task(TranscriptionBatchSensor, endpoint_name="asr-async", region_name="cn-north-1")
    assert links_of(task)["SageMaker endpoint"] == (
        "https://console.amazonaws.cn/sagemaker/home?region=cn-north-1#/endpoints/asr-async"
    )


def test_the_output_prefix_is_quoted_and_the_bucket_named():
    task = batch_task(TranscriptionBatchSensor, output_path="s3://out/spoken word/2026?/", region_name="us-east-1")
    assert links_of(task)["Batch output in S3"] == (
        "https://console.aws.amazon.com/s3/buckets/out?region=us-east-1&prefix=spoken%20word/2026%3F/"
    )


@pytest.mark.parametrize("operator", BATCH_TASKS)
def test_a_task_not_given_the_endpoint_or_output_path_has_empty_links(operator):
    assert set(links_of(batch_task(operator)).values()) == {""}


class RecordingTaskInstance:
    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


@pytest.fixture
def batch(s3, ledger):
    return pinned_batch(s3, ledger)


def test_a_batch_task_pushes_no_xcom_to_build_its_links_from(batch, runtime):
    """A run has up to 128 batch tasks: each stores its two links (Airflow's ``_link_`` XComs) and nothing more."""
    _, ref = batch
    ti = RecordingTaskInstance()
    assert submit_operator(ref).execute({"ti": ti, "run_id": "run-1"})["submitted"] == 3
    assert ti.xcom == {}
