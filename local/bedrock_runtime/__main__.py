"""``python -m local.bedrock_runtime``: run the Bedrock runtime emulator."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from local.aws_http import configure_logging, serve
from local.bedrock_runtime.models import ExtractiveModel, GgufModel
from local.bedrock_runtime.server import BedrockServer, Faults
from local.witness import WitnessJournal


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.bedrock_runtime", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--gguf", default=os.environ.get("BEDROCK_EMULATOR_GGUF"), help="a local GGUF model file")
    parser.add_argument(
        "--witness-journal", type=Path, default=None, metavar="PATH", help="append every request's outcome here"
    )
    parser.add_argument("--fault-throttle-rate", type=float, default=0.0, metavar="RATE")
    parser.add_argument("--fault-fail-marker", default=None, metavar="TEXT")
    args = parser.parse_args(argv)
    configure_logging()
    model = GgufModel(args.gguf) if args.gguf else ExtractiveModel()
    witness = WitnessJournal(args.witness_journal) if args.witness_journal else None
    server = BedrockServer(
        (args.host, args.port), model, Faults(args.fault_throttle_rate, args.fault_fail_marker), witness
    )
    serve(server, f"bedrock-runtime emulator ({type(model).__name__})")


if __name__ == "__main__":
    main()
