"""The dataset upload script: its arguments and its upload half (the download needs internet)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

SPEC = importlib.util.spec_from_file_location(
    "upload_dataset", Path(__file__).resolve().parents[1] / "scripts" / "upload_dataset.py"
)
upload_dataset = importlib.util.module_from_spec(SPEC)
sys.modules["upload_dataset"] = upload_dataset  # dataclasses look their module up
SPEC.loader.exec_module(upload_dataset)


def test_arguments_like_the_original_script():
    args = upload_dataset.parse_args(["--bucket", "b", "--prefix", "calls", "--max-samples", "3"])
    assert (args.bucket, args.prefix, args.max_samples) == ("b", "calls/", 3)
    with pytest.raises(SystemExit):
        upload_dataset.parse_args(["--bucket", "b", "--max-samples", "0"])
    with pytest.raises(SystemExit):
        upload_dataset.parse_args([])


def test_upload_writes_the_clips_and_their_references(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    samples = (upload_dataset.Sample(f"{i:06d}.wav", b"RIFF" + bytes([i]), f"text {i}") for i in range(5))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="audio")
        keys = upload_dataset.upload_samples(s3, samples, "audio", "calls/", max_samples=3)
        assert keys == ["calls/000000.wav", "calls/000001.wav", "calls/000002.wav"]
        references = json.loads(s3.get_object(Bucket="audio", Key="calls/references.json")["Body"].read())
        assert references == {"000000.wav": "text 0", "000001.wav": "text 1", "000002.wav": "text 2"}
