from __future__ import annotations

import json

import pytest

from audio_pipeline.transcripts import TranscriptFormatError, parse_transcript, read_transcript
from audio_pipeline.work import FileWork


def test_parakeet_sample_format():
    assert parse_transcript(json.dumps(["hello world", " second part "]).encode()) == "hello world second part"


def test_model_server_format():
    body = {"text": " Good morning. ", "language": "en", "duration_seconds": 3.2, "model": "x", "segments": []}
    assert parse_transcript(json.dumps(body).encode()) == "Good morning."


def test_the_model_servers_figures_are_the_endpoints_work():
    body = {
        "text": "Hi.",
        "duration_seconds": 61.5,
        "processing_seconds": 2.25,
        "concurrent_requests": 1,
        "model": "x",
        "segments": [],
    }
    transcript = read_transcript(json.dumps(body).encode())
    assert transcript == ("Hi.", FileWork(audio_seconds=61.5, processing_seconds=2.25, concurrent_requests=1))


@pytest.mark.parametrize(
    "body",
    [
        ["hello"],
        "hello",
        {"text": "hello"},  # a model server from before processing_seconds
        {"text": "hello", "duration_seconds": "61", "processing_seconds": None, "concurrent_requests": True},
    ],
)
def test_formats_without_figures_have_no_work(body):
    assert read_transcript(json.dumps(body).encode()).work == FileWork()


def test_segments_only():
    body = {"segments": [{"start": 0, "end": 1, "text": " one"}, {"start": 1, "end": 2, "text": "two "}]}
    assert parse_transcript(json.dumps(body).encode()) == "one two"


def test_bare_string_and_silence():
    assert parse_transcript(b'"just text"') == "just text"
    assert parse_transcript(b"[]") == ""
    assert parse_transcript(json.dumps({"text": ""}).encode()) == ""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"plain words, not json", "not JSON"),
        (b'{"transcript": "x"}', "no 'text' or 'segments'"),
        (b"[1, 2, 3]", "list of strings"),
        (b"42", "list of strings"),
    ],
)
def test_malformed_objects_are_named(body, message):
    with pytest.raises(TranscriptFormatError, match=message):
        parse_transcript(body)
