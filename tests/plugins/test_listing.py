from __future__ import annotations

import pytest

from audio_pipeline.config import DEFAULT_AUDIO_EXTENSIONS, MAX_ASYNC_PAYLOAD_BYTES
from audio_pipeline.listing import ListingReport, check_bucket, iter_audio_objects
from audio_pipeline.s3_uris import BucketUriError, S3Location

EXTENSIONS = frozenset(DEFAULT_AUDIO_EXTENSIONS)


def test_listing_reads_every_page_and_keeps_audio_only(s3):
    for i in range(1205):
        s3.put_object(Bucket="audio-in", Key=f"calls/{i:05d}.wav", Body=b"x")
    extra = {
        "calls/notes.txt": b"text",
        "calls/folder/": b"",
        "calls/empty.mp3": b"",
        "calls/Loud.FLAC": b"x",
        "calls/no_extension": b"x",
        "other/outside.wav": b"x",
    }
    for key, body in extra.items():
        s3.put_object(Bucket="audio-in", Key=key, Body=body)
    report = ListingReport()
    found = list(iter_audio_objects(s3, S3Location("audio-in", "calls/"), EXTENSIONS, report))
    keys = {o.key for o in found}
    assert len(found) == 1206 and "calls/Loud.FLAC" in keys and "other/outside.wav" not in keys
    assert report.objects == 1210
    assert report.skipped == {"not an audio extension": 2, "folder marker": 1, "zero bytes": 1}
    assert all(o.etag and '"' not in o.etag for o in found)
    assert any("calls/notes.txt" in line for line in report.lines())


def test_objects_over_the_async_limit_are_skipped(s3, monkeypatch):
    def page(**kwargs):
        yield {"Contents": [{"Key": "big.wav", "Size": MAX_ASYNC_PAYLOAD_BYTES + 1, "ETag": '"e"'}]}

    class Paginator:
        paginate = staticmethod(page)

    monkeypatch.setattr(s3, "get_paginator", lambda name: Paginator())
    report = ListingReport()
    assert list(iter_audio_objects(s3, S3Location("audio-in", ""), EXTENSIONS, report)) == []
    assert report.skipped == {"over the 1 GB asynchronous inference limit": 1}


def test_keys_whose_uri_is_over_the_input_location_limit_are_skipped(s3):
    """InvokeEndpointAsync rejects an InputLocation over 1,024 characters (botocore's model): such
    a key is skipped at listing with the reason, and the URI at the limit is kept."""
    prefix = "calls/"
    at_limit = prefix + "k" * (1024 - len("s3://audio-in/calls/") - len(".wav")) + ".wav"
    over = prefix + "k" * (len(at_limit) - len(prefix) - len(".wav") + 1) + ".wav"
    wide = prefix + "ü" * 510 + ".wav"  # 534 characters, but 1,044 bytes of UTF-8
    for key in (at_limit, over, wide):
        s3.put_object(Bucket="audio-in", Key=key, Body=b"x")
    report = ListingReport()
    found = list(iter_audio_objects(s3, S3Location("audio-in", prefix), EXTENSIONS, report))
    assert [o.key for o in found] == [at_limit] and len(found[0].uri) == 1024
    reason = "s3:// URI over the 1024 characters InvokeEndpointAsync accepts as InputLocation"
    assert report.skipped == {reason: 2}
    assert any(line.startswith(f"skipped 2 ({reason})") for line in report.lines())


def test_missing_bucket_is_named(s3):
    location = S3Location("no-such-bucket", "x/")
    with pytest.raises(BucketUriError, match="bucket 'no-such-bucket' does not exist"):
        check_bucket(s3, location)
    with pytest.raises(BucketUriError, match="does not exist"):
        list(iter_audio_objects(s3, location, EXTENSIONS, ListingReport()))


def test_access_denied_is_named(s3, monkeypatch):
    from botocore.exceptions import ClientError

    def denied(**kwargs):
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")

    monkeypatch.setattr(s3, "head_bucket", denied)
    with pytest.raises(PermissionError, match="access denied to bucket 'audio-in'.*s3:ListBucket"):
        check_bucket(s3, S3Location("audio-in", ""))
