"""Paged listing of a bucket URI, and the audio filter."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import botocore.session
from botocore.exceptions import ClientError

from audio_pipeline.config import MAX_ASYNC_PAYLOAD_BYTES, UnusableInputError
from audio_pipeline.s3_uris import BucketUriError, S3Location

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

_EXAMPLES_PER_REASON = 5


class BucketAccessError(UnusableInputError, PermissionError):
    """The role of the AWS connection may not read the bucket."""


@dataclass(frozen=True)
class AudioObject:
    bucket: str
    key: str
    etag: str
    size: int
    skip_reason: str | None = None
    """Why the endpoint cannot take this audio file (recorded ``skipped``), or None."""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class ListingReport:
    """What the listing saw and why objects were left out."""

    objects: int = 0
    audio: int = 0
    """Objects with an audio extension, those the endpoint cannot take included."""
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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _not_audio(key: str, extensions: frozenset[str]) -> str | None:
    """Why an object is no audio file of the run at all, or None."""
    if key.endswith("/"):
        return "folder marker"
    name = key.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in extensions:
        return "not an audio extension"
    return None


def _unsendable(bucket: str, key: str, size: int, pin_overhead: int) -> str | None:
    """Why the endpoint cannot take an audio file, or None."""
    if _CONTROL.search(key):
        return "control characters in the key (InvokeEndpointAsync's InputLocation header cannot carry them)"
    if size == 0:
        return "zero bytes"
    if size > MAX_ASYNC_PAYLOAD_BYTES:
        return "over the 1 GB asynchronous inference limit"
    limit = input_location_limit() - pin_overhead  # the copy that is sent has the longer name
    if len(f"s3://{bucket}/{key}".encode()) > limit:  # bytes: the most the header's length can be
        return (
            f"s3:// URI over {limit} bytes: the copy sent is named {pin_overhead} bytes longer, over the "
            f"{input_location_limit()} characters InvokeEndpointAsync accepts as InputLocation"
        )
    return None


def iter_audio_objects(
    s3_client: S3Client, location: S3Location, extensions: frozenset[str], report: ListingReport, pin_overhead: int
) -> Iterator[AudioObject]:
    """Yield the audio objects under ``location``, every page of ``ListObjectsV2``; those the
    endpoint cannot take carry their ``skip_reason`` (``pin_overhead``: how much longer the name
    of the copy sent is, :func:`audio_pipeline.pinning.pin_overhead`)."""
    paginator = s3_client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
            for obj in page.get("Contents", []):
                report.objects += 1
                reason = _not_audio(obj["Key"], extensions)
                if reason:
                    report.skip(reason, obj["Key"])
                    continue
                report.audio += 1
                unsendable = _unsendable(location.bucket, obj["Key"], obj["Size"], pin_overhead)
                if unsendable:
                    report.skip(unsendable, obj["Key"])
                yield AudioObject(location.bucket, obj["Key"], obj["ETag"].strip('"'), obj["Size"], unsendable)
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
