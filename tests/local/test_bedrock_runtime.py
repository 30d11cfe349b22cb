from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.bedrock_runtime.models import NOTE, ExtractiveModel
from local.bedrock_runtime.server import BedrockServer, Faults

DOCUMENT = (
    "The quarterly review covered three topics. Revenue grew by twelve percent, driven by the new subscription plan. "
    "Customer churn fell for the second quarter in a row. The team agreed to hire two more support engineers. "
    "Marketing will focus on the subscription plan next quarter. The weather was pleasant during the offsite. "
    "Finally, the budget for the data platform was approved."
)
PROMPT = f"Summarise this transcript. Answer in JSON.\n\n<transcript>\n{DOCUMENT}\n</transcript>"


@pytest.fixture
def bedrock(monkeypatch):
    def start(faults=None, model=None):
        server = BedrockServer(("127.0.0.1", 0), model or ExtractiveModel(), faults or Faults())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url)
        return boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}),
        )

    servers = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def converse(client, model_id="us.anthropic.claude-haiku-4-5-20251001-v1:0", text=PROMPT, **config):
    return client.converse(
        modelId=model_id,
        system=[{"text": "You summarise transcripts. Answer with a JSON object."}],
        messages=[{"role": "user", "content": [{"text": text}]}],
        inferenceConfig={"maxTokens": 512, "temperature": 0.2, **config},
    )


def test_converse_follows_a_json_prompt_with_sentences_of_the_input(bedrock):
    response = converse(bedrock())
    assert response["stopReason"] == "end_turn"
    assert response["output"]["message"]["role"] == "assistant"
    usage = response["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    # what Bedrock would bill: the system prompt and the message, about four characters a token
    system = "You summarise transcripts. Answer with a JSON object."
    assert usage["inputTokens"] == math.ceil(len(system) / 4) + math.ceil(len(PROMPT) / 4)
    assert usage["outputTokens"] == math.ceil(len(response["output"]["message"]["content"][0]["text"]) / 4)
    assert isinstance(response["metrics"]["latencyMs"], int)
    doc = json.loads(response["output"]["message"]["content"][0]["text"])
    assert doc["note"] == NOTE
    assert doc["summary"] and len(doc["summary"]) < len(DOCUMENT)
    for sentence in doc["summary"].split(". "):
        assert sentence.rstrip(".") in DOCUMENT
    assert doc["key_points"] and all(p in DOCUMENT for p in doc["key_points"])
    assert "weather" not in doc["summary"]


@pytest.mark.parametrize(
    "model_id",
    [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "eu.amazon.nova-lite-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
    ],
)
def test_model_ids_and_inference_profiles(bedrock, model_id):
    assert converse(bedrock(), model_id=model_id)["output"]["message"]["content"][0]["text"]


def test_plain_text_when_json_is_not_asked(bedrock):
    response = bedrock().converse(
        modelId="amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": DOCUMENT}]}]
    )
    assert response["output"]["message"]["content"][0]["text"].startswith(f"({NOTE})")


def test_max_tokens_cuts_the_answer(bedrock):
    response = converse(bedrock(), maxTokens=10)
    assert response["stopReason"] == "max_tokens"
    assert len(response["output"]["message"]["content"][0]["text"]) <= 40
    assert response["usage"]["outputTokens"] == 10, "an answer cut at maxTokens used them all"


def test_invoke_model_anthropic_body(bedrock):
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 300,
        "system": "Answer in JSON.",
        "messages": [{"role": "user", "content": PROMPT}],
    }
    response = bedrock().invoke_model(modelId="anthropic.claude-3-haiku-20240307-v1:0", body=json.dumps(body))
    doc = json.loads(response["body"].read())
    assert doc["type"] == "message" and doc["role"] == "assistant" and doc["stop_reason"] == "end_turn"
    assert json.loads(doc["content"][0]["text"])["summary"]
    assert set(doc["usage"]) == {"input_tokens", "output_tokens"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: converse(c, topP=0.9), "temperature and top_p cannot both be specified"),
        (lambda c: converse(c, model_id="not a model"), "model identifier is invalid"),
        (
            lambda c: c.converse(
                modelId="amazon.nova-lite-v1:0", messages=[{"role": "assistant", "content": [{"text": "hi"}]}]
            ),
            "must start with a user message",
        ),
        (lambda c: converse(c, model_id="amazon.titan-text-express-v1"), "doesn't support system messages"),
    ],
)
def test_validation_errors(bedrock, call, message):
    with pytest.raises(ClientError) as err:
        call(bedrock())
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert message in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    "body",
    [
        [{"role": "user", "content": "hi"}],
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": ["hi"]},
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user", "content": 5}]},
    ],
)
def test_malformed_invoke_model_body_is_a_validation_error(bedrock, body):
    with pytest.raises(ClientError) as err:
        bedrock().invoke_model(modelId="anthropic.claude-3-haiku-20240307-v1:0", body=json.dumps(body))
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Malformed input request" in err.value.response["Error"]["Message"]


