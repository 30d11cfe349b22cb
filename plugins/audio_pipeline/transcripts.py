"""The transcript formats an endpoint's ``.out`` object may hold.

- the public Parakeet sample's: a JSON array of strings, one per input;
- this project's model server: ``{"text": ..., "language": ..., "segments": [...], "duration_seconds": ...,
  "processing_seconds": ..., "concurrent_requests": ...}`` (the last three: the endpoint's work on it);
- a bare JSON string.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from audio_pipeline.work import FileWork


class TranscriptFormatError(ValueError):
    """The object is not a transcript in any known format; the message says what it is."""


class Transcript(NamedTuple):
    text: str
    """The transcript ("" for silence)."""
    work: FileWork
    """The endpoint's figures the model server wrote (none in the other formats)."""


def _excerpt(body: bytes) -> str:
    return repr(body[:80]) + ("..." if len(body) > 80 else "")


def parse_transcript(body: bytes) -> str:
    """The transcript text of an endpoint output object ("" for silence)."""
    return read_transcript(body).text


def read_transcript(body: bytes) -> Transcript:
    """The transcript text of an endpoint output object and the endpoint's work on it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TranscriptFormatError(f"transcript object is not UTF-8 text: {_excerpt(body)}") from err
    try:
        doc: Any = json.loads(text)
    except ValueError as err:
        raise TranscriptFormatError(f"transcript object is not JSON: {_excerpt(body)}") from err
    if isinstance(doc, str):
        return Transcript(doc.strip(), FileWork())
    if isinstance(doc, list) and all(isinstance(part, str) for part in doc):
        return Transcript(" ".join(part.strip() for part in doc if part.strip()), FileWork())
    if isinstance(doc, dict):
        return Transcript(_text_of(doc, body), _work_of(doc))
    raise TranscriptFormatError(
        f"transcript JSON must be a list of strings, an object with 'text', or a string: {_excerpt(body)}"
    )


def _text_of(doc: dict[str, Any], body: bytes) -> str:
    whole = doc.get("text")
    if isinstance(whole, str):
        return whole.strip()
    segments = doc.get("segments")
    if isinstance(segments, list) and all(isinstance(s, dict) and isinstance(s.get("text"), str) for s in segments):
        return " ".join(s["text"].strip() for s in segments if s["text"].strip())
    raise TranscriptFormatError(f"transcript JSON object has no 'text' or 'segments': {_excerpt(body)}")


def _work_of(doc: dict[str, Any]) -> FileWork:
    """The model server's figures; a figure that is not a number is left out."""

    def number(name: str) -> float | None:
        value = doc.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    slots = number("concurrent_requests")
    return FileWork(
        audio_seconds=number("duration_seconds"),
        processing_seconds=number("processing_seconds"),
        concurrent_requests=int(slots) if slots else None,
    )
