"""Buckets: the pipeline's outputs and the MWAA environment's code, both private and encrypted."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct


def _private_bucket(scope: Construct, id: str, **kwargs) -> s3.Bucket:
    return s3.Bucket(
        scope,
        id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,  # a failed first create leaves nothing
        **kwargs,
    )


class Storage(Construct):
    """``output``: transcripts, summaries, failures, manifests. ``mwaa``: dags/, plugins.zip, requirements.txt."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        # the server access log bucket (cdk-nag's S1 accepts it unlogged); delivery is granted by
        # bucket policy, not ACL (the serverAccessLogsUseBucketPolicy flag in cdk.json)
        self.access_logs = _private_bucket(self, "AccessLogs")
        self.output = _private_bucket(
            self, "Output", server_access_logs_bucket=self.access_logs, server_access_logs_prefix="output/"
        )
        self.mwaa = _private_bucket(
            self, "Mwaa", server_access_logs_bucket=self.access_logs, server_access_logs_prefix="mwaa/"
        )
