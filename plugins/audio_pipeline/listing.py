"""Bucket URI parsing, paged listing, and the audio filter."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.exceptions import ClientError

from audio_pipeline.config import MAX_ASYNC_PAYLOAD_BYTES, UnusableInputError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_EXAMPLES_PER_REASON = 5


class BucketUriError(UnusableInputError, ValueError):
    """The bucket URI given to the run is unusable; the message says exactly why."""


class BucketAccessError(UnusableInputError, PermissionError):
    """The role of the AWS connection may not read the bucket."""


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


def object_exists(s3_client: Any, uri: str) -> bool:
    """Whether the object at ``s3://bucket/key`` exists (``HeadObject``); other errors surface."""
    bucket, key = split_s3_uri(uri)
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


@dataclass(frozen=True)
class AudioObject:
    bucket: str
    key: str
    etag: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class ListingReport:
    """What the listing saw and why objects were left out."""

    objects: int = 0
    audio: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, key: str) -> None:
        self.skipped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _EXAMPLES_PER_REASON:
            examples.append(key)

    def lines(self) -> list[str]:
        out = [f"listed {self.objects} objects: {self.audio} audio files to consider"]
        for reason, count in sorted(self.skipped.items()):
            out.append(f"skipped {count} ({reason}), e.g. {', '.join(self.examples[reason])}")
        return out


@functools.cache
def input_location_limit() -> int:
    """The longest ``InputLocation`` InvokeEndpointAsync accepts (1,024), from botocore's model."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpointAsync").input_shape
    assert shape is not None
    limit: int = shape.members["InputLocation"].metadata["max"]
    return limit


def _skip_reason(bucket: str, key: str, size: int, extensions: frozenset[str]) -> str | None:
    if key.endswith("/"):
        return "folder marker"
    name = key.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in extensions:
        return "not an audio extension"
    if size == 0:
        return "zero bytes"
    if size > MAX_ASYNC_PAYLOAD_BYTES:
        return "over the 1 GB asynchronous inference limit"
    limit = input_location_limit()
    if len(f"s3://{bucket}/{key}".encode()) > limit:  # bytes: the most the header's length can be
        return f"s3:// URI over the {limit} characters InvokeEndpointAsync accepts as InputLocation"
    return None


def iter_audio_objects(
    s3_client: S3Client, location: S3Location, extensions: frozenset[str], report: ListingReport
) -> Iterator[AudioObject]:
    """Yield the audio objects under ``location``, every page of ``ListObjectsV2``."""
    paginator = s3_client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
            for obj in page.get("Contents", []):
                report.objects += 1
                reason = _skip_reason(location.bucket, obj["Key"], obj["Size"], extensions)
                if reason:
                    report.skip(reason, obj["Key"])
                    continue
                report.audio += 1
                yield AudioObject(location.bucket, obj["Key"], obj["ETag"].strip('"'), obj["Size"])
    except ClientError as err:
        raise describe_s3_error(err, location) from err


def describe_s3_error(err: ClientError, location: S3Location) -> Exception:
    """Turn a listing or HeadBucket error into one that names the bucket and the cause."""
    code = str(err.response.get("Error", {}).get("Code"))
    if code in ("NoSuchBucket", "404", "NotFound"):
        return BucketUriError(f"bucket {location.bucket!r} does not exist (bucket_uri {location.uri})")
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return BucketAccessError(
            f"access denied to bucket {location.bucket!r} (bucket_uri {location.uri}): the role of the "
            "aws_default connection needs s3:ListBucket on it and s3:GetObject on its objects"
        )
    return err


def check_bucket(s3_client: S3Client, location: S3Location) -> None:
    """Fail fast, naming the bucket, when it is missing or not readable."""
    try:
        s3_client.head_bucket(Bucket=location.bucket)
    except ClientError as err:
        raise describe_s3_error(err, location) from err
