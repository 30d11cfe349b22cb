"""``python -m model_server [serve] [--host H] [--port P] [--backend whisper|benchmark|parakeet]``.

``serve`` is how SageMaker starts a container (``docker run image serve``): it listens on
0.0.0.0:8080 unless told otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from model_server.backends import create_backend
from model_server.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model_server", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["serve"], default="serve")
    parser.add_argument("--host", default=os.environ.get("MODEL_SERVER_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MODEL_SERVER_PORT", "8080")))
    parser.add_argument("--backend", default=os.environ.get("MODEL_BACKEND", "whisper"))
    parser.add_argument(
        "--witness-journal", type=Path, default=None, metavar="PATH", help="local stack only: journal every call here"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = serve(args.host, args.port, create_backend(args.backend))
    if args.witness_journal:  # the local stack's witness (local/ is not in the SageMaker container)
        from local.witness import ModelWitness, WitnessJournal

        server.witness = ModelWitness(WitnessJournal(args.witness_journal))
    logging.getLogger("model_server").info("listening on %s:%d", args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
