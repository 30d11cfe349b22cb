"""The console links of a batch's submit and sensor tasks."""

from __future__ import annotations

import pytest

from audio_pipeline.links import S3OutputPrefixLink, SageMakerEndpointLink
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from audio_pipeline.sensors.transcription_batch import TranscriptionBatchSensor


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


@pytest.mark.parametrize("operator", [SubmitTranscriptionBatchOperator, TranscriptionBatchSensor])
def test_submit_and_sensor_carry_both_links(operator):
    assert {type(link) for link in operator.operator_extra_links} == {SageMakerEndpointLink, S3OutputPrefixLink}
    assert {"endpoint_name", "output_path"} <= set(operator.template_fields)
