"""``python -m benchmarks.model_memory``: the model server's peak memory on long audio.

A small compressed file can hold hours of audio. This writes hours of silence as Opus and
mp3 (PyAV's bundled encoders; cached under ``.local/bench/``), then for each file:

- ``decode``: ``model_server.backends.audio.decode`` alone, in a fresh process;
- ``server``: a real ``python -m model_server`` (whisper backend unless ``--backend``) given
  the file over ``POST /invocations``, as the SageMaker-async emulator sends it;

and prints the answer, the seconds taken and the process's peak resident memory (VmHWM).
Whatever ``model_server`` is first on PYTHONPATH is measured, so an older tree can be
compared: ``PYTHONPATH=/tmp/old:. python -m benchmarks.model_memory``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.moto_server import free_port

CACHE = Path(".local/bench")
PIECE_SECONDS = 600
ENCODERS = {  # container, codec, rate, muxer options
    "opus": ("ogg", "libopus", 16000, {}),
    "mp3": ("mp3", "libmp3lame", 16000, {"write_xing": "0", "id3v2_version": "0"}),
}
_DECODE = """
import json, resource, sys, time
from model_server.backends.audio import decode
audio = open(sys.argv[1], "rb").read()
started = time.monotonic()
try:
    answer = f"{len(decode(audio)) / 16000 / 3600:.2f} h decoded"
except Exception as err:
    answer = f"{type(err).__name__}: {err}"
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
print(json.dumps({"answer": answer, "seconds": time.monotonic() - started, "peak": peak}))
"""


def silence(hours: float, kind: str) -> Path:
    """``hours`` of 16 kHz mono silence encoded as ``kind`` (opus or mp3), made once: a
    10-minute piece, repeated (chained Ogg streams; mp3 frames without a Xing header)."""
    path = CACHE / f"silence-{hours:g}h.{kind}"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        piece = _encoded_silence(PIECE_SECONDS, kind)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            for _ in range(round(hours * 3600 / PIECE_SECONDS)):
                out.write(piece)
        partial.rename(path)
    return path


def _encoded_silence(seconds: int, kind: str) -> bytes:
    import av
    import numpy as np

    container_format, codec, rate, options = ENCODERS[kind]
    block = 10 * rate
    encoded = io.BytesIO()
    with av.open(encoded, "w", format=container_format, options=options) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = 16000
        zeros = np.zeros((1, block), dtype=np.int16)
        for i in range(seconds * rate // block):
            frame = av.AudioFrame.from_ndarray(zeros, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, i * block
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return encoded.getvalue()


def measure_decode(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _DECODE, str(path)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def measure_server(path: Path, backend: str) -> dict:
    port = free_port()
    argv = [sys.executable, "-m", "model_server", "--backend", backend, "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the model server did not start") from None
                time.sleep(0.2)
        request = urllib.request.Request(f"{url}/invocations", data=path.read_bytes(), method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=3600) as response:
                doc = json.loads(response.read())
                answer = f"{response.status}: {doc['duration_seconds'] / 3600:.2f} h transcribed"
        except urllib.error.HTTPError as err:
            answer = f"{err.code}: {json.loads(err.read())['error']}"
        seconds = time.monotonic() - started
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
        return {"answer": answer, "seconds": seconds, "peak": peak}
    finally:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[6.0])
    parser.add_argument("--formats", nargs="+", choices=sorted(ENCODERS), default=["opus", "mp3"])
    parser.add_argument("--modes", nargs="+", choices=["decode", "server"], default=["decode", "server"])
    parser.add_argument("--backend", default="whisper")
    args = parser.parse_args(argv)
    print(f"MODEL_MAX_AUDIO_SECONDS={os.environ.get('MODEL_MAX_AUDIO_SECONDS', '(default)')}")
    print("| file | size | measured | answer | seconds | peak RSS |")
    print("|---|---|---|---|---|---|")
    for hours in args.hours:
        for kind in args.formats:
            path = silence(hours, kind)
            for mode in args.modes:
                row = measure_decode(path) if mode == "decode" else measure_server(path, args.backend)
                print(
                    f"| {hours:g} h of silence, {kind} | {path.stat().st_size / 1e6:.1f} MB | {mode} | "
                    f"{row['answer'][:90]} | {row['seconds']:.1f} | {row['peak'] / 2**30:.2f} GiB |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
