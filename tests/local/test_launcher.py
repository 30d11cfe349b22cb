"""The launcher's boto3 session: pinned to its own stack, whatever other stacks the process holds."""

from __future__ import annotations

import os
from pathlib import Path

from local.stack.launcher import aws_session
from local.stack.services import Ports, Settings


def _settings(base: int) -> Settings:
    return Settings(state_dir=Path("/state"), ports=Ports(base, base + 1, base + 2, base + 3, base + 4))


def test_each_session_reaches_its_own_stack_after_another_stack_made_a_session(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    first = aws_session(_settings(41000))
    aws_session(_settings(42000))  # a fault row's stack, started (and torn down) later in one pytest session

    assert first.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:41000"
    assert first.client("s3").meta.endpoint_url == "http://127.0.0.1:41000"
    assert first.client("sagemaker-runtime").meta.endpoint_url == "http://127.0.0.1:41001"
    assert first.client("bedrock-runtime").meta.endpoint_url == "http://127.0.0.1:41002"
    assert first.resource("dynamodb").meta.client.meta.endpoint_url == "http://127.0.0.1:41000"
    assert "AWS_ENDPOINT_URL" not in os.environ, "the process environment is left as it was"


def test_an_explicit_endpoint_still_wins():
    session = aws_session(_settings(41000))
    assert session.client("s3", endpoint_url="http://127.0.0.1:9").meta.endpoint_url == "http://127.0.0.1:9"
