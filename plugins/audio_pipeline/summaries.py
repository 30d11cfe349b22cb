"""Summaries with Amazon Bedrock through Converse, so any model id or inference profile works.

A transcript longer than one request is split on sentence boundaries, each part is
summarised, and the part summaries are combined (repeatedly, if they are themselves too
long): nothing is ever truncated. Prompts come from :mod:`audio_pipeline.prompt_templates`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from audio_pipeline.config import DEFAULTS

if TYPE_CHECKING:
    from types_boto3_bedrock_runtime.type_defs import ConverseResponseTypeDef

    from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook

log = logging.getLogger(__name__)

MAX_REDUCE_LEVELS = 8
NO_SPEECH = "The recording contained no speech."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_NO_SYSTEM_PROMPT = re.compile(r"support\w* system (message|prompt)", re.IGNORECASE)
"""How Bedrock rejects a system prompt the model does not take (Converse, ValidationException)."""


class SummaryError(RuntimeError):
    """Bedrock did not produce a summary; the message names the model and the AWS error.

    ``retryable`` says whether a later attempt may succeed (throttling that outlasted the
    retries) or not (a request Bedrock rejects, a model without access).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ConverseError(SummaryError):
    """Bedrock answered a Converse request with an error: its ``code`` and ``message``."""

    def __init__(self, text: str, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(text, retryable=retryable)
        self.code, self.message = code, message


@dataclass
class Summary:
    summary: str
    key_points: list[str]
    model_id: str
    chunks: int
    input_chars: int
    input_tokens: int = 0
    output_tokens: int = 0
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> str:
        """The document stored in S3 next to the transcript."""
        return json.dumps(
            {
                "summary": self.summary,
                "key_points": self.key_points,
                "model_id": self.model_id,
                "chunks": self.chunks,
                "input_chars": self.input_chars,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
                "created_at": self.created_at,
            },
            ensure_ascii=False,
            indent=1,
        )


def summary_location(output_location: str) -> str:
    """Where a transcript's summary goes: next to it, ``x.out`` -> ``x.summary.json``."""
    base = output_location[: -len(".out")] if output_location.endswith(".out") else output_location
    return f"{base}.summary.json"


def first_sentence(text: str, limit: int = 200) -> str:
    """The summary's opening sentence, for one-line reports (cut at ``limit`` characters)."""
    sentence = _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters, at sentence ends where possible."""
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > limit:  # a sentence longer than a part: cut at the last space
            cut = sentence.rfind(" ", 0, limit + 1)
            cut = cut if cut > 0 else limit
            pieces.append(sentence[:cut])
            sentence = sentence[cut:].lstrip()
        if sentence:
            pieces.append(sentence)
    parts: list[str] = []
    for piece in pieces:
        if parts and len(parts[-1]) + 1 + len(piece) <= limit:
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    return parts


def parse_answer(text: str) -> tuple[str, list[str]]:
    """``(summary, key_points)`` from a model's answer: JSON, fenced or wrapped JSON, or plain text."""
    match = _JSON_OBJECT.search(text)
    if match:
        try:
            doc = json.loads(match.group(0))
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("summary"), str):
            points = doc.get("key_points") or []
            return doc["summary"].strip(), [str(p).strip() for p in points if str(p).strip()]
    return text.strip(), []


class Summarizer:
    """Summarise transcripts with one Bedrock model through Converse."""

    def __init__(
        self,
        bedrock: AdaptiveBedrockRuntimeHook,
        model_id: str,
        *,
        chunk_chars: int = DEFAULTS.summary_chunk_chars,
        max_tokens: int = DEFAULTS.summary_max_tokens,
        prompts: dict[str, str],
    ) -> None:
        self.bedrock = bedrock
        self.model_id = model_id
        self.chunk_chars = chunk_chars
        self.max_tokens = max_tokens
        self.prompts = prompts
        self.takes_system_prompt = True
        """False once the model said it takes none (Titan Text, Mistral 7B): the instructions then
        lead the user message."""

    def summarize(self, transcript: str) -> Summary:
        text = transcript.strip()
        result = Summary(NO_SPEECH, [], self.model_id, chunks=0, input_chars=len(text))
        if not text:
            return result
        if len(text) <= self.chunk_chars:
            result.chunks = 1
            result.summary, result.key_points = self._ask("summarize_chunk", text, result, part="")
            return result
        parts = split_text(text, self.chunk_chars)
        result.chunks = len(parts)
        answers = [
            self._ask("summarize_chunk", p, result, part=f" (part {i} of {len(parts)})")
            for i, p in enumerate(parts, start=1)
        ]
        for _ in range(MAX_REDUCE_LEVELS):
            combined = "\n\n".join(f"Part {i}: {s}" for i, (s, _) in enumerate(answers, start=1))
            if len(combined) <= self.chunk_chars:
                result.summary, result.key_points = self._ask("combine", combined, result)
                return result
            answers = [self._ask("combine", group, result) for group in split_text(combined, self.chunk_chars)]
        raise SummaryError(f"part summaries by {self.model_id} did not shrink after {MAX_REDUCE_LEVELS} levels")

    def _ask(self, template: str, text: str, result: Summary, part: str = "") -> tuple[str, list[str]]:
        response = self._converse(self.prompts[template].format(text=text, part=part))
        usage = response.get("usage", {})
        result.input_tokens += usage.get("inputTokens", 0)
        result.output_tokens += usage.get("outputTokens", 0)
        if response.get("stopReason") == "max_tokens":
            log.warning("%s stopped at maxTokens=%d; the summary may be cut short", self.model_id, self.max_tokens)
        blocks = response["output"]["message"]["content"]
        return parse_answer("".join(b.get("text", "") for b in blocks))

    def _converse(self, user_text: str) -> ConverseResponseTypeDef:
        """One Converse request, its instructions in the system prompt unless the model takes none.
        The hook's client has retried throttling and 5xx answers already; an error here is final for
        this attempt of the task, and :class:`SummaryError` says whether a later attempt may help."""
        system = self.prompts["summarize_system"]
        takes_system_prompt = self.takes_system_prompt
        try:
            return self.bedrock.converse(
                model_id=self.model_id,
                system=system if takes_system_prompt else None,
                user_text=user_text if takes_system_prompt else f"{system}\n\n{user_text}",
                max_tokens=self.max_tokens,
                temperature=0.2,
            )
        except ConverseError as err:
            if not (
                takes_system_prompt and err.code == "ValidationException" and _NO_SYSTEM_PROMPT.search(err.message)
            ):
                raise
            # this request's own answer: other threads' requests sent meanwhile get the same one
            if self.takes_system_prompt:
                log.info(
                    "%s takes no system prompt (%s): instructions go in the user message", self.model_id, err.message
                )
            self.takes_system_prompt = False
            return self._converse(user_text)
