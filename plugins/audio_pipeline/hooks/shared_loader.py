"""An AWS hook whose boto3 sessions share one botocore loader, so service models are parsed once."""

from __future__ import annotations

import boto3
import botocore.loaders
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

LOADER = botocore.loaders.Loader()
"""One loader for the process: the service models it has parsed are reused by every session."""


class SharedLoaderAwsHook(AwsBaseHook):
    """
    An ``AwsBaseHook`` whose boto3 sessions share one botocore loader.

    Every new boto3 session parses again the service models its clients use (about 10 MB of
    Python objects for S3 alone), so a triggerer running 64 batch triggers, each with
    sessions of its own, held about 1 GB. The provider shares one loader between its
    aiobotocore sessions for the same reason; this does the same for blocking clients.
    Credentials, region and endpoint still come from each hook's own connection.

    Additional arguments (such as ``aws_conn_id`` and ``client_type``) are passed down to
    the underlying AwsBaseHook.
    """

    def get_session(self, region_name: str | None = None, deferrable: bool = False) -> boto3.session.Session:
        session = super().get_session(region_name=region_name, deferrable=deferrable)
        if isinstance(session, boto3.session.Session):
            session._session.register_component("data_loader", LOADER)
        return session
