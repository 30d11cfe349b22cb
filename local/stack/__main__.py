"""``python -m local.stack up|down|status|demo [--audio-dir DIR] [--report FILE] [--timeout S]``, and
``python -m local.stack upload [--audio-dir DIR] --to s3://bucket/prefix/`` in a shell that sourced
``.local/stack.env``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import boto3

from audio_pipeline.s3_uris import parse_bucket_uri
from local.bootstrap import INPUT_BUCKET
from local.stack.airflow_api import AirflowApi
from local.stack.demo import SAMPLES, run_demo, upload
from local.stack.launcher import Stack
from local.stack.services import Settings

log = logging.getLogger("local.stack")


def demo(stack: Stack, audio_dir: Path, report: Path | None, timeout: float) -> int:
    owned = not stack.running()
    try:
        if owned:
            bucket = stack.up().input_bucket
        else:
            log.info("using the stack that already runs")
            bucket = INPUT_BUCKET
        api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
        logs = stack.settings.airflow_home / "logs"
        return run_demo(stack.aws_session(), api, bucket, audio_dir, report, timeout, f"logs under {logs}")
    finally:
        if owned:
            stack.down()


def upload_to(audio_dir: Path, uri: str) -> list[str]:
    """Upload ``audio_dir`` to ``s3://bucket/prefix/`` on the AWS the environment names: only a local
    stack's (``AWS_ENDPOINT_URL``, which ``.local/stack.env`` exports), never an account's."""
    if not os.environ.get("AWS_ENDPOINT_URL"):
        raise SystemExit("upload: no AWS_ENDPOINT_URL: `source .local/stack.env` first (it uploads to the local stack)")
    location = parse_bucket_uri(uri)
    keys = upload(boto3.client("s3"), audio_dir, location.bucket, location.prefix)
    for key in keys:
        print(f"s3://{location.bucket}/{key}")
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack")
    parser.add_argument("command", choices=["up", "down", "status", "demo", "upload"])
    parser.add_argument("--audio-dir", type=Path, default=SAMPLES)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--to", help="upload: s3://bucket/prefix/")
    parser.add_argument("--state-dir", type=Path, default=Settings().state_dir)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if args.command == "upload":
        if not args.to or not args.audio_dir.is_dir():
            parser.error("upload needs --to s3://bucket/prefix/ and an --audio-dir that is a directory")
        upload_to(args.audio_dir, args.to)
        return 0
    stack = Stack(Settings(state_dir=args.state_dir.resolve()))
    if args.command == "up":
        resources = stack.up()
        url = stack.settings.url(stack.settings.ports.airflow)
        print(
            f"Airflow UI: {url.replace('127.0.0.1', 'localhost')}  (source {args.state_dir}/stack.env for the AWS CLI)"
        )
        print(
            f"Upload audio to s3://{resources.input_bucket}/<prefix>/ and trigger audio_transcription with "
            f'{{"bucket_uri": "s3://{resources.input_bucket}/<prefix>/"}}'
        )
        return 0
    if args.command == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.command == "status":
        running = stack.running()
        print("\n".join(f"{name}: pid {pid}" for name, pid in running.items()) or "nothing runs")
        return 0
    if not args.audio_dir.is_dir():
        parser.error(f"--audio-dir {args.audio_dir} is not a directory")
    return demo(stack, args.audio_dir.resolve(), args.report, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
