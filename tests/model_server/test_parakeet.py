"""The Parakeet backend's own logic, on a stand-in for the NeMo model (NeMo runs in the GPU container)."""

from __future__ import annotations

from model_server.backends.parakeet import LOCAL_ATTENTION_CONTEXT, ParakeetBackend


class RecordingModel:
    """Records the NeMo ``ASRModel`` calls the backend makes."""

    def __init__(self):
        self.calls = []

    def change_attention_model(self, self_attention_model, att_context_size):
        self.calls.append((self_attention_model, att_context_size))


def backend_on(model, after=480.0):
    backend = ParakeetBackend(local_attention_after_seconds=after)
    backend._model = model
    return backend


def test_long_audio_switches_to_local_attention_and_back():
    model = RecordingModel()
    backend = backend_on(model)
    backend.fit_attention(60)
    assert model.calls == [], "short audio keeps the model's full attention"
    backend.fit_attention(3 * 3600)
    backend.fit_attention(1800)
    assert model.calls == [("rel_pos_local_attn", LOCAL_ATTENTION_CONTEXT)], "switched once"
    backend.fit_attention(30)
    assert model.calls[-1] == ("rel_pos", [-1, -1])


def test_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PARAKEET_LOCAL_ATTENTION_AFTER_SECONDS", "120")
    monkeypatch.setenv("PARAKEET_MODEL", "nvidia/parakeet-tdt-0.6b-v3")
    backend = ParakeetBackend.from_env()
    assert backend.local_attention_after_seconds == 120 and backend.model == "nvidia/parakeet-tdt-0.6b-v3"
