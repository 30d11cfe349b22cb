"""Pinning what is sent: the endpoint gets a copy of exactly the claimed version of each file."""

from __future__ import annotations

from urllib.parse import unquote

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from audio_pipeline.claims import NothingToListError, claim_new_files
from audio_pipeline.config import DEFAULT_AUDIO_EXTENSIONS
from audio_pipeline.ledger import Status, inference_id_for
from audio_pipeline.listing import ListingReport, input_location_limit, iter_audio_objects
from audio_pipeline.pinning import (
    INFERENCE_ID_CHARS,
    VersionGoneError,
    pin,
    pin_overhead,
    pinned_location,
    source_of,
)
from audio_pipeline.s3_uris import S3Location, split_s3_uri
from audio_pipeline.submission import BatchSubmitter

from .conftest import CONFIG, REGION, put_audio
from .test_batch_watcher import claim as claim_in_table
from .test_batch_watcher import submitted_batch, success_for, watcher
from .test_submission import SETTINGS, FakeRuntime, endpoint

INPUTS = SETTINGS.inputs_path
CALLS = S3Location("audio-in", "calls/")


def _get(s3, location: str) -> dict:
    bucket, key = split_s3_uri(location)
    return s3.get_object(Bucket=bucket, Key=key)


def _exists(s3, location: str) -> bool:
    bucket, key = split_s3_uri(location)
    return s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) > 0


def test_moto_ignores_copy_source_if_match(s3):
    """moto 5 copies whatever the object holds, whatever CopySourceIfMatch says (S3 answers 412
    PreconditionFailed): the tests below add S3's check (``honoured``). When this fails, moto
    checks it itself and ``honoured`` can go."""
    put_audio(s3, "calls/a.wav", b"first")
    s3.copy_object(
        Bucket="audio-in", Key="copy", CopySource={"Bucket": "audio-in", "Key": "calls/a.wav"}, CopySourceIfMatch='"0"'
    )
    assert s3.get_object(Bucket="audio-in", Key="copy")["Body"].read() == b"first"


@pytest.fixture
def honoured(s3):
    """S3's CopySourceIfMatch on the ``s3`` client (moto ignores it): a source whose
    ETag is not the one given answers 412 PreconditionFailed, as S3 does."""
    checker = boto3.client("s3", region_name=REGION)

    def check(params, **kwargs):
        expected = params.get("headers", {}).get("x-amz-copy-source-if-match")
        if expected is None:
            return None
        source = params["headers"]["x-amz-copy-source"]
        bucket, _, key = source.lstrip("/").partition("/")
        try:
            etag = checker.head_object(Bucket=unquote(bucket), Key=unquote(key))["ETag"]
        except ClientError:
            return None  # no such key: S3's (and moto's) NoSuchKey
        if etag == expected:
            return None
        error = {
            "Code": "PreconditionFailed",
            "Message": "At least one of the pre-conditions you specified did not hold",
        }
        return AWSResponse("", 412, {}, None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 412}}

    s3.meta.events.register("before-call.s3.CopyObject", check)
    yield
    s3.meta.events.unregister("before-call.s3.CopyObject", check)


def claimed(s3, ledger, key: str, body: bytes, run_id: str = "run-1") -> dict:
    f = put_audio(s3, key, body)
    f["inference_id"] = inference_id_for(f["uri"], f["etag"], run_id)
    assert ledger.claim([f], run_id, lease_seconds=SETTINGS.result_window_seconds).applied == [f["uri"]]
    return f


def test_the_copy_is_of_exactly_the_claimed_etag(s3, ledger, honoured):
    f = claimed(s3, ledger, "calls/a.wav", b"version one")
    location = pin(s3, f, INPUTS)
    assert location == pinned_location(INPUTS, f["inference_id"], f["uri"])
    copy = _get(s3, location)
    assert copy["Body"].read() == b"version one" and copy["ETag"].strip('"') == f["etag"]
    with pytest.raises(VersionGoneError, match="changed since it was listed"):
        pin(s3, {**f, "etag": "0" * 32, "inference_id": "x" * INFERENCE_ID_CHARS}, INPUTS)
    assert not _exists(s3, pinned_location(INPUTS, "x" * INFERENCE_ID_CHARS, f["uri"]))


def test_the_check_is_s3s_own_precondition(s3, ledger, honoured):
    """The submitter sends the claimed ETag as CopySourceIfMatch (quoted, as S3 compares it)."""
    f = claimed(s3, ledger, "calls/a.wav", b"version one")
    seen = []
    s3.meta.events.register("before-call.s3.CopyObject", lambda params, **kw: seen.append(params["headers"]))
    pin(s3, f, INPUTS)
    assert seen[0]["x-amz-copy-source-if-match"] == f'"{f["etag"]}"'


def _next_run_claims(s3, ledger, run_id):
    handed: list[dict] = []
    claim_new_files(
        s3,
        ledger,
        CALLS,
        DEFAULT_AUDIO_EXTENSIONS,
        run_id,
        handed.append,
        inputs_path=INPUTS,
        lease_seconds=SETTINGS.result_window_seconds,
    )
    return handed


