"""Decoding request bodies to 16 kHz mono samples with PyAV (bundled FFmpeg, no system binary).

The decoded length is capped (``MODEL_MAX_AUDIO_SECONDS``, 4 hours unless set): a small
compressed file can hold hours of audio (4.9 MB of Opus, six hours of silence, took the
server to 6.1 GB resident), and one request must not take the container's memory from
every other. Samples go into one buffer sized for the cap, whose pages the kernel commits
only as they are written: memory follows the audio's length, with no list of chunks and
no copy to join them.
"""

from __future__ import annotations

import io
import os

import numpy as np

from model_server.backends import BadAudio

SAMPLE_RATE = 16000
DEFAULT_MAX_AUDIO_SECONDS = 4 * 3600.0
MAX_AUDIO_SECONDS_VARIABLE = "MODEL_MAX_AUDIO_SECONDS"


class AudioTooLong(BadAudio):
    """The audio decodes to more than the server's cap (answered with HTTP 400, naming the cap)."""


def max_audio_seconds() -> float:
    """The cap on a request's decoded duration: ``MODEL_MAX_AUDIO_SECONDS``, else 4 hours."""
    return float(os.environ.get(MAX_AUDIO_SECONDS_VARIABLE) or DEFAULT_MAX_AUDIO_SECONDS)


def decode(audio: bytes, max_seconds: float | None = None) -> np.ndarray:
    """16 kHz mono float32 samples of any format FFmpeg reads (wav, flac, mp3, ogg, m4a, webm...),
    at most ``max_seconds`` of them (default :func:`max_audio_seconds`)."""
    if not audio:
        raise BadAudio("empty request body: send the audio file's bytes")
    import av

    limit = max_audio_seconds() if max_seconds is None else max_seconds
    buffer = np.empty(int(limit * SAMPLE_RATE), dtype=np.float32)
    filled = 0

    def append(frames: list[av.AudioFrame]) -> None:
        nonlocal filled
        for frame in frames:
            samples = frame.to_ndarray().reshape(-1)
            end = filled + len(samples)
            if end > len(buffer):
                raise AudioTooLong(
                    f"the audio is longer than {_duration(limit)}, the most this model server decodes "
                    f"({MAX_AUDIO_SECONDS_VARIABLE}={limit:g}): split the file, or raise the limit"
                )
            buffer[filled:end] = samples
            filled = end

    try:
        with av.open(io.BytesIO(audio), mode="r") as container:
            if not container.streams.audio:
                raise BadAudio("the file has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(audio=0):
                append(resampler.resample(frame))
            append(resampler.resample(None))
    except BadAudio:
        raise
    except (av.error.FFmpegError, ValueError, EOFError) as err:
        raise BadAudio(f"not decodable audio ({type(err).__name__}: {err})") from err
    if not filled:
        raise BadAudio("the audio stream holds no samples")
    return buffer[:filled]


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{seconds:g} s"
