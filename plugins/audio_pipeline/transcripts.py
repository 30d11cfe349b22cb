"""The transcript formats an endpoint's ``.out`` object may hold.

- the public Parakeet sample's: a JSON array of strings, one per input;
- this project's model server: ``{"text": ..., "language": ..., "segments": [...], ...}``;
- a bare JSON string.
"""

from __future__ import annotations

import json
from typing import Any


class TranscriptFormatError(ValueError):
    """The object is not a transcript in any known format; the message says what it is."""


def _excerpt(body: bytes) -> str:
    return repr(body[:80]) + ("..." if len(body) > 80 else "")


def parse_transcript(body: bytes) -> str:
    """The transcript text of an endpoint output object ("" for silence)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TranscriptFormatError(f"transcript object is not UTF-8 text: {_excerpt(body)}") from err
    try:
        doc: Any = json.loads(text)
    except ValueError as err:
        raise TranscriptFormatError(f"transcript object is not JSON: {_excerpt(body)}") from err
    if isinstance(doc, str):
        return doc.strip()
    if isinstance(doc, list) and all(isinstance(part, str) for part in doc):
        return " ".join(part.strip() for part in doc if part.strip())
    if isinstance(doc, dict):
        whole = doc.get("text")
        if isinstance(whole, str):
            return whole.strip()
        segments = doc.get("segments")
        if isinstance(segments, list) and all(isinstance(s, dict) and isinstance(s.get("text"), str) for s in segments):
            return " ".join(s["text"].strip() for s in segments if s["text"].strip())
        raise TranscriptFormatError(f"transcript JSON object has no 'text' or 'segments': {_excerpt(body)}")
    raise TranscriptFormatError(
        f"transcript JSON must be a list of strings, an object with 'text', or a string: {_excerpt(body)}"
    )
