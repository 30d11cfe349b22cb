"""A backend that only decodes (the first step of every real backend, where the duration cap
applies), and silent WAV files of a given length."""

from __future__ import annotations

import io
import wave

from model_server.backends import Transcription
from model_server.backends.audio import SAMPLE_RATE, decode


class Decoding:
    name = "decoding"

    def load(self) -> None:
        pass

    def transcribe(self, audio: bytes) -> Transcription:
        samples = decode(audio)
        return Transcription("", "en", len(samples) / SAMPLE_RATE, "decoding:test")


def silent_wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()
