"""NVIDIA NeMo Parakeet: the backend of the cloud container (GPU). NeMo is imported only here."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from model_server.backends import Segment, Transcription
from model_server.backends.audio import SAMPLE_RATE, decode

DEFAULT_MODEL = "nvidia/parakeet-tdt-0.6b-v2"
LOCAL_ATTENTION_AFTER_SECONDS = 480.0
"""Full attention needs GPU memory quadratic in the audio's length and runs out on a 16 GB
T4 (g4dn) past about ten minutes; longer files use NeMo's local attention (windows of 128
frames each side, good for hours), which costs a little accuracy, so short files keep full
attention."""
LOCAL_ATTENTION_CONTEXT = [128, 128]


@dataclass
class ParakeetBackend:
    model: str = DEFAULT_MODEL
    """A ``.nemo`` file (for example an S3 model artifact unpacked to /opt/ml/model) or a model id."""
    local_attention_after_seconds: float = LOCAL_ATTENTION_AFTER_SECONDS
    name: str = "parakeet"
    _local_attention: bool = field(default=False, init=False, repr=False)

    @classmethod
    def from_env(cls) -> ParakeetBackend:
        default = "/opt/ml/model/model.nemo" if os.path.isfile("/opt/ml/model/model.nemo") else DEFAULT_MODEL
        after = float(os.environ.get("PARAKEET_LOCAL_ATTENTION_AFTER_SECONDS", LOCAL_ATTENTION_AFTER_SECONDS))
        return cls(model=os.environ.get("PARAKEET_MODEL", default), local_attention_after_seconds=after)

    def load(self) -> None:
        import nemo.collections.asr as nemo_asr

        if self.model.endswith(".nemo"):
            self._model = nemo_asr.models.ASRModel.restore_from(self.model)
        else:
            self._model = nemo_asr.models.ASRModel.from_pretrained(self.model)
        self._model.eval()
        self._model.change_subsampling_conv_chunking_factor(1)  # chunks the subsampling only when it must

    def fit_attention(self, seconds: float) -> None:
        """Full attention for short audio, local attention past ``local_attention_after_seconds``.

        The server runs one request at a time on this backend, so switching is safe.
        """
        local = seconds > self.local_attention_after_seconds
        if local == self._local_attention:
            return
        if local:
            self._model.change_attention_model("rel_pos_local_attn", LOCAL_ATTENTION_CONTEXT)
        else:
            self._model.change_attention_model("rel_pos", [-1, -1])
        self._local_attention = local

    def transcribe(self, audio: bytes) -> Transcription:
        import soundfile

        samples = decode(audio)  # any container format -> 16 kHz mono, what Parakeet expects
        self.fit_attention(len(samples) / SAMPLE_RATE)
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
