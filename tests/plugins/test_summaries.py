from __future__ import annotations

import json
import threading

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber

from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook
from audio_pipeline.summaries import (
    NO_SPEECH,
    Summarizer,
    SummaryError,
    first_sentence,
    parse_answer,
    split_text,
    summary_location,
)
from tests.plugins.conftest import bedrock_hook
from tests.prompts import PROMPTS

from .conftest import answer_over_http, aws_error

PROFILE = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"


def answer(text: str, stop: str = "end_turn") -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120},
        "metrics": {"latencyMs": 5},
    }


@pytest.fixture
def bedrock():
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_request_shape_and_json_answer(bedrock):
    client, stub = bedrock
    expected = {
        "modelId": PROFILE,
        "system": [{"text": ANY}],
        "messages": [{"role": "user", "content": [{"text": ANY}]}],
        "inferenceConfig": {"maxTokens": 512, "temperature": 0.2},
    }
    stub.add_response("converse", answer('{"summary": "A short call.", "key_points": ["one", "two"]}'), expected)
    summary = Summarizer(bedrock_hook(client), PROFILE, max_tokens=512, prompts=PROMPTS).summarize(
        "Hello. This is a short call."
    )
    assert summary.summary == "A short call." and summary.key_points == ["one", "two"]
    assert summary.model_id == PROFILE and summary.chunks == 1
    doc = json.loads(summary.to_json())
    assert doc["model_id"] == PROFILE and doc["usage"] == {"input_tokens": 100, "output_tokens": 20}


def test_transcript_reaches_the_prompt_inside_tags(bedrock):
    client, stub = bedrock
    seen = {}
    client.meta.events.register(
        "before-parameter-build.bedrock-runtime.Converse", lambda params, **kw: seen.update(params)
    )
    stub.add_response("converse", answer('{"summary": "s", "key_points": []}'))
    Summarizer(bedrock_hook(client), PROFILE, prompts=PROMPTS).summarize("The budget was approved.")
    text = seen["messages"][0]["content"][0]["text"]
    assert "<transcript>\nThe budget was approved.\n</transcript>" in text
    assert "topP" not in seen["inferenceConfig"], "never temperature and topP together"


@pytest.mark.parametrize(
    ("text", "summary", "points"),
    [
        ('```json\n{"summary": "Fenced.", "key_points": ["a"]}\n```', "Fenced.", ["a"]),
        ('Here you go: {"summary": "Wrapped.", "key_points": []} Hope it helps.', "Wrapped.", []),
        ("Just prose, no JSON at all.", "Just prose, no JSON at all.", []),
        ('{"summary": broken json', '{"summary": broken json', []),
    ],
)
def test_parse_answer(text, summary, points):
    assert parse_answer(text) == (summary, points)


