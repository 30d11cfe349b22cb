"""Decoding request bodies to 16 kHz mono samples with PyAV (bundled FFmpeg, no system binary)."""

from __future__ import annotations

import io

import numpy as np

from model_server.backends import BadAudio

SAMPLE_RATE = 16000


def decode(audio: bytes) -> np.ndarray:
    """16 kHz mono float32 samples of any format FFmpeg reads (wav, flac, mp3, ogg, m4a, webm...)."""
    if not audio:
        raise BadAudio("empty request body: send the audio file's bytes")
    import av

    try:
        with av.open(io.BytesIO(audio), mode="r") as container:
            if not container.streams.audio:
                raise BadAudio("the file has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except BadAudio:
        raise
    except (av.error.FFmpegError, ValueError, EOFError) as err:
        raise BadAudio(f"not decodable audio ({type(err).__name__}: {err})") from err
    if not chunks:
        raise BadAudio("the audio stream holds no samples")
    return np.concatenate(chunks).astype(np.float32)
