"""S3 URIs: the run's ``s3://bucket/prefix/`` parsed and checked, and ``s3://bucket/key`` split."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from audio_pipeline.config import UnusableInputError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class BucketUriError(UnusableInputError, ValueError):
    """The bucket URI given to the run is unusable; the message says exactly why."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_bucket_uri(value: Any) -> S3Location:
    """Parse ``s3://bucket/prefix/``; a prefix without a trailing slash is taken as a folder."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BucketUriError(
            'no bucket URI: trigger the DAG with conf {"bucket_uri": "s3://bucket/prefix/"} '
            "or set schedule_bucket_uri in the Airflow Variable audio_pipeline_config for scheduled runs"
        )
    if not isinstance(value, str):
        raise BucketUriError(f"bucket_uri must be a string like s3://bucket/prefix/, got {type(value).__name__}")
    text = value.strip()
    if not text.startswith("s3://"):
        raise BucketUriError(f"bucket_uri {value!r} must start with s3:// (like s3://bucket/prefix/)")
    bucket, _, prefix = text[len("s3://") :].partition("/")
    if not bucket:
        raise BucketUriError(f"bucket_uri {value!r} names no bucket (expected s3://bucket/prefix/)")
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise BucketUriError(
            f"bucket_uri {value!r}: {bucket!r} is not a valid S3 bucket name "
            "(3-63 characters: lowercase letters, digits, dots and hyphens)"
        )
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Location(bucket=bucket, prefix=prefix)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    if not uri.startswith("s3://") or "/" not in uri[len("s3://") :]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def object_exists(s3_client: S3Client, uri: str) -> bool:
    """Whether the object at ``s3://bucket/key`` exists (``HeadObject``); other errors surface."""
    bucket, key = split_s3_uri(uri)
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
