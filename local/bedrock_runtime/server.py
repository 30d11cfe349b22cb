"""The bedrock-runtime HTTP surface: Converse, InvokeModel, errors as botocore parses them."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from local.aws_http import AwsJsonHandler, switch_value
from local.bedrock_runtime.models import Model, document_of
from local.witness import WitnessJournal, text_key

log = logging.getLogger(__name__)

_ROUTE = re.compile(r"^/model/(?P<model>.+)/(?P<action>converse|invoke)$")
_MODEL_ID = re.compile(
    r"^(arn:aws[\w-]*:bedrock:[\w-]*:\d{12}:application-inference-profile/[a-z0-9]+"  # its id has no dot
    r"|(arn:aws[\w-]*:bedrock:[\w-]*:\d*:(foundation-model|inference-profile)/)?"
    r"((us|eu|apac|us-gov|jp|au|global)\.)?[a-z0-9-]+\.[\w.:-]+)$"
)
_NO_TEMPERATURE_WITH_TOP_P = re.compile(r"anthropic\.claude-(opus|sonnet|haiku)-4")
_NO_SYSTEM_PROMPT = re.compile(r"amazon\.titan-text|mistral\.(mistral-7b|mixtral-8x7b)-instruct")
"""Models whose Converse takes no system prompt (Bedrock's "Supported models and model features")."""


class BedrockError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_MALFORMED = "Malformed input request, please reformat your input and try again."


def _validation(message: str) -> BedrockError:
    return BedrockError(HTTPStatus.BAD_REQUEST, "ValidationException", message)


@dataclass(frozen=True)
class Faults:
    throttle_rate: float = 0.0
    fail_marker: str | None = None
    seed: int = 7


THROTTLE = "/_emulator/faults/throttle"
"""``POST`` with ``?seconds=N``: every request gets ``ThrottlingException`` for the next N seconds."""
HOLD = "/_emulator/faults/hold"
"""``POST`` with ``?seconds=N``: a request is answered no sooner than N seconds from now, as a
model answering slowly would be (the requests in flight are answered when it ends). The health
answer's ``requests.held`` says how many are held now."""
SWITCHES = (THROTTLE, HOLD)
"""Switches set for a number of seconds; ``seconds=0`` ends the fault at once."""


class BedrockServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], model: Model, faults: Faults = Faults(), witness: WitnessJournal | None = None
    ) -> None:
        super().__init__(address, BedrockHandler)
        self.model = model
        self.faults = faults
        self.witness = witness
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._random = random.Random(faults.seed)
        self.until: dict[str, float] = {switch: 0.0 for switch in SWITCHES}
        """When each switch's fault ends (``time.monotonic()``)."""

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def journal(self, action: str, model_id: str, body: Any, outcome: str) -> None:
        """One witness record per request: which text it summarises, and whether it got an answer."""
        if self.witness:
            self.witness.record("request", action=action, model=model_id, text_key=_summarised(body), outcome=outcome)

    def throttled(self) -> bool:
        if time.monotonic() < self.until[THROTTLE]:
            return True
        with self._lock:
            return self.faults.throttle_rate > 0 and self._random.random() < self.faults.throttle_rate

    def hold(self) -> None:
        """Until the hold switch's time is up (or it is set to 0): answers come that late."""
        if self.until[HOLD] <= time.monotonic():
            return
        self.count("held")
        try:
            while (left := self.until[HOLD] - time.monotonic()) > 0:
                time.sleep(min(left, 0.05))
        finally:
            self.count("held", -1)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _validation(_MALFORMED)
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


_FIRST_MESSAGE = (
    "A conversation must start with a user message. Try again with a conversation that starts with a user message."
)


def _check_messages(messages: Any) -> str:
    """The last user message's text, after Bedrock's checks on the conversation."""
    messages = messages or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _validation(_MALFORMED)
    if not messages or messages[0].get("role") != "user":
        raise _validation(_FIRST_MESSAGE)
    last = messages[-1]
    if last.get("role") != "user":
        raise _validation("The last message must come from the user.")
    return _text_of(last.get("content", []))


def _summarised(body: Any) -> str | None:
    """``text_key`` of the text the last user message asks to summarise (None for a malformed body)."""
    try:
        messages = body["messages"]
        return text_key(document_of(_text_of(messages[-1]["content"])))
    except (BedrockError, KeyError, IndexError, TypeError):
        return None


def _check_model(model_id: str) -> None:
    if not _MODEL_ID.match(model_id):
        raise _validation("The provided model identifier is invalid.")


