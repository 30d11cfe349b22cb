from __future__ import annotations

import pytest

from audio_pipeline.config import DEFAULT_AUDIO_EXTENSIONS, MAX_ASYNC_PAYLOAD_BYTES, PipelineConfig
from audio_pipeline.listing import AudioObject, ListingReport, check_bucket, input_location_limit, iter_audio_objects
from audio_pipeline.pinning import pin_overhead
from audio_pipeline.s3_uris import BucketUriError, S3Location

EXTENSIONS = frozenset(DEFAULT_AUDIO_EXTENSIONS)
OVERHEAD = pin_overhead(PipelineConfig().inputs_path)
CONTROL = "control characters in the key (InvokeEndpointAsync's InputLocation header cannot carry them)"


def listed(s3, location: S3Location, report: ListingReport) -> list[AudioObject]:
    return list(iter_audio_objects(s3, location, EXTENSIONS, report, OVERHEAD))


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
    found = listed(s3, S3Location("audio-in", "calls/"), report)
    keys = {o.key for o in found}
    assert len(found) == 1207 and "calls/Loud.FLAC" in keys and "other/outside.wav" not in keys
    assert [(o.key, o.skip_reason) for o in found if o.skip_reason] == [("calls/empty.mp3", "zero bytes")], (
        "audio the endpoint cannot take is listed with why, to be recorded skipped"
    )
    assert report.objects == 1210 and report.audio == 1207
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
    reason = "over the 1 GB asynchronous inference limit"
    assert listed(s3, S3Location("audio-in", ""), report) == [
        AudioObject("audio-in", "big.wav", "e", MAX_ASYNC_PAYLOAD_BYTES + 1, reason)
    ]
    assert report.skipped == {reason: 1} and report.audio == 1


def test_keys_whose_uri_is_over_the_input_location_limit_are_skipped(s3):
    """InvokeEndpointAsync rejects an InputLocation over 1,024 characters (botocore's model), and what
    is sent is a copy whose name is OVERHEAD bytes longer: a key over what is left is skipped at listing
    with the reason, and the URI at the limit is kept."""
    limit = input_location_limit() - OVERHEAD
    prefix = "calls/"
    at_limit = prefix + "k" * (limit - len("s3://audio-in/calls/") - len(".wav")) + ".wav"
    over = prefix + "k" * (len(at_limit) - len(prefix) - len(".wav") + 1) + ".wav"
    wide = (
        prefix + "ü" * ((limit - len("s3://audio-in/calls/.wav")) // 2 + 1) + ".wav"
    )  # within the limit in characters, over it in bytes
    assert len(f"s3://audio-in/{wide}") <= limit < len(f"s3://audio-in/{wide}".encode())
    for key in (at_limit, over, wide):
        s3.put_object(Bucket="audio-in", Key=key, Body=b"x")
    report = ListingReport()
    found = listed(s3, S3Location("audio-in", prefix), report)
    reason = (
        f"s3:// URI over {limit} bytes: the copy sent is named {OVERHEAD} bytes longer, over the 1024 characters "
        "InvokeEndpointAsync accepts as InputLocation"
    )
    assert sorted((o.key, o.skip_reason) for o in found) == sorted([(at_limit, None), (over, reason), (wide, reason)])
    assert len(f"s3://audio-in/{at_limit}") == limit
    assert report.skipped == {reason: 2} and report.audio == 3
    assert any(line.startswith(f"skipped 2 ({reason})") for line in report.lines())


@pytest.mark.parametrize("char", ["\n", "\r", "\t", "\x00", "\x1f", "\x7f"])
def test_keys_with_control_characters_are_skipped(s3, monkeypatch, char):
    """InvokeEndpointAsync's InputLocation is an HTTP header, which cannot carry a newline or any
    other control character: such a key is listed with the reason; other characters are kept."""
    keys = [f"calls/a{char}b.wav", "calls/ü ñ 漢字 +&=.wav"]

    def page(**kwargs):
        yield {"Contents": [{"Key": key, "Size": 5, "ETag": '"e"'} for key in keys]}

    class Paginator:
        paginate = staticmethod(page)

    monkeypatch.setattr(s3, "get_paginator", lambda name: Paginator())
    report = ListingReport()
    found = listed(s3, S3Location("audio-in", "calls/"), report)
    assert [(o.key, o.skip_reason) for o in found] == [(keys[0], CONTROL), (keys[1], None)]
    assert report.skipped == {CONTROL: 1} and report.audio == 2


def test_a_newline_in_a_key_is_skipped_as_s3_lists_it(s3):
    s3.put_object(Bucket="audio-in", Key="calls/line\nbreak.wav", Body=b"x")
    found = listed(s3, S3Location("audio-in", "calls/"), ListingReport())
    assert [(o.key, o.skip_reason) for o in found] == [("calls/line\nbreak.wav", CONTROL)]


def test_missing_bucket_is_named(s3):
    location = S3Location("no-such-bucket", "x/")
    with pytest.raises(BucketUriError, match="bucket 'no-such-bucket' does not exist"):
        check_bucket(s3, location)
    with pytest.raises(BucketUriError, match="does not exist"):
        listed(s3, location, ListingReport())


def test_access_denied_is_named(s3, monkeypatch):
    from botocore.exceptions import ClientError

    def denied(**kwargs):
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")

    monkeypatch.setattr(s3, "head_bucket", denied)
    with pytest.raises(PermissionError, match="access denied to bucket 'audio-in'.*s3:ListBucket"):
        check_bucket(s3, S3Location("audio-in", ""))
