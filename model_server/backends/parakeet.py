"""NVIDIA NeMo Parakeet: the backend of the cloud container (GPU). NeMo is imported only here."""

from __future__ import annotations

import logging
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
ALLOW_CPU = "PARAKEET_ALLOW_CPU"
"""Set to 1 to serve without a GPU (tests, a CPU trial): otherwise no CUDA device fails /ping."""

log = logging.getLogger(__name__)


def no_cuda_reason() -> str | None:
    """Why torch sees no CUDA device, or None when it sees one."""
    import torch

    if torch.cuda.is_available():
        return None
    return (
        f"no CUDA device visible to torch {torch.__version__} (built for CUDA {torch.version.cuda}): "
        "the host's NVIDIA driver is missing or older than the image's CUDA (on SageMaker, pin the "
        f"variant's InferenceAmiVersion); set {ALLOW_CPU}=1 to transcribe on the CPU instead"
    )


@dataclass
class ParakeetBackend:
    model: str = DEFAULT_MODEL
    """A ``.nemo`` file (for example an S3 model artifact unpacked to /opt/ml/model) or a model id."""
    local_attention_after_seconds: float = LOCAL_ATTENTION_AFTER_SECONDS
    allow_cpu: bool = False
    """Serve even when torch sees no GPU (silently slow otherwise: Parakeet on the CPU)."""
    name: str = "parakeet"
    unhealthy: str | None = field(default=None, init=False)
    _local_attention: bool = field(default=False, init=False, repr=False)

    @classmethod
    def from_env(cls) -> ParakeetBackend:
        default = "/opt/ml/model/model.nemo" if os.path.isfile("/opt/ml/model/model.nemo") else DEFAULT_MODEL
        after = float(os.environ.get("PARAKEET_LOCAL_ATTENTION_AFTER_SECONDS", LOCAL_ATTENTION_AFTER_SECONDS))
        return cls(
            model=os.environ.get("PARAKEET_MODEL", default),
            local_attention_after_seconds=after,
            allow_cpu=os.environ.get(ALLOW_CPU) == "1",
        )

    def load(self) -> None:
        """Load the model on the GPU; without one (and without ``allow_cpu``), stay unhealthy instead."""
        self.unhealthy = None if self.allow_cpu else no_cuda_reason()
        if self.unhealthy:
            log.error("not loading %s: %s", self.model, self.unhealthy)
            return
        self._model = self._restore()
        self._model.eval()
        self._model.change_subsampling_conv_chunking_factor(1)  # chunks the subsampling only when it must

    def _restore(self):
        import nemo.collections.asr as nemo_asr

        if self.model.endswith(".nemo"):
            return nemo_asr.models.ASRModel.restore_from(self.model)
        return nemo_asr.models.ASRModel.from_pretrained(self.model)

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