def _check_sampling(model_id: str, temperature: Any, top_p: Any) -> None:
    if temperature is not None and top_p is not None and _NO_TEMPERATURE_WITH_TOP_P.search(model_id):
        raise _validation("temperature and top_p cannot both be specified for this model. Please use only one.")


def _check_max_tokens(value: Any) -> int:
    if not isinstance(value, int) or value < 1:
        raise _validation(f"maxTokens must be a positive integer, got {value!r}.")
    return value


class BedrockHandler(AwsJsonHandler):
    server: BedrockServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/_emulator/health":
            self.send_json(HTTPStatus.OK, {"status": "ok", "requests": dict(self.server.counts)})
        else:
            self.send_error_json(HTTPStatus.NOT_FOUND, "UnknownOperationException", f"no operation at GET {self.path}")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        if path in SWITCHES:
            self._switch(path, query)
            return
        match = _ROUTE.match(path)
        body: Any = None
        try:
            if not match:
                raise BedrockError(HTTPStatus.NOT_FOUND, "UnknownOperationException", f"no operation at {self.path}")
            model_id = unquote(match["model"])
            _check_model(model_id)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise _validation(_MALFORMED) from None
            if not isinstance(body, dict):
                raise _validation(_MALFORMED)
            self.server.count(match["action"])
            if self.server.throttled():
                raise BedrockError(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    "ThrottlingException",
                    "Too many requests, please wait before trying again.",
                )  # noqa: E501
            self.server.hold()
            marker = self.server.faults.fail_marker
            if marker and marker in raw.decode("utf-8", "replace"):
                raise _validation("The request was rejected (fault injected by --fault-fail-marker).")
            answer = self._converse(model_id, body) if match["action"] == "converse" else self._invoke(model_id, body)
            self.server.journal(match["action"], model_id, body, "success")
            self.send_json(HTTPStatus.OK, answer)
        except BedrockError as err:
            self.server.count(err.code)
            if match:
                self.server.journal(match["action"], unquote(match["model"]), body, err.code)
            self.send_error_json(err.status, err.code, err.message)
        except Exception as err:  # an answer, not a dropped connection that botocore would retry
            log.exception("request to %s failed", self.path)
            self.server.journal(match["action"], unquote(match["model"]), body, "InternalServerException")
            self.send_error_json(
                HTTPStatus.INTERNAL_SERVER_ERROR, "InternalServerException", f"{type(err).__name__}: {err}"
            )

    def _switch(self, path: str, query: str) -> None:
        """A fault switch: 400 naming a bad value (nothing changed), else the fault from now on."""
        try:
            seconds = switch_value(query, "seconds")
        except ValueError as err:
            self.send_error_json(HTTPStatus.BAD_REQUEST, "ValidationException", str(err))
            return
        self.server.until[path] = time.monotonic() + seconds
        self.send_json(HTTPStatus.OK, {"seconds": seconds})

    def _converse(self, model_id: str, body: dict) -> dict:
        prompt = _check_messages(body.get("messages"))
        config = body.get("inferenceConfig") or {}
        _check_sampling(model_id, config.get("temperature"), config.get("topP"))
        max_tokens = _check_max_tokens(config.get("maxTokens", 4096))
        system = "".join(block.get("text", "") for block in body.get("system") or [])
        if body.get("system") and _NO_SYSTEM_PROMPT.search(model_id):
            raise _validation("This model doesn't support system messages. Try again without a system message.")
        started = time.monotonic()
        reply = self.server.model.reply(system, prompt, max_tokens)
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": reply.text}]}},
            "stopReason": reply.stop_reason,
            "usage": {
                "inputTokens": reply.input_tokens,
                "outputTokens": reply.output_tokens,
                "totalTokens": reply.input_tokens + reply.output_tokens,
            },
            "metrics": {"latencyMs": int((time.monotonic() - started) * 1000)},
        }

    def _invoke(self, model_id: str, body: dict) -> dict:
        if "anthropic" not in model_id:
            raise _validation(f"This emulator's InvokeModel speaks the Anthropic messages body only, not {model_id}.")
        if body.get("anthropic_version") != "bedrock-2023-05-31":
            raise _validation("anthropic_version: bedrock-2023-05-31 is required.")
        prompt = _check_messages(body.get("messages"))
        _check_sampling(model_id, body.get("temperature"), body.get("top_p"))
        max_tokens = _check_max_tokens(body.get("max_tokens"))
        system = _text_of(body.get("system") or "")
        reply = self.server.model.reply(system, prompt, max_tokens)
        return {
            "id": f"msg_bdrk_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model_id,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        }
