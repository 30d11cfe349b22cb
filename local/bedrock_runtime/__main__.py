"""``python -m local.bedrock_runtime``: run the Bedrock runtime emulator."""

from __future__ import annotations

import argparse
import logging
import os

from local.bedrock_runtime.models import ExtractiveModel, GgufModel
from local.bedrock_runtime.server import BedrockServer, Faults


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.bedrock_runtime", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--gguf", default=os.environ.get("BEDROCK_EMULATOR_GGUF"), help="a local GGUF model file")
    parser.add_argument("--fault-throttle-rate", type=float, default=0.0, metavar="RATE")
    parser.add_argument("--fault-fail-marker", default=None, metavar="TEXT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = GgufModel(args.gguf) if args.gguf else ExtractiveModel()
    server = BedrockServer((args.host, args.port), model, Faults(args.fault_throttle_rate, args.fault_fail_marker))
    logging.getLogger("local.bedrock_runtime").info(
        "bedrock-runtime emulator on http://%s:%d (%s)", args.host, args.port, type(model).__name__
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
