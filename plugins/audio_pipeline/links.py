"""Links from a batch's tasks to the AWS console: the endpoint, and where its transcripts go."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

from audio_pipeline.s3_uris import split_s3_uri

if TYPE_CHECKING:
    from airflow.models import BaseOperator
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook
    from airflow.sdk import Context


class SageMakerEndpointLink(BaseAwsLink):
    """The asynchronous inference endpoint's page in the SageMaker console."""

    name = "SageMaker endpoint"
    key = "audio_pipeline_sagemaker_endpoint"
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/endpoints/{endpoint_name}"


class S3OutputPrefixLink(BaseAwsLink):
    """The folder of the output bucket the endpoint writes the batch's transcripts to, in the S3 console."""

    name = "Batch output in S3"
    key = "audio_pipeline_s3_output_prefix"
    format_str = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"


def persist_batch_links(
    context: Context,
    operator: BaseOperator,
    hook: AwsGenericHook[Any],
    endpoint_name: str | None,
    output_path: str | None,
) -> None:
    """Store what both links need (an XCom per link, as the Amazon provider's links do); the
    region and partition are those of ``hook``'s client, a hook on the task's connection."""
    region, partition = hook.conn_region_name, hook.conn_partition
    if endpoint_name:
        SageMakerEndpointLink.persist(context, operator, region, partition, endpoint_name=quote(endpoint_name, safe=""))
    if output_path:
        bucket, prefix = split_s3_uri(output_path)
        S3OutputPrefixLink.persist(context, operator, region, partition, bucket=bucket, prefix=quote(prefix, safe="/"))
