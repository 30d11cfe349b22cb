from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from model_server.backends import BadAudio, Segment, Transcription, create_backend
from model_server.server import serve
from model_server.wer import word_error_rate

from .decoding import Decoding, silent_wav

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
REFERENCES = json.loads((SAMPLES / "references.json").read_text())


class Broken:
    name = "broken"

    def load(self):
        pass

    def transcribe(self, audio):
        if audio == b"bad":
            raise BadAudio("not decodable audio (test)")
        if audio == b"boom":
            raise RuntimeError("model exploded")
        return Transcription("ok", "en", 1.0, "broken:test", [Segment(0, 1, "ok")])


def start(backend):
    server = serve("127.0.0.1", 0, backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def post(url, body, content_type="audio/wav"):
    request = urllib.request.Request(
        f"{url}/invocations", data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def broken_server():
    server, url = start(Broken())
    yield url
    server.shutdown()


def test_ping(broken_server):
    with urllib.request.urlopen(f"{broken_server}/ping") as response:
        assert response.status == 200 and json.loads(response.read())["backend"] == "broken"


def test_errors_are_4xx_or_5xx_with_a_reason_and_the_server_keeps_serving(broken_server):
    assert post(broken_server, b"bad") == (400, {"error": "not decodable audio (test)"})
    status, doc = post(broken_server, b"boom")
    assert status == 500 and "model exploded" in doc["error"]
    status, doc = post(broken_server, b"fine")
    assert status == 200 and doc["text"] == "ok"


def test_ping_answers_only_once_the_model_is_loaded():
    """SageMaker pings from the container's start: until the model is loaded, nothing answers."""
    from tests.moto_server import free_port

    release, servers, port = threading.Event(), [], free_port()

    class Loading(Broken):
        def load(self):
            release.wait(10)

    starting = threading.Thread(target=lambda: servers.append(serve("127.0.0.1", port, Loading())))
    starting.start()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
    release.set()
    starting.join()
    threading.Thread(target=servers[0].serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping") as response:
            assert response.status == 200
    finally:
        servers[0].shutdown()


def test_unknown_path(broken_server):
    status, doc = post(broken_server.replace("/invocations", "") + "/nope", b"x")
    assert status == 404


def test_fault_marker_fails_that_request_only(monkeypatch):
    monkeypatch.setenv("MODEL_FAULT_FAIL_MARKER", "POISON")
    server, url = start(Broken())
    try:
        assert post(url, b"...POISON...")[0] == 500
        assert post(url, b"fine")[0] == 200
    finally:
        server.shutdown()


def test_benchmark_backend_contract(monkeypatch):
    monkeypatch.setenv("BENCHMARK_SERVICE_SECONDS", "0.01")
    server, url = start(create_backend("benchmark"))
    try:
        status, doc = post(url, b"anything")
        assert status == 200
        assert set(doc) == {
            "text",
            "language",
            "duration_seconds",
            "model",
            "segments",
            "processing_seconds",
            "concurrent_requests",
        }
        assert doc["model"].startswith("benchmark:")
        # the server's measure of the request's time in the model, and the slots that share an instance
        assert 0.01 <= doc["processing_seconds"] < 5 and doc["concurrent_requests"] == 64
        assert post(url, b"")[0] == 400
    finally:
        server.shutdown()


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        create_backend("nope")


@pytest.fixture(scope="module")
def whisper_server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_CACHE_DIR", str(tmp_path_factory.mktemp("models")))
        server, url = start(create_backend("whisper"))
        yield url
        server.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize(
    "clip", ["news-brief.wav", "product-launch.flac", "support-call.mp3", "lecture-photosynthesis.ogg"]
)
def test_whisper_transcribes_the_samples(whisper_server, clip):
    status, doc = post(whisper_server, (SAMPLES / clip).read_bytes(), "application/octet-stream")
    assert status == 200
    # measured: 0.00-0.12 per clip (docs/asr-quality.md); 0.25 leaves room for CPU differences
    assert word_error_rate(REFERENCES[clip], doc["text"]) < 0.25
    assert doc["language"] == "en" and doc["duration_seconds"] > 10 and doc["segments"]
    assert 0 < doc["processing_seconds"] < doc["duration_seconds"] and doc["concurrent_requests"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("body", [b"", b"this is a text file, not audio\n" * 20, b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_whisper_rejects_what_is_not_audio(whisper_server, body):
    status, doc = post(whisper_server, body)
    assert status == 400 and doc["error"]


def test_audio_over_the_duration_cap_is_answered_400_naming_the_cap(monkeypatch):
    monkeypatch.setenv("MODEL_MAX_AUDIO_SECONDS", "2")
    server, url = start(Decoding())
    try:
        status, doc = post(url, silent_wav(3.0))
        assert status == 400 and "MODEL_MAX_AUDIO_SECONDS=2" in doc["error"] and "longer than 2 s" in doc["error"]
        status, doc = post(url, silent_wav(1.0))
        assert status == 200 and doc["duration_seconds"] == 1.0
        # a backend that sets no max_concurrency is served one request at a time
        assert doc["concurrent_requests"] == 1 and doc["processing_seconds"] >= 0
    finally:
        server.shutdown()


def test_a_request_waiting_for_the_model_has_not_read_its_body():
    """The model slot is taken before the body is read: while the one slot is busy, a 64 MB
    upload stays in the client's socket (the server holds none of it), and goes through once
    the slot is free."""
    import socket

    release, entered = threading.Event(), threading.Event()

    class Busy(Broken):
        def transcribe(self, audio):
            if audio == b"hold":
                entered.set()
                release.wait(30)
            return super().transcribe(audio)

    server, url = start(Busy())
    holder = threading.Thread(target=post, args=(url, b"hold"))
    holder.start()
    assert entered.wait(10)
    body = b"\0" * (64 << 20)
    sent = threading.Event()
    with socket.create_connection(server.server_address[:2]) as client:

        def upload():
            client.sendall(
                f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
            )
            sent.set()

        uploading = threading.Thread(target=upload, daemon=True)
        uploading.start()
        try:
            assert not sent.wait(2), "the server read the body of a request that waits for the model"
        finally:
            release.set()
        assert sent.wait(30), "the upload went through once the slot was free"
        client.settimeout(30)
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
    holder.join()
    server.shutdown()
