"""What answers the requests: the offline extractive summariser, or a local GGUF model."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

NOTE = "extractive summary by the local Bedrock emulator"
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z']+")
_STOPWORDS = frozenset(
    """a an and are as at be been but by for from has have he her his i in into is it its of on or our she so
    that the their them there they this to was we were will with you your""".split()
)


CHARS_PER_TOKEN = 4
"""About four characters of English a token (Anthropic's and OpenAI's rule of thumb)."""


def estimate_tokens(text: str) -> int:
    """A model's token count of ``text``, estimated from its length (at least one)."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass
class Reply:
    text: str
    stop_reason: str  # end_turn | max_tokens
    input_tokens: int
    """The request's tokens, system prompt included, as Converse's ``usage.inputTokens`` counts them."""
    output_tokens: int
    """The answer's tokens (``maxTokens`` when it stopped there)."""


class Model(Protocol):
    def reply(self, system: str, prompt: str, max_tokens: int) -> Reply: ...


def document_of(prompt: str) -> str:
    """The text to summarise: inside <transcript> tags, after a "Transcript:" line, or the prompt."""
    tagged = re.search(r"<transcript>(.*?)</transcript>", prompt, re.DOTALL)
    if tagged:
        return tagged.group(1).strip()
    marker = re.search(r"^transcript:\s*$", prompt, re.IGNORECASE | re.MULTILINE)
    return prompt[marker.end() :].strip() if marker else prompt.strip()


def rank_sentences(text: str) -> list[str]:
    """Sentences of ``text``, most representative first (word frequency, a nudge for early ones)."""
    sentences = [s.strip() for s in _SENTENCE.split(text.replace("\n", " ")) if s.strip()]
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
    frequency = Counter(words)
    top = max(frequency.values(), default=1)

    def score(index: int, sentence: str) -> float:
        terms = [w for w in _WORD.findall(sentence.lower()) if w not in _STOPWORDS]
        if not terms:
            return 0.0
        weight = sum(frequency[w] / top for w in terms) / math.sqrt(len(terms))
        return weight * (1.0 + 0.3 / (1 + index))

    order = sorted(range(len(sentences)), key=lambda i: score(i, sentences[i]), reverse=True)
    return [sentences[i] for i in order]


class ExtractiveModel:
    """Answers with the input's own most representative sentences; honest about being extractive."""

    def reply(self, system: str, prompt: str, max_tokens: int) -> Reply:
        document = document_of(prompt)
        ranked = rank_sentences(document)
        count = max(1, min(4, math.ceil(len(ranked) / 4)))
        chosen = set(ranked[:count])
        in_order = [s for s in _SENTENCE.split(document.replace("\n", " ")) if s.strip() in chosen]
        summary = " ".join(s.strip() for s in in_order) or document
        if "JSON" in system or "JSON" in prompt:
            text = json.dumps({"summary": summary, "key_points": ranked[:5], "note": NOTE})
        else:
            text = f"({NOTE})\n{summary}"
        asked = estimate_tokens(system) + estimate_tokens(prompt)
        limit = max_tokens * CHARS_PER_TOKEN
        if len(text) > limit:
            return Reply(text[:limit], "max_tokens", asked, max_tokens)
        return Reply(text, "end_turn", asked, estimate_tokens(text))


class GgufModel:
    """A local GGUF model through llama-cpp-python (installed by the user; nothing is downloaded)."""

    def __init__(self, path: str) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise SystemExit("--gguf needs llama-cpp-python: pip install llama-cpp-python") from err
        self._llm = Llama(model_path=path, n_ctx=8192, verbose=False)

    def reply(self, system: str, prompt: str, max_tokens: int) -> Reply:
        result = self._llm.create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            max_tokens=max_tokens,
        )
        choice, usage = result["choices"][0], result["usage"]
        return Reply(
            choice["message"]["content"],
            "max_tokens" if choice["finish_reason"] == "length" else "end_turn",
            usage["prompt_tokens"],  # the model's own tokenizer's counts
            usage["completion_tokens"],
        )
