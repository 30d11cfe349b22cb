"""Pinning the file version sent to the endpoint: a copy of exactly the ETag that was claimed.

An object may be overwritten while its request waits in the endpoint's queue (up to
``RequestTTLSeconds``). The endpoint reads its input when it gets to it, so it is sent a copy made
with ``CopySourceIfMatch`` (the claimed ETag, or no copy at all): its transcript always belongs to
the ETag the status table records. The copy's key names its claim and its source::

    <inputs path><inference id>/<source bucket>/<source key>

so a notification's ``inputLocation`` still names the file it is for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.s3_uris import split_s3_uri

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

_SCHEME = "s3://"
INFERENCE_ID_CHARS = 40
"""Length of the claims' inference ids (:func:`audio_pipeline.ledger.inference_id_for`)."""


class VersionGoneError(Exception):
    """The claimed version is no longer the object's (overwritten or deleted since it was listed)."""


def pinned_location(inputs_path: str, inference_id: str, uri: str) -> str:
    """Where the copy of ``uri`` for the claim ``inference_id`` goes."""
    return f"{inputs_path}{inference_id}/{uri.removeprefix(_SCHEME)}"


def pin_overhead(inputs_path: str) -> int:
    """How many bytes longer a pinned location is than its source's ``s3://bucket/key``."""
    return len(pinned_location(inputs_path, "0" * INFERENCE_ID_CHARS, _SCHEME).encode()) - len(_SCHEME)


def source_of(input_location: str, inference_id: str) -> str | None:
    """The ``s3://bucket/key`` a pinned location of claim ``inference_id`` was copied from, or None."""
    _, found, source = input_location.partition(f"/{inference_id}/")
    return f"{_SCHEME}{source}" if found and source else None


def pin(s3_client: S3Client, f: ClaimedFile, inputs_path: str) -> str:
    """Copy the claimed version of ``f`` to its pinned location; returns that location.

    Raises :class:`VersionGoneError` when the object no longer has the claimed ETag.
    """
    source_bucket, source_key = split_s3_uri(f["uri"])
    location = pinned_location(inputs_path, f["inference_id"], f["uri"])
    bucket, key = split_s3_uri(location)
    try:
        s3_client.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": source_bucket, "Key": source_key},
            CopySourceIfMatch=f'"{f["etag"]}"',
        )
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code"))
        if code in ("PreconditionFailed", "412"):
            raise VersionGoneError(
                f"the object changed since it was listed (ETag {f['etag']} is gone); the next run transcribes "
                "its new version"
            ) from err
        if code in ("NoSuchKey", "404"):
            raise VersionGoneError("the object was deleted since it was listed") from err
        raise
    return location
