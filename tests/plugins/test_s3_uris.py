"""The run's bucket URI, parsed or refused saying why, and s3://bucket/key split."""

from __future__ import annotations

import pytest

from audio_pipeline.s3_uris import BucketUriError, S3Location, parse_bucket_uri, split_s3_uri


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://audio-in/calls/", "audio-in", "calls/"),
        ("s3://audio-in/calls", "audio-in", "calls/"),
        ("s3://audio-in", "audio-in", ""),
        ("s3://audio-in/", "audio-in", ""),
        ("  s3://audio.in-2/a/b/  ", "audio.in-2", "a/b/"),
    ],
)
def test_parse_bucket_uri(uri, bucket, prefix):
    assert parse_bucket_uri(uri) == S3Location(bucket, prefix)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "no bucket URI"),
        ("", "no bucket URI"),
        ("   ", "no bucket URI"),
        (42, "must be a string"),
        ("audio-in/calls/", "must start with s3://"),
        ("https://audio-in.s3.amazonaws.com/x", "must start with s3://"),
        ("s3:///calls/", "names no bucket"),
        ("s3://Audio_In/calls/", "not a valid S3 bucket name"),
        ("s3://ab/", "not a valid S3 bucket name"),
        ("s3://a..b/", "not a valid S3 bucket name"),
    ],
)
def test_parse_bucket_uri_says_what_is_wrong(value, message):
    with pytest.raises(BucketUriError, match=message):
        parse_bucket_uri(value)


def test_split_s3_uri():
    assert split_s3_uri("s3://b/k/with spaces/ü.wav") == ("b", "k/with spaces/ü.wav")
    with pytest.raises(ValueError, match="not an s3://bucket/key URI"):
        split_s3_uri("s3://bucket-only")
