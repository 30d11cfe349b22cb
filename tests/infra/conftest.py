"""Synthesise the CDK app once per session (jsii starts a node process: seconds, not milliseconds)."""

from __future__ import annotations

import json

import pytest

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/audio-asr:1.0"


def synth(tmp_path_factory, **context):
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.app import build

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = cdk.App(context={"inputBucketName": "team-audio", "modelImageUri": IMAGE, **context}, outdir=str(outdir))
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