def test_an_object_overwritten_after_listing_is_not_sent_and_the_next_run_takes_its_new_version(s3, ledger, honoured):
    f = claimed(s3, ledger, "calls/a.wav", b"version one")
    new = put_audio(s3, "calls/a.wav", b"version two")
    assert new["etag"] != f["etag"]
    runtime = FakeRuntime()

    report = BatchSubmitter(ledger, endpoint(runtime), s3, SETTINGS, "run-1").submit([f])

    assert runtime.calls == [] and report.submitted == 0 and report.unclear == []
    assert [u for u, _ in report.failed] == [f["uri"]] and "changed" in report.failed[0][1]
    record = ledger.get([f["uri"]])[f["uri"]]
    assert record.status == Status.FAILED and record.etag == f["etag"]
    assert "changed since it was listed" in record.failure_reason and "not sent" in record.failure_reason
    assert record.invoking_since is None
    assert not _exists(s3, pinned_location(INPUTS, f["inference_id"], f["uri"])), "no copy of the new bytes"

    (taken,) = _next_run_claims(s3, ledger, "run-2")
    assert (taken["uri"], taken["etag"]) == (f["uri"], new["etag"])
    assert _next_run_claims(s3, ledger, "run-3") == [], "in flight with run-2: not taken again"
    assert BatchSubmitter(ledger, endpoint(runtime), s3, SETTINGS, "run-2").submit([taken]).submitted == 1
    (call,) = runtime.calls
    assert call["InputLocation"] == pinned_location(INPUTS, taken["inference_id"], f["uri"])
    assert _get(s3, call["InputLocation"])["Body"].read() == b"version two"
    record = ledger.get([f["uri"]])[f["uri"]]
    assert (record.status, record.etag, record.run_id) == (Status.SUBMITTED, new["etag"], "run-2")


def test_an_object_deleted_after_listing_is_not_sent(s3, ledger, honoured):
    f = claimed(s3, ledger, "calls/a.wav", b"version one")
    s3.delete_object(Bucket="audio-in", Key="calls/a.wav")
    runtime = FakeRuntime()

    report = BatchSubmitter(ledger, endpoint(runtime), s3, SETTINGS, "run-1").submit([f])

    assert runtime.calls == [] and report.submitted == 0
    assert [u for u, _ in report.failed] == [f["uri"]] and "deleted" in report.failed[0][1]
    record = ledger.get([f["uri"]])[f["uri"]]
    assert record.status == Status.FAILED and "deleted since it was listed" in record.failure_reason
    with pytest.raises(NothingToListError, match="listed 0 objects"):  # nothing left to claim
        _next_run_claims(s3, ledger, "run-2")


def test_the_listing_skips_a_key_whose_copy_would_be_named_too_long(s3):
    overhead = pin_overhead(INPUTS)
    limit = input_location_limit()
    assert limit == 1024
    prefix = "s3://audio-in/"
    fits_copy = "calls/" + "a" * (limit - overhead - len(prefix) - len("calls/") - 4) + ".wav"
    too_long = "calls/" + "b" * (limit - overhead - len(prefix) - len("calls/") - 4 + 1) + ".wav"
    for key in (fits_copy, too_long):
        put_audio(s3, key, b"audio")
    assert len(f"{prefix}{too_long}".encode()) <= limit, "its own URI fits InvokeEndpointAsync"
    assert len(pinned_location(INPUTS, "0" * INFERENCE_ID_CHARS, prefix + fits_copy).encode()) == limit
    assert len(pinned_location(INPUTS, "0" * INFERENCE_ID_CHARS, prefix + too_long).encode()) == limit + 1

    report = ListingReport()
    listed = {o.key: o for o in iter_audio_objects(s3, CALLS, DEFAULT_AUDIO_EXTENSIONS, report, overhead)}

    assert listed[fits_copy].skip_reason is None
    reason = listed[too_long].skip_reason
    assert reason is not None and f"{overhead} bytes longer" in reason and "InputLocation" in reason
    assert report.skipped == {reason: 1}


def test_a_notification_of_another_batch_naming_a_pinned_copy_is_recorded_on_its_source(s3, ledger):
    mine = submitted_batch(ledger, 1, run_id="run-1")
    (other,) = claim_in_table(ledger, ["s3://audio-in/other/day 1/x.wav"], "run-2", now=10_000 - 60)
    w = watcher(ledger, s3, mine)
    message = success_for(other, 0)
    assert f"/{other['inference_id']}/audio-in/other/day 1/x.wav" in message["Body"]
    assert w.record_messages([message]).recorded == 1
    assert ledger.get([other["uri"]])[other["uri"]].status == Status.COMPLETED
    assert not w.done


@pytest.mark.parametrize(
    "uri",
    ["s3://audio-in/a.wav", "s3://audio-in/calls/day 1/ü+%20.mp3", "s3://b/k/with/many/parts/x.flac"],
)
def test_source_of_and_pinned_location_round_trip(uri):
    iid = inference_id_for(uri, "etag", "run-1")
    assert len(iid) == INFERENCE_ID_CHARS
    location = pinned_location(INPUTS, iid, uri)
    assert location == f"{INPUTS}{iid}/{uri.removeprefix('s3://')}"
    assert source_of(location, iid) == uri
    assert source_of(location, inference_id_for(uri, "etag", "run-2")) is None, "another claim's copy"
    assert source_of(uri, iid) is None, "not a copy"
    assert source_of(f"{INPUTS}{iid}/", iid) is None
    assert len(location.encode()) - len(uri.encode()) == pin_overhead(INPUTS)
    assert CONFIG.inputs_path.startswith("s3://") and CONFIG.inputs_path.endswith("/")
