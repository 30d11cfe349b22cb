"""``python -m model_server.evaluate samples/``: word error rate and real-time factor per clip."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from model_server.backends import create_backend
from model_server.wer import word_error_rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("samples", type=Path, help="folder with the clips and references.json")
    parser.add_argument("--backend", default="whisper")
    args = parser.parse_args(argv)
    references = json.loads((args.samples / "references.json").read_text())
    backend = create_backend(args.backend)
    started = time.monotonic()
    backend.load()
    print(f"backend {backend.name} loaded in {time.monotonic() - started:.1f}s")
    print(f"{'clip':<30} {'audio_s':>7} {'wer':>6} {'rtf':>6}")
    wers, rtfs = [], []
    for name, reference in references.items():
        started = time.monotonic()
        result = backend.transcribe((args.samples / name).read_bytes())
        elapsed = time.monotonic() - started
        wer = word_error_rate(reference, result.text)
        rtf = elapsed / result.duration_seconds
        wers.append(wer)
        rtfs.append(rtf)
        print(f"{name:<30} {result.duration_seconds:>7.1f} {wer:>6.3f} {rtf:>6.3f}")
    print(f"{'mean':<30} {'':>7} {sum(wers) / len(wers):>6.3f} {sum(rtfs) / len(rtfs):>6.3f}")


if __name__ == "__main__":
    main()
