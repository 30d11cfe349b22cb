from __future__ import annotations

import pytest

from model_server.backends import BadAudio
from model_server.backends.audio import SAMPLE_RATE, AudioTooLong, decode

from .decoding import silent_wav


def test_decodes_to_16khz_mono_float32():
    samples = decode(silent_wav(3.0, rate=8000))
    assert samples.dtype == "float32" and abs(len(samples) - 3 * SAMPLE_RATE) <= 32


def test_audio_over_the_cap_is_refused_naming_the_cap(monkeypatch):
    audio = silent_wav(3.0)
    assert len(decode(audio, max_seconds=3.5)) > 0
    with pytest.raises(AudioTooLong, match=r"longer than 2 s.*MODEL_MAX_AUDIO_SECONDS=2\b"):
        decode(audio, max_seconds=2)
    monkeypatch.setenv("MODEL_MAX_AUDIO_SECONDS", "2.5")
    with pytest.raises(AudioTooLong, match=r"MODEL_MAX_AUDIO_SECONDS=2.5\b"):
        decode(audio)
    assert issubclass(AudioTooLong, BadAudio)  # answered 400: the request, not the server, is wrong


def test_the_default_cap_is_hours(monkeypatch):
    monkeypatch.delenv("MODEL_MAX_AUDIO_SECONDS", raising=False)
    from model_server.backends.audio import max_audio_seconds

    assert max_audio_seconds() == 4 * 3600
