"""A fixed-latency backend for pipeline benchmarks: the model's cost is a known constant."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from model_server.backends import BadAudio, Segment, Transcription

FIXED_TRANSCRIPT = (
    "Thanks everyone for joining. The release is on track for Friday. "
    "Maria will finish the migration and Tom will update the runbook. "
    "We agreed to review the error budget again next week."
)


@dataclass
class BenchmarkBackend:
    """Sleeps ``service_seconds`` per request and decodes nothing: it reports that time as the audio's
    duration (a real-time factor of 1), and the server adds the processing seconds it measured."""

    service_seconds: float = 0.5
    name: str = "benchmark"
    max_concurrency: int = 64
    """A sleep models an instance's parallel slots; the endpoint's concurrency bounds it."""

    @classmethod
    def from_env(cls) -> BenchmarkBackend:
        return cls(service_seconds=float(os.environ.get("BENCHMARK_SERVICE_SECONDS", "0.5")))

    def load(self) -> None:
        pass

    def transcribe(self, audio: bytes) -> Transcription:
        if not audio:
            raise BadAudio("empty request body: send the audio file's bytes")
        time.sleep(self.service_seconds)
        # names its input, so two recordings get two transcripts (and two distinct summary requests)
        text = f"{FIXED_TRANSCRIPT} Recording {hashlib.sha256(audio).hexdigest()[:16]}."
        return Transcription(
            text=text,
            language="en",
            duration_seconds=self.service_seconds,
            model=f"benchmark:{self.service_seconds}s",
            segments=[Segment(0.0, self.service_seconds, text)],
        )