def test_a_failing_model_is_an_internal_server_error(bedrock):
    class Failing:
        def reply(self, system, prompt, max_tokens):
            raise RuntimeError("out of memory")

    with pytest.raises(ClientError) as err:
        converse(bedrock(model=Failing()))
    assert err.value.response["Error"]["Code"] == "InternalServerException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_faults_are_off_by_default_and_work_when_on(bedrock):
    client = bedrock()
    assert all(converse(client) for _ in range(5))
    throttled = bedrock(Faults(throttle_rate=1.0))
    with pytest.raises(ClientError) as err:
        converse(throttled)
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    marked = bedrock(Faults(fail_marker="POISON"))
    with pytest.raises(ClientError):
        converse(marked, text=PROMPT + " POISON")
    assert converse(marked)


def _switch(client, fault: str, seconds: str) -> tuple[int, dict]:
    url = f"{client.meta.endpoint_url}/_emulator/faults/{fault}?seconds={seconds}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _held(client) -> int:
    with urllib.request.urlopen(f"{client.meta.endpoint_url}/_emulator/health", timeout=10) as answer:
        return json.loads(answer.read())["requests"]["held"]


def test_the_throttle_switch_throttles_every_request_until_lifted(bedrock):
    client = bedrock()
    assert _switch(client, "throttle", "600") == (200, {"seconds": 600.0})
    for _ in range(3):
        with pytest.raises(ClientError) as err:
            converse(client)
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert _switch(client, "throttle", "soon") == (400, {"message": "seconds='soon': expected a number of at least 0"})
    with pytest.raises(ClientError):
        converse(client)  # a bad value changed nothing
    assert _switch(client, "throttle", "0") == (200, {"seconds": 0.0})
    assert converse(client)["stopReason"] == "end_turn"


def test_the_hold_switch_answers_requests_in_flight_when_it_ends(bedrock):
    client = bedrock()
    assert _switch(client, "hold", "600") == (200, {"seconds": 600.0})
    answers: list[dict] = []
    waiting = [threading.Thread(target=lambda: answers.append(converse(client))) for _ in range(3)]
    for thread in waiting:
        thread.start()
    time.sleep(1)
    assert answers == [] and all(thread.is_alive() for thread in waiting), "held while the switch is on"
    assert _held(client) == 3
    assert _switch(client, "hold", "0") == (200, {"seconds": 0.0})
    for thread in waiting:
        thread.join(timeout=10)
    assert [a["stopReason"] for a in answers] == ["end_turn"] * 3
    assert _held(client) == 0
    started = time.monotonic()
    assert converse(client) and time.monotonic() - started < 1, "answered at once once it ended"


def test_through_the_providers_hook(bedrock, monkeypatch):
    from airflow.providers.amazon.aws.hooks.bedrock import BedrockRuntimeHook

    bedrock()
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}})
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    response = converse(BedrockRuntimeHook(aws_conn_id="aws_default").conn)
    assert json.loads(response["output"]["message"]["content"][0]["text"])["summary"]


def test_the_summarizer_works_with_a_model_that_takes_no_system_prompt(bedrock):
    from audio_pipeline.summaries import Summarizer
    from tests.plugins.conftest import bedrock_hook
    from tests.prompts import PROMPTS

    summarizer = Summarizer(bedrock_hook(bedrock()), "amazon.titan-text-express-v1", prompts=PROMPTS)
    summary = summarizer.summarize("Plants turn sunlight into sugar. They need water and air to do it.")
    assert summary.summary and not summarizer.takes_system_prompt
