"""Witness journals: what the SageMaker-async emulator, the model server and the Bedrock emulator saw.

Each process appends one JSON line per event to its own file (``--witness-journal PATH``;
the local stack puts them under ``<state>/witness/``), written with ``O_APPEND`` and
``fsync``'d before the request is answered, so a record survives a SIGKILL and a restart
only adds to the file. The pipeline under test never reads or writes them: the fault
runner and the soak judge the pipeline from these journals and the objects in S3.

- ``sagemaker-async.jsonl``: ``accepted`` (every InvokeEndpointAsync request the endpoint
  journaled, before it answers 202: input location, inference id, request id, output and
  failure locations, time; again, ``resumed``, when a restart resumes it). A request cut by a
  kill before its journal entry was never accepted: no 202 went out and nothing runs it.
  Then ``answered`` once the 202 went out (its request id): an accepted request with none was
  cut by a kill before its caller learned where the result would be;
- ``model-server.jsonl``: ``call`` (every ``POST /invocations`` with a body: its sha256 and
  size, and the S3 input location, its ETag, the inference id and the accepted request the
  emulator names in the ``X-Emulator-*`` headers) then ``outcome`` (its HTTP status);
- ``bedrock-runtime.jsonl``: ``request`` (every Converse / InvokeModel: the sha256 of the
  text inside the prompt's ``<transcript>`` tags, which identifies the transcript it
  summarises, and the outcome: ``success`` or the error code).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

SAGEMAKER_ASYNC = "sagemaker-async.jsonl"
MODEL_SERVER = "model-server.jsonl"
BEDROCK_RUNTIME = "bedrock-runtime.jsonl"

INPUT_LOCATION_HEADER = "X-Emulator-Input-Location"
INPUT_ETAG_HEADER = "X-Emulator-Input-ETag"
INFERENCE_ID_HEADER = "X-Emulator-Inference-Id"
REQUEST_ID_HEADER = "X-Emulator-Request-Id"
"""What the SageMaker-async emulator tells the model server about a request (ignored by the model)."""


def request_headers(input_location: str | None, etag: str | None, inference_id: str, request_id: str) -> dict[str, str]:
    """The ``X-Emulator-*`` headers naming a model call's input and the accepted request it serves
    (percent-encoded: keys may be unicode)."""
    headers = {INFERENCE_ID_HEADER: quote(inference_id), REQUEST_ID_HEADER: quote(request_id)}
    if input_location:  # not for a payload sent inline
        headers[INPUT_LOCATION_HEADER] = quote(input_location, safe="/:")
        headers[INPUT_ETAG_HEADER] = quote(etag or "")
    return headers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return unquote(value) if value is not None else None


def text_key(text: str) -> str:
    """How the Bedrock journal names the text a request summarises (and how a reader finds it)."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


class WitnessJournal:
    """Appends events to one JSONL file, each flushed to disk before ``record`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":  # a line the last kill cut short: end it
            os.write(self._fd, b"\n")

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": time.time(), **fields}, ensure_ascii=False) + "\n"
        with self._lock:
            os.write(self._fd, line.encode("utf-8"))
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class ModelWitness:
    """The model server's journal: a ``call`` when a request's body is read, its ``outcome`` after."""

    def __init__(self, journal: WitnessJournal) -> None:
        self.journal = journal

    def call(self, headers: Mapping[str, str], body: bytes) -> str:
        call_id = uuid.uuid4().hex
        self.journal.record(
            "call",
            call_id=call_id,
            sha256=hashlib.sha256(body).hexdigest(),
            bytes=len(body),
            input_location=_header(headers, INPUT_LOCATION_HEADER),
            input_etag=_header(headers, INPUT_ETAG_HEADER),
            inference_id=_header(headers, INFERENCE_ID_HEADER),
            request_id=_header(headers, REQUEST_ID_HEADER),
        )
        return call_id

    def outcome(self, call_id: str, status: int) -> None:
        self.journal.record("outcome", call_id=call_id, status=status)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The events of one journal, oldest first; a line cut short by a kill is left out."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


@dataclass
class Witnesses:
    """The three journals of one stack, as the fault runner asks about them."""

    accepted: list[dict[str, Any]]
    """Each accepted request once, in the order the endpoint first journaled them."""
    model_calls: list[dict[str, Any]]
    bedrock_requests: list[dict[str, Any]]
    answered: set[str] = field(default_factory=set)
    """Request ids of the accepted requests whose 202 went out."""

    @classmethod
    def load(cls, directory: Path) -> Witnesses:
        """The journals of ``directory``; each input location is the file the input was copied from
        when it was a copy (see :func:`copied_from`), the location sent kept as ``sent_location``."""
        accepted: dict[str, dict[str, Any]] = {}
        answered: set[str] = set()
        for e in read_journal(directory / SAGEMAKER_ASYNC):
            if e["event"] == "accepted":
                accepted.setdefault(e["request_id"], _source(e))  # its first record: a resume repeats it
            elif e["event"] == "answered":
                answered.add(e["request_id"])
        return cls(
            accepted=list(accepted.values()),
            answered=answered,
            model_calls=[_source(e) for e in read_journal(directory / MODEL_SERVER) if e["event"] == "call"],
            bedrock_requests=[e for e in read_journal(directory / BEDROCK_RUNTIME) if e["event"] == "request"],
        )

    def calls_of(self, uri: str, etag: str) -> list[dict[str, Any]]:
        """Model calls for one version of one S3 object (ETags compared without their quotes)."""
        return [c for c in self.model_calls if c["input_location"] == uri and _etag(c["input_etag"]) == _etag(etag)]

    def calls_per_version(self) -> Counter[tuple[str, str | None]]:
        """Model calls per (input location, ETag): a count over 1 is a file version processed twice."""
        return Counter((c["input_location"], _etag(c["input_etag"])) for c in self.model_calls if c["input_location"])

    def output_locations(self, inference_ids: set[str]) -> set[str]:
        """Where the endpoint said it would write the results of these inference ids."""
        return {a["output_location"] for a in self.accepted if a["inference_id"] in inference_ids}

    def summaries_succeeded(self) -> Counter[str]:
        """Successful Bedrock requests per summarised text (``text_key``)."""
        return Counter(r["text_key"] for r in self.bedrock_requests if r["outcome"] == "success")


def copied_from(location: str | None, inference_id: str | None) -> str | None:
    """The file an input location was copied from, by the name the pipeline gives what it sends
    (``<inputs path><inference id>/<bucket>/<key>``, a copy of exactly the claimed version), or
    the location itself when it names no copy."""
    if not location or not inference_id:
        return location
    _, found, source = location.partition(f"/{inference_id}/")
    return f"s3://{source}" if found and source else location


def _source(event: dict[str, Any]) -> dict[str, Any]:
    location = event.get("input_location")
    return {**event, "sent_location": location, "input_location": copied_from(location, event.get("inference_id"))}


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else value
