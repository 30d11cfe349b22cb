"""Regenerate the sample clips in samples/ (English speech synthesised offline with espeak-ng).

Needs the espeak-ng program (Debian: apt-get install espeak-ng). The clips are shipped in
the repository, so nothing else needs this script; it exists so that they can be rebuilt
deterministically. Formats are encoded with PyAV (bundled FFmpeg).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from pathlib import Path

import av
import numpy as np

CLIPS = {
    "team-standup.wav": (
        "Good morning everyone. Let's start the weekly standup. The payment service migration is almost done, "
        "and we expect to switch traffic on Thursday. Sarah found a memory leak in the report generator and will "
        "ship a fix today. We still need a volunteer to update the on call runbook before the holiday."
    ),
    "product-launch.flac": (
        "Today we are launching our new smart thermostat. It learns your schedule in about a week and lowers "
        "your heating bill by up to twenty percent. The thermostat works with existing wiring, installs in fifteen "
        "minutes, and will be available in stores next month."
    ),
    "support-call.mp3": (
        "Thank you for calling customer support. I understand your order arrived damaged. I have issued a "
        "replacement that will ship tomorrow by express delivery. You do not need to return the broken item. "
        "Is there anything else I can help you with today?"
    ),
    "lecture-photosynthesis.ogg": (
        "In today's lecture we look at photosynthesis. Plants capture light energy with chlorophyll and use it to "
        "turn water and carbon dioxide into sugar and oxygen. This process happens in the chloroplasts, and it "
        "feeds almost every food chain on the planet."
    ),
    "news-brief.wav": (
        "Here is the morning news brief. The city council approved the new bicycle lanes downtown. Heavy rain is "
        "expected this afternoon, so drivers should allow extra time. And the local library will extend its "
        "opening hours on weekends starting in June."
    ),
}
RATE = 16000


def synthesise(text: str) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "150", "--stdout", text], check=True, capture_output=True
    ).stdout
    with av.open(io.BytesIO(wav)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        frames = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(frames).astype(np.int16)


def encode(samples: np.ndarray, path: Path) -> None:
    codec, fmt = {
        ".wav": ("pcm_s16le", "s16"),
        ".flac": ("flac", "s16"),
        ".mp3": ("libmp3lame", "s16p"),
        ".ogg": ("libopus", "s16"),  # Ogg Opus: PyAV's FFmpeg has no Vorbis encoder
    }[path.suffix]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format=fmt, layout="mono")
        frame.sample_rate = RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "samples")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in CLIPS.items():
        encode(synthesise(text), args.out / name)
        print(f"wrote {args.out / name}")
    (args.out / "references.json").write_text(json.dumps(CLIPS, indent=1) + "\n")


if __name__ == "__main__":
    main()
