"""Speech-recognition backends behind one interface."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol


class BadAudio(ValueError):
    """The request body is not audio the backend can decode (answered with HTTP 400)."""


@dataclass
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcription:
    text: str
    language: str
    duration_seconds: float
    model: str
    segments: list[Segment] = field(default_factory=list)
    processing_seconds: float | None = None
    """Wall-clock seconds the request held a model slot (set by the server, not the backend)."""
    concurrent_requests: int | None = None
    """How many requests the server runs in the model at once: an instance's time is shared among them
    (set by the server)."""

    def to_dict(self) -> dict:
        return asdict(self)


class Backend(Protocol):
    """A speech recognizer. One that can load yet be unfit to serve (the Parakeet backend on a host
    whose GPU torch cannot see) also sets ``unhealthy`` to the reason: /ping then fails with it."""

    name: str

    def load(self) -> None:
        """Load the model; called once at start-up, before the server answers /ping."""

    def transcribe(self, audio: bytes) -> Transcription:
        """Transcribe one request body; raise :class:`BadAudio` for input that is not audio."""


def create_backend(name: str) -> Backend:
    if name == "whisper":
        from model_server.backends.whisper import WhisperBackend

        return WhisperBackend.from_env()
    if name == "benchmark":
        from model_server.backends.benchmark import BenchmarkBackend

        return BenchmarkBackend.from_env()
    if name == "parakeet":
        from model_server.backends.parakeet import ParakeetBackend

        return ParakeetBackend.from_env()
    raise ValueError(f"unknown backend {name!r}: choose whisper, parakeet or benchmark")
