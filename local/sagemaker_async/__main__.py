"""``python -m local.sagemaker_async``: run the SageMaker asynchronous inference runtime emulator."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import boto3

from local.aws_http import configure_logging, serve
from local.sagemaker_async.requests import Journal
from local.sagemaker_async.server import RuntimeServer
from local.sagemaker_async.service import AsyncInferenceService, Faults
from local.witness import WitnessJournal


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.sagemaker_async", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--model-url", default=os.environ.get("MODEL_URL", "http://127.0.0.1:8081"))
    parser.add_argument("--state-dir", type=Path, default=Path(".local/state/sagemaker-async"))
    parser.add_argument(
        "--witness-journal", type=Path, default=None, metavar="PATH", help="append every accepted request here"
    )
    parser.add_argument("--fault-duplicate-notifications", type=float, default=0.0, metavar="RATE")
    parser.add_argument("--fault-drop-notifications", type=float, default=0.0, metavar="RATE")
    args = parser.parse_args(argv)
    configure_logging()
    session = boto3.session.Session()
    region = session.region_name or "us-east-1"
    service = AsyncInferenceService(
        sagemaker=session.client("sagemaker", region_name=region),
        s3=session.client("s3", region_name=region),
        sns=session.client("sns", region_name=region),
        region=region,
        model_url=args.model_url,
        journal=Journal(args.state_dir / "journal"),
        faults=Faults(args.fault_duplicate_notifications, args.fault_drop_notifications),
        witness=WitnessJournal(args.witness_journal) if args.witness_journal else None,
    )
    server = RuntimeServer((args.host, args.port), service)
    service.resume()
    serve(server, f"sagemaker-runtime emulator (model at {args.model_url})")


if __name__ == "__main__":
    main()
