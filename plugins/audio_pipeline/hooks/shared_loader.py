"""An AWS hook whose boto3 sessions share one botocore loader, so service models are parsed once."""

from __future__ import annotations

import boto3
import botocore.loaders
import botocore.session
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook, BaseSessionFactory, SessionFactory
from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

LOADER = botocore.loaders.Loader()
"""One loader for the process: the service models it has parsed are reused by every session."""


class SharedLoaderAwsHook(AwsBaseHook):
    """
    An ``AwsBaseHook`` whose blocking boto3 sessions share one botocore loader.

    Every new boto3 session parses again the service models its clients use (about 10 MB of
    Python objects for S3 alone), and a triggerer runs many batch triggers, each with sessions
    of its own. The provider shares one loader between its aiobotocore sessions for the same
    reason; this does the same for blocking clients. Credentials, region and endpoint still
    come from each hook's own connection.

    A blocking session of a connection that assumes no role is built as the provider builds it
    (``boto3.session.Session`` with the connection's session arguments), on a botocore session
    given :data:`LOADER`. Sessions that assume a role, aiobotocore sessions, and every session
    when Airflow's ``[aws] session_factory`` names a factory of the user's are the provider's.

    Additional arguments (such as ``aws_conn_id`` and ``client_type``) are passed down to
    the underlying AwsBaseHook.
    """

    def get_session(self, region_name: str | None = None, deferrable: bool = False) -> boto3.session.Session:
        if deferrable or self.conn_config.role_arn or SessionFactory is not BaseSessionFactory:
            return super().get_session(region_name=region_name, deferrable=deferrable)
        conn = AwsConnectionWrapper(conn=self.conn_config, region_name=region_name, botocore_config=self.config)
        botocore_session = botocore.session.get_session()
        botocore_session.register_component("data_loader", LOADER)
        return boto3.session.Session(botocore_session=botocore_session, **conn.session_kwargs)
