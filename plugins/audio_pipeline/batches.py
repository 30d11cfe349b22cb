"""Batches by reference: claimed files go to S3 manifests, only small references travel in XCom."""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypedDict

from audio_pipeline.s3_uris import split_s3_uri

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client


class BatchRef(TypedDict):
    """What one mapped task instance receives: a label for the UI and where its files are."""

    label: str
    manifest: str
    files: int


class ClaimedFile(TypedDict):
    uri: str
    etag: str
    size: int
    inference_id: str


def plan_batch_sizes(total: int, batch_size: int, max_batches: int) -> list[int]:
    """Split ``total`` files into batches of ``batch_size``, growing them to stay within ``max_batches``."""
    if total <= 0:
        return []
    if batch_size < 1 or max_batches < 1:
        raise ValueError(f"batch_size ({batch_size}) and max_batches ({max_batches}) must be at least 1")
    count = min(math.ceil(total / batch_size), max_batches)
    base, extra = divmod(total, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


SPOOL_BYTES = 8 * 1024 * 1024
"""Claimed files held in memory before :class:`ClaimSpool` moves them to a temporary file."""


class ClaimSpool:
    """Claimed files in the order claimed, one JSON line each, on disk past :data:`SPOOL_BYTES`:
    a claim of any size holds one lookup chunk in memory, not every file."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(SPOOL_BYTES)  # noqa: SIM115 (closed by __exit__)
        self.count = 0

    def add(self, f: ClaimedFile) -> None:
        self._file.write(json.dumps(f).encode() + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[ClaimedFile]:
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)

    def __enter__(self) -> ClaimSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


class BatchManifests:
    """Writes and reads one run's batch manifests (JSON objects in S3)."""

    def __init__(self, s3_client: S3Client, bucket: str, run_prefix: str) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.run_prefix = run_prefix

    def write(self, files: Iterable[ClaimedFile], total: int, batch_size: int, max_batches: int) -> list[BatchRef]:
        """Write ``files`` (``total`` of them, read once in order) as batch manifests; their references."""
        sizes = plan_batch_sizes(total, batch_size, max_batches)
        width = len(str(len(sizes)))
        refs: list[BatchRef] = []
        iterator = iter(files)
        for index, size in enumerate(sizes, start=1):
            label = f"batch {index:0{width}d} of {len(sizes)}"
            key = f"{self.run_prefix}batches/{index:0{width}d}.json"
            body = {"label": label, "files": list(itertools.islice(iterator, size))}
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json"
            )
            refs.append(BatchRef(label=label, manifest=f"s3://{self.bucket}/{key}", files=size))
        return refs


def read_manifest(s3_client: S3Client, manifest_uri: str) -> list[ClaimedFile]:
    bucket, key = split_s3_uri(manifest_uri)
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    files: list[ClaimedFile] = json.loads(body)["files"]
    return files