@pytest.fixture
def bedrock_over_http(monkeypatch):
    """The DAG's Bedrock client (adaptive retries), answered at the HTTP layer so botocore retries."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")

    def client(**config):
        return AdaptiveBedrockRuntimeHook(aws_conn_id=None, region_name="us-east-1", config=Config(**config)).conn

    return client


def test_retries_throttling_then_succeeds(bedrock_over_http):
    client = bedrock_over_http()
    answers = [
        (429, aws_error("ThrottlingException", "Too many requests")),
        (503, aws_error("ServiceUnavailableException", "busy")),
        (200, answer('{"summary": "ok", "key_points": []}')),
    ]
    attempts = answer_over_http(client, "Converse", answers)
    assert Summarizer(bedrock_hook(client), PROFILE, prompts=PROMPTS).summarize("words").summary == "ok"
    assert attempts == [429, 503, 200], "retried by the client, once per answer"


def test_gives_up_after_max_attempts(bedrock_over_http):
    client = bedrock_over_http(retries={"mode": "adaptive", "max_attempts": 2})
    attempts = answer_over_http(client, "Converse", [(429, aws_error("ThrottlingException", "Too many requests"))] * 3)
    with pytest.raises(SummaryError, match="ThrottlingException after 3 attempts") as raised:
        Summarizer(bedrock_hook(client), PROFILE, prompts=PROMPTS).summarize("words")
    assert raised.value.retryable and len(attempts) == 3, "no retries stacked on the client's"


def test_does_not_retry_a_bad_request(bedrock):
    client, stub = bedrock
    stub.add_client_error("converse", "ValidationException", "The provided model identifier is invalid.", 400)
    with pytest.raises(SummaryError, match=f"{PROFILE}: ValidationException"):
        Summarizer(bedrock_hook(client), PROFILE, prompts=PROMPTS).summarize("words")


def test_a_model_without_system_prompts_gets_the_instructions_in_the_user_message(bedrock):
    client, stub = bedrock
    titan = "amazon.titan-text-premier-v1:0"
    sent = []
    client.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse", lambda params, **_: sent.append(params)
    )
    stub.add_client_error("converse", "ValidationException", "This model doesn't support system messages.", 400)
    for _ in range(2):
        stub.add_response("converse", answer('{"summary": "A call."}'))
    summarizer = Summarizer(bedrock_hook(client), titan, prompts=PROMPTS)
    assert summarizer.summarize("Hello there.").summary == "A call."
    assert summarizer.summarize("Hello again.").summary == "A call."
    assert "system" in sent[0] and not any("system" in params for params in sent[1:]), "asked once, then not again"
    system = summarizer.prompts["summarize_system"]
    assert [p["messages"][0]["content"][0]["text"].startswith(f"{system}\n\n") for p in sent[1:]] == [True, True]


def test_requests_in_flight_when_the_model_refuses_system_prompts_are_sent_again_too():
    """The summarising task shares one Summarizer among its threads: each request that went out
    with a system prompt is answered by the same refusal, and each is sent again without it."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import ClientError

    class NoSystemPrompts:
        def __init__(self, threads):
            self.all_sent, self.first_resent = threading.Barrier(threads), threading.Event()

        def converse(self, **request):
            if "system" in request:
                # every thread's first request is out before any answer; one refusal comes back
                # first, the others once that thread has sent its request again
                if self.all_sent.wait(timeout=10) != 0:
                    self.first_resent.wait(timeout=10)
                refusal = {"Code": "ValidationException", "Message": "This model doesn't support system messages."}
                raise ClientError({"Error": refusal}, "Converse")
            self.first_resent.set()
            return answer('{"summary": "A call."}')

    summarizer = Summarizer(bedrock_hook(NoSystemPrompts(4)), "mistral.mistral-7b-instruct-v0:2", prompts=PROMPTS)
    with ThreadPoolExecutor(4) as pool:
        summaries = list(pool.map(summarizer.summarize, [f"Call number {i}." for i in range(4)]))
    assert [s.summary for s in summaries] == ["A call."] * 4


def test_long_transcript_is_summarised_hierarchically_never_truncated(bedrock):
    client, stub = bedrock
    sentences = [f"Sentence number {i} talks about topic {i % 7}." for i in range(400)]
    transcript = " ".join(sentences)
    requests = []
    client.meta.events.register(
        "before-parameter-build.bedrock-runtime.Converse",
        lambda params, **kw: requests.append(params["messages"][0]["content"][0]["text"]),
    )
    chunk_chars = 2000
    parts = split_text(transcript, chunk_chars)
    for i in range(len(parts)):
        stub.add_response(
            "converse", answer(json.dumps({"summary": f"Summary of part {i + 1}. " * 12, "key_points": []}))
        )
    # part summaries (~300 chars each) exceed one request together: one more level, then the final combine
    combined = "\n\n".join(f"Part {i + 1}: " + (f"Summary of part {i + 1}. " * 12).strip() for i in range(len(parts)))
    groups = split_text(combined, chunk_chars)
    assert len(groups) > 1
    for _ in groups:
        stub.add_response("converse", answer('{"summary": "Group summary.", "key_points": []}'))
    stub.add_response("converse", answer('{"summary": "The whole recording.", "key_points": ["k"]}'))

    summary = Summarizer(bedrock_hook(client), PROFILE, chunk_chars=chunk_chars, prompts=PROMPTS).summarize(transcript)

    assert summary.summary == "The whole recording." and summary.chunks == len(parts)
    assert len(requests) == len(parts) + len(groups) + 1
    for sentence in sentences:
        assert any(sentence in r for r in requests[: len(parts)]), f"{sentence!r} never reached Bedrock"
    assert all(len(p) <= chunk_chars for p in parts)


def test_empty_transcript_makes_no_call(bedrock):
    client, _ = bedrock
    summary = Summarizer(bedrock_hook(client), PROFILE, prompts=PROMPTS).summarize("   ")
    assert summary.summary == NO_SPEECH and summary.chunks == 0


def test_split_text_cuts_overlong_sentences():
    parts = split_text("word " * 100, 42)
    assert all(len(p) <= 42 for p in parts) and " ".join(parts).split() == ["word"] * 100


def test_summary_location():
    assert summary_location("s3://b/transcripts/abc.out") == "s3://b/transcripts/abc.summary.json"
    assert summary_location("s3://b/transcripts/abc") == "s3://b/transcripts/abc.summary.json"


def test_first_sentence_is_cut_for_one_line():
    assert first_sentence("  One. Two.") == "One."
    assert first_sentence("x" * 300, limit=20) == "x" * 19 + "…"
