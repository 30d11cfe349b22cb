"""Synthesise the CDK app once per variant and session (jsii starts a node process: seconds, not milliseconds)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.app import build

REPO = Path(__file__).resolve().parents[2]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/audio-asr:1.0"
STACK = "AudioTranscriptionPipeline"
CDK_JSON = json.loads((REPO / "infra/cdk.json").read_text())
CDK_CONTEXT = CDK_JSON["context"]
"""What ``cdk synth`` reads from cdk.json (feature flags included), under the ``-c`` values below."""


def synth(tmp_path_factory, **context):
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = {**CDK_CONTEXT, "inputBucketName": "team-audio", "modelImageUri": IMAGE, **context}
    app = cdk.App(context=context, outdir=str(outdir))
    stack = build(app)
    app.synth()  # raises when cdk-nag reports an unacknowledged error
    path = outdir / f"{stack.stack_name}.template.json"
    return Template.from_json(json.loads(path.read_text())), path


@pytest.fixture(scope="session")
def deployed(tmp_path_factory):
    return synth(tmp_path_factory)


@pytest.fixture(scope="session")
def template(deployed):
    return deployed[0]


@pytest.fixture(scope="session")
def existing_endpoint(tmp_path_factory):
    return synth(tmp_path_factory, existingEndpointName="parakeet-async-endpoint")[0]


def cdk_synth(outdir: Path, context: dict) -> subprocess.CompletedProcess:
    """``cd infra && cdk synth -c ...`` as the CDK CLI runs it: cdk.json's app command, the context
    (cdk.json's, then the ``-c`` values) in CDK_CONTEXT_JSON."""
    return subprocess.run(
        shlex.split(CDK_JSON["app"]),
        cwd=REPO / "infra",
        env={**os.environ, "CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps({**CDK_CONTEXT, **context})},
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="session")
def customised(tmp_path_factory):
    """Every inference parameter changed, a foundation-model id for Bedrock, a nightly prefix, a public
    web server, an alarm address, and no image URI, so the image is a CDK asset built from
    infra/container/Dockerfile; synthesised as ``cdk synth`` does."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = {
        "inputBucketName": "team-audio",
        "modelDataUrl": "s3://team-models/parakeet/model.tar.gz",
        "instanceType": "ml.g5.xlarge",
        "maxInstances": 5,
        "bedrockModelId": "anthropic.claude-3-5-haiku-20241022-v1:0",
        # and every choice docs/deploy.md offers beside them
        "scheduleBucketUri": "s3://team-audio/calls/",
        "webserverAccessMode": "PUBLIC_ONLY",
        "alarmEmail": "ops@example.com",
    }
    result = cdk_synth(outdir, context)
    assert result.returncode == 0, result.stderr[-3000:]
    path = outdir / f"{STACK}.template.json"
    return Template.from_json(json.loads(path.read_text())), path
