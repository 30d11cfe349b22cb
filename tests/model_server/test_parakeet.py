"""The Parakeet backend's own logic, on stand-ins for the NeMo model and for torch (both run in the GPU container)."""

from __future__ import annotations

import json
import sys
import threading
import types
import urllib.error
import urllib.request

import pytest

from model_server.backends.parakeet import LOCAL_ATTENTION_CONTEXT, ParakeetBackend
from model_server.server import serve


class RecordingModel:
    """Records the NeMo ``ASRModel`` calls the backend makes."""

    def __init__(self):
        self.calls = []

    def change_attention_model(self, self_attention_model, att_context_size):
        self.calls.append((self_attention_model, att_context_size))

    def eval(self):
        self.calls.append("eval")

    def change_subsampling_conv_chunking_factor(self, factor):
        self.calls.append(("chunking", factor))


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


@pytest.fixture
def torch_without_gpu(monkeypatch):
    """torch as it is on a host whose NVIDIA driver is older than the image's CUDA: no device."""
    torch = types.SimpleNamespace(
        __version__="2.7.0a0", version=types.SimpleNamespace(cuda="12.9"), cuda=types.SimpleNamespace()
    )
    torch.cuda.is_available = lambda: False
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setattr(ParakeetBackend, "_restore", lambda self: RecordingModel())
    return torch


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def serving(backend):
    server = serve("127.0.0.1", 0, backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_ping_fails_when_torch_sees_no_gpu(torch_without_gpu, monkeypatch):
    """Parakeet on the CPU of a GPU instance is silently slow: SageMaker must see an unhealthy container."""
    monkeypatch.delenv("PARAKEET_ALLOW_CPU", raising=False)
    backend = ParakeetBackend.from_env()
    server, url = serving(backend)
    try:
        status, doc = get(f"{url}/ping")
        assert status == 503 and doc["status"] == "unhealthy"
        assert (
            "no CUDA device" in doc["error"] and "CUDA 12.9" in doc["error"] and "InferenceAmiVersion" in doc["error"]
        )
        request = urllib.request.Request(f"{url}/invocations", data=b"RIFF", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 503
        assert not hasattr(backend, "_model"), "no checkpoint download for a container that cannot serve"
    finally:
        server.shutdown()


def test_cpu_only_when_explicitly_allowed(torch_without_gpu, monkeypatch):
    monkeypatch.setenv("PARAKEET_ALLOW_CPU", "1")
    backend = ParakeetBackend.from_env()
    server, url = serving(backend)
    try:
        assert get(f"{url}/ping") == (200, {"status": "healthy", "backend": "parakeet"})
        assert backend._model.calls == ["eval", ("chunking", 1)]
    finally:
        server.shutdown()


def test_a_visible_gpu_is_healthy(torch_without_gpu, monkeypatch):
    monkeypatch.delenv("PARAKEET_ALLOW_CPU", raising=False)
    torch_without_gpu.cuda.is_available = lambda: True
    backend = ParakeetBackend.from_env()
    backend.load()
    assert backend.unhealthy is None and backend._model.calls[0] == "eval"
