"""Links from a batch's tasks to the AWS console: the endpoint, and where its transcripts go."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

from audio_pipeline.s3_uris import split_s3_uri

if TYPE_CHECKING:
    from airflow.models import BaseOperator
    from airflow.providers.common.compat.sdk import TaskInstanceKey


class BatchConsoleLink(BaseAwsLink):
    """A console link of a batch task, built from the task itself when it finishes.

    Airflow stores what ``get_link`` returns as the task instance's link (the XCom
    ``_link_<class name>``, which is what the UI shows), so unlike the Amazon provider's links
    these store no XCom of their own to build it from: that was two XComs per link, the same
    values for every one of a run's up to 128 batch tasks. The region and partition are those
    of the task's hook, on its connection.
    """

    def fields(self, operator: Any) -> dict[str, str] | None:
        """The format fields the task gives, or None when it gives none (no link): a task that
        failed before its templates were rendered holds no string to link to."""
        raise NotImplementedError

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        fields = self.fields(operator)
        if not fields:
            return ""
        hook = operator.hook  # type: ignore[attr-defined]
        domain = self.get_aws_domain(hook.conn_partition)
        return self.format_link(region_name=hook.conn_region_name, aws_domain=domain, **fields)


class SageMakerEndpointLink(BatchConsoleLink):
    """The asynchronous inference endpoint's page in the SageMaker console."""

    name = "SageMaker endpoint"
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/endpoints/{endpoint_name}"

    def fields(self, operator: Any) -> dict[str, str] | None:
        name = getattr(operator, "endpoint_name", None)
        return {"endpoint_name": quote(name, safe="")} if isinstance(name, str) and name else None


class S3OutputPrefixLink(BatchConsoleLink):
    """The folder of the output bucket the endpoint writes the batch's transcripts to, in the S3 console."""

    name = "Batch output in S3"
    format_str = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"

    def fields(self, operator: Any) -> dict[str, str] | None:
        path = getattr(operator, "output_path", None)
        if not isinstance(path, str) or not path:
            return None
        bucket, prefix = split_s3_uri(path)
        return {"bucket": bucket, "prefix": quote(prefix, safe="/")}
