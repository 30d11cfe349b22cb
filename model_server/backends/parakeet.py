"""NVIDIA NeMo Parakeet: the backend of the cloud container (GPU). NeMo is imported only here."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from model_server.backends import Segment, Transcription
from model_server.backends.audio import SAMPLE_RATE, decode

DEFAULT_MODEL = "nvidia/parakeet-tdt-0.6b-v2"


@dataclass
class ParakeetBackend:
    model: str = DEFAULT_MODEL
    """A ``.nemo`` file (for example an S3 model artifact unpacked to /opt/ml/model) or a model id."""
    name: str = "parakeet"

    @classmethod
    def from_env(cls) -> ParakeetBackend:
        default = "/opt/ml/model/model.nemo" if os.path.isfile("/opt/ml/model/model.nemo") else DEFAULT_MODEL
        return cls(model=os.environ.get("PARAKEET_MODEL", default))

    def load(self) -> None:
        import nemo.collections.asr as nemo_asr

        if self.model.endswith(".nemo"):
            self._model = nemo_asr.models.ASRModel.restore_from(self.model)
        else:
            self._model = nemo_asr.models.ASRModel.from_pretrained(self.model)
        self._model.eval()

    def transcribe(self, audio: bytes) -> Transcription:
        import soundfile

        samples = decode(audio)  # any container format -> 16 kHz mono, what Parakeet expects
        with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
            soundfile.write(wav.name, samples, SAMPLE_RATE)
            (hypothesis,) = self._model.transcribe([wav.name])
        text = getattr(hypothesis, "text", hypothesis).strip()
        duration = round(len(samples) / SAMPLE_RATE, 3)
        return Transcription(
            text=text,
            language="en",
            duration_seconds=duration,
            model=f"parakeet:{self.model}",
            segments=[Segment(0.0, duration, text)],
        )
