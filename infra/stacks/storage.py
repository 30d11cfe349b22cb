"""Buckets: the pipeline's outputs, the MWAA environment's code and their access logs, all private and encrypted.

Each bucket's removal policy is chosen for the rollback of a failed first create, when
CloudFormation deletes what it created and ``DeleteBucket`` fails on a bucket that still holds
an object version (the stack then ends in ROLLBACK_FAILED, and the next deploy fails too):

- ``output``: RetainExceptOnCreate. Only a run writes to it, and a run stops in its first task
  while the endpoint is missing or not InService, so a rolled-back first create finds it empty
  and deletes it; afterwards it keeps the results.
- ``mwaa``: deleted, emptied first. BucketDeployment keeps what it uploaded when it is deleted
  (``retain_on_delete`` defaults to true), and every deploy uploads dags/, plugins.zip and
  requirements.txt again, so CDK's auto-delete custom resource removes every version.
- ``access_logs``: Retain. S3 delivers server access logs minutes to hours after the requests
  (the code upload's among them), so the bucket may hold logs when a rollback reaches it; kept,
  it never blocks one, and its generated name lets the next deploy create a new bucket.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct


def _private_bucket(scope: Construct, id: str, *, removal_policy: RemovalPolicy, **kwargs) -> s3.Bucket:
    return s3.Bucket(
        scope,
        id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        removal_policy=removal_policy,
        **kwargs,
    )


class Storage(Construct):
    """``output``: transcripts, summaries, failures, manifests, and under ``inputs_prefix`` the copies
    sent to the endpoint (expired after 2 days: a request waits at most RequestTTLSeconds, 6 h).
    ``mwaa``: dags/, plugins.zip, requirements.txt."""

    def __init__(self, scope: Construct, id: str, *, inputs_prefix: str) -> None:
        super().__init__(scope, id)
        # the server access log bucket (cdk-nag's S1 accepts it unlogged); delivery is granted by
        # bucket policy, not ACL (the serverAccessLogsUseBucketPolicy flag in cdk.json)
        self.access_logs = _private_bucket(self, "AccessLogs", removal_policy=RemovalPolicy.RETAIN)
        self.output = _private_bucket(
            self,
            "Output",
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="output/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireSentCopies",
                    prefix=inputs_prefix,
                    expiration=Duration.days(2),
                    noncurrent_version_expiration=Duration.days(1),
                )
            ],
        )
        self.mwaa = _private_bucket(
            self,
            "Mwaa",
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="mwaa/",
        )
