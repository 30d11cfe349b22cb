"""Upload a public English speech dataset to S3 for the pipeline (needs internet; never run by tests).

    python scripts/upload_dataset.py --bucket my-audio --prefix calls/ --max-samples 10

Streams rows from the Hugging Face datasets server (default: the LibriSpeech sample set
``hf-internal-testing/librispeech_asr_dummy``), downloads each clip and uploads it with
boto3, so ``AWS_ENDPOINT_URL`` points it at the local stack as well as at AWS. The
reference transcripts go to ``<prefix>references.json`` (not audio: the DAG skips it).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

ROWS_API = "https://datasets-server.huggingface.co/rows"
PAGE = 100


@dataclass(frozen=True)
class Sample:
    name: str
    audio: bytes
    text: str


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="destination bucket")
    parser.add_argument("--prefix", default="audio-samples/", help="key prefix (a folder; '/' is added)")
    parser.add_argument("--max-samples", type=int, default=10, help="how many clips to upload")
    parser.add_argument("--dataset", default="hf-internal-testing/librispeech_asr_dummy")
    parser.add_argument("--config", default="clean")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--audio-column", default="audio")
    parser.add_argument("--text-column", default="text")
    args = parser.parse_args(argv)
    if args.max_samples < 1:
        parser.error("--max-samples must be at least 1")
    if args.prefix and not args.prefix.endswith("/"):
        args.prefix += "/"
    return args


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def iter_dataset(args: argparse.Namespace) -> Iterator[Sample]:
    """Rows of the dataset, each clip downloaded (network)."""
    offset = 0
    while offset < args.max_samples:
        query = urllib.parse.urlencode(
            {
                "dataset": args.dataset,
                "config": args.config,
                "split": args.split,
                "offset": offset,
                "length": min(PAGE, args.max_samples - offset),
            }
        )
        rows = json.loads(_get(f"{ROWS_API}?{query}"))["rows"]
        if not rows:
            return
        for row in rows:
            cell = row["row"][args.audio_column]
            source = cell[0] if isinstance(cell, list) else cell
            extension = mimetypes.guess_extension(source.get("type", "audio/wav")) or ".wav"
            yield Sample(
                f"{row['row_idx']:06d}{extension}", _get(source["src"]), str(row["row"].get(args.text_column, ""))
            )
        offset += len(rows)


def upload_samples(s3: Any, samples: Iterable[Sample], bucket: str, prefix: str, max_samples: int) -> list[str]:
    keys, references = [], {}
    for sample in samples:
        if len(keys) >= max_samples:
            break
        key = prefix + sample.name
        s3.put_object(Bucket=bucket, Key=key, Body=sample.audio)
        keys.append(key)
        references[sample.name] = sample.text
        print(f"uploaded s3://{bucket}/{key} ({len(sample.audio)} bytes)")
    s3.put_object(Bucket=bucket, Key=f"{prefix}references.json", Body=json.dumps(references, indent=1).encode())
    return keys


def main(argv: list[str] | None = None) -> None:
    import boto3

    args = parse_args(argv)
    keys = upload_samples(boto3.client("s3"), iter_dataset(args), args.bucket, args.prefix, args.max_samples)
    print(
        f"{len(keys)} clips under s3://{args.bucket}/{args.prefix}; trigger audio_transcription with "
        f'{{"bucket_uri": "s3://{args.bucket}/{args.prefix}"}}'
    )


if __name__ == "__main__":
    main()
