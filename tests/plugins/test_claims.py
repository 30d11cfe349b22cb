from __future__ import annotations

import json
import time

import pytest

from audio_pipeline import claims
from audio_pipeline.batch_summaries import SUMMARY_ATTEMPTS, BatchSummarizer, record_no_summary
from audio_pipeline.claims import (
    LOOKUP_CHUNK,
    ClaimReport,
    NothingToListError,
    ResetTableError,
    claim_new_files,
    refuse_reset_table,
)
from audio_pipeline.config import DEFAULT_AUDIO_EXTENSIONS
from audio_pipeline.ledger import Ledger, Status
from audio_pipeline.listing import input_location_limit
from audio_pipeline.pinning import pin_overhead
from audio_pipeline.s3_uris import S3Location, parse_bucket_uri, split_s3_uri
from audio_pipeline.settlement import settle_and_report, settle_run
from audio_pipeline.summaries import Summary, SummaryError

from .conftest import CONFIG, RATES
from .ledger.test_ledger import OUT, complete, fail, submit

EXTENSIONS = frozenset(DEFAULT_AUDIO_EXTENSIONS)
CALLS = S3Location("audio-in", "calls/")
LEASE = CONFIG.result_window_seconds
INPUTS = CONFIG.inputs_path


def put(s3, *keys, body=b"audio"):
    for key in keys:
        s3.put_object(Bucket="audio-in", Key=key, Body=body)


def claim(s3, ledger, run_id, location=CALLS, lease_seconds=LEASE, **kwargs) -> tuple[ClaimReport, list[dict]]:
    """claim_new_files with the files it hands out collected, in the order handed out."""
    files: list[dict] = []
    report = claim_new_files(
        s3,
        ledger,
        location,
        EXTENSIONS,
        run_id,
        files.append,
        inputs_path=INPUTS,
        lease_seconds=lease_seconds,
        **kwargs,
    )
    assert report.claimed == len(files), "the count is what was handed out"
    return report, files


def at(ddb, now):
    return Ledger(ddb, CONFIG.status_table, backoff_base=0, clock=lambda: now[0])


def uris(files) -> list[str]:
    return sorted(f["uri"] for f in files)


def test_claims_new_audio_once(s3, ledger):
    put(s3, "calls/a.wav", "calls/b.mp3", "calls/readme.txt")
    first, files = claim(s3, ledger, "run-1")
    assert uris(files) == ["s3://audio-in/calls/a.wav", "s3://audio-in/calls/b.mp3"]
    second, again = claim(s3, ledger, "run-2")
    assert again == [] and second.claimed == 0
    assert second.not_claimed == {"in flight in another run": 2}


def test_retried_claim_task_gets_its_own_claims_back(s3, ledger):
    put(s3, "calls/a.wav", "calls/b.wav")
    _, first = claim(s3, ledger, "run-1")
    _, retry = claim(s3, ledger, "run-1")
    assert retry == first and len(first) == 2


def test_two_concurrent_runs_never_share_a_file(s3, ledger):
    put(s3, *[f"calls/{i:03d}.wav" for i in range(300)])
    _, a = claim(s3, ledger, "run-a")
    _, b = claim(s3, ledger, "run-b")
    assert len(a) + len(b) == 300
    assert not {f["uri"] for f in a} & {f["uri"] for f in b}


def _finish(ledger, files, to, run_id="run-1", **submitted):
    """Submit ``files`` (held by ``run_id``) and record their result: ``completed`` or ``failed``."""
    for f in files:
        submit(ledger, f, run_id, **submitted)
        written = complete(ledger, f) if to == Status.COMPLETED else fail(ledger, f, "x")
        assert written.applied == [f["uri"]]


def test_done_failed_and_changed_files(s3, ledger):
    put(s3, "calls/done.wav", "calls/failed.wav", "calls/changed.wav")
    _, first = claim(s3, ledger, "run-1")
    by_uri = {f["uri"].rsplit("/", 1)[-1]: f for f in first}
    _finish(ledger, [by_uri["done.wav"], by_uri["changed.wav"]], Status.COMPLETED)
    _finish(ledger, [by_uri["failed.wav"]], Status.FAILED)
    put(s3, "calls/changed.wav", body=b"new content")

    second, claimed = claim(s3, ledger, "run-2")
    assert [f["uri"] for f in claimed] == ["s3://audio-in/calls/changed.wav"]
    assert second.not_claimed == {
        "already completed": 1,
        "failed before (trigger with reprocess_failed to retry)": 1,
    }
    _, third = claim(s3, ledger, "run-3", reprocess_failed=True)
    assert [f["uri"] for f in third] == ["s3://audio-in/calls/failed.wav"]


def test_files_a_run_never_sent_go_to_the_next_run(s3, ledger):
    """run-1's claim task failed after claiming (its manifests never written): its teardown fails
    the files it never sent, and the next run, without reprocess_failed, claims them anew."""
    put(s3, "calls/a.wav", "calls/b.wav")
    _, first = claim(s3, ledger, "run-1")
    list(settle_run(ledger, "run-1", reason="run run-1 ended"))
    _, nightly = claim(s3, ledger, "run-2")
    assert uris(nightly) == uris(first)
    assert not {f["inference_id"] for f in nightly} & {f["inference_id"] for f in first}
    _finish(ledger, nightly, Status.FAILED, run_id="run-2")
    assert claim(s3, ledger, "run-3")[0].not_claimed == {"failed before (trigger with reprocess_failed to retry)": 2}, (
        "a file that failed once sent waits for reprocess_failed"
    )


def test_max_files(s3, ledger):
    put(s3, *[f"calls/{i:04d}.wav" for i in range(1500)])
    report, files = claim(s3, ledger, "run-1", max_files=1200)
    assert len(files) == 1200 and len(set(uris(files))) == 1200
    assert len(list(ledger.run_records("run-1"))) == 1200
    assert "claimed 1200 files for this run" in report.lines()


def test_files_a_crashed_run_left_in_flight_go_to_the_next_run_after_their_lease(s3, ddb):
    now = [1_000.0]
    ledger = at(ddb, now)
    put(s3, "calls/a.wav", "calls/b.wav")
    claim(s3, ledger, "crashed-run", lease_seconds=600)
    assert claim(s3, ledger, "run-2", lease_seconds=600)[1] == []
    now[0] = 1_601.0
    report, files = claim(s3, ledger, "run-3", lease_seconds=600)
    assert len(files) == 2 and report.abandoned == 2
    assert "2 of them were left in flight past their deadline by an earlier run" in report.lines()
    assert {r.run_id for r in ledger.get(f["uri"] for f in files).values()} == {"run-3"}


def _transcribed_without_summary(s3, ledger, run_id):
    """a.wav: completed, its summary_error recorded; b.wav: completed, its summary under way."""
    put(s3, "calls/a.wav", "calls/b.wav")
    _, files = claim(s3, ledger, run_id)
    _finish(ledger, files, Status.COMPLETED, run_id=run_id)
    assert record_no_summary(ledger, files[:1], run_id, f"summaries were off for {run_id} (summarize=false)") == 1
    return files


def test_a_transcript_without_summary_is_taken_for_its_summary_alone(s3, ledger):
    files = _transcribed_without_summary(s3, ledger, "run-1")
    off, none = claim(s3, ledger, "run-2", summarize=False)
    assert none == [] and off.not_claimed == {"already completed": 2}

    report, taken = claim(s3, ledger, "run-3")
    assert taken == [files[0]], "same inference id: the transcript is kept, nothing is submitted again"
    assert report.for_summary == 1 and report.not_claimed == {"already completed": 1}
    assert "1 of them were transcribed before and need only their summary" in report.lines()
    r = ledger.get([files[0]["uri"]])[files[0]["uri"]]
    assert r.run_id == "run-3" and r.status == Status.COMPLETED
    assert [r.uri for r in ledger.run_records("run-3")] == [files[0]["uri"]]


class Rejecting:
    """A summariser Bedrock rejects every transcript for (an error no retry fixes), until ``fixed``."""

    def __init__(self) -> None:
        self.fixed = False
        self.calls = 0

    def summarize(self, text: str) -> Summary:
        self.calls += 1
        if not self.fixed:
            raise SummaryError("the model rejected the transcript", retryable=False)
        return Summary("A call.", [], "model", chunks=1, input_chars=len(text))


def test_a_summary_no_retry_fixes_is_given_up_after_its_attempts_until_reprocess_failed(s3, ledger):
    """One transcript Bedrock always rejects: each run that takes it fails its summary, and after
    SUMMARY_ATTEMPTS rejections it is given up: out of the waiting index, not taken by later runs over
    its prefix or another (so they stay green), until a run triggered with reprocess_failed."""
    put(s3, "calls/a.wav")
    _, files = claim(s3, ledger, "run-1")
    _finish(ledger, files, Status.COMPLETED)
    bucket, key = split_s3_uri(OUT)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"text": "a call"}).encode())
    bedrock = Rejecting()

    def summarise(run_id, taken):
        summarizer = BatchSummarizer(ledger, s3, bedrock, run_id=run_id, lease_seconds=LEASE, concurrency=1)
        return summarizer.run(taken)

    for attempt in range(1, SUMMARY_ATTEMPTS + 1):
        run_id = f"run-{attempt}"
        if attempt > 1:
            _, files = claim(s3, ledger, run_id)
            assert len(files) == 1, f"{run_id} takes the transcript for its summary"
        for _ in range(2):  # the task and its retry (throttling elsewhere in the batch): counted once
            (error,) = summarise(run_id, files).errors
            assert not error.retryable and error.given_up == (attempt == SUMMARY_ATTEMPTS)
        assert ledger.get([files[0]["uri"]])[files[0]["uri"]].summary_rejections == attempt, "once a run"
    (uri,) = [f["uri"] for f in files]
    record = ledger.get([uri])[uri]
    assert record.status == Status.COMPLETED and record.summary_given_up
    assert f"given up after {SUMMARY_ATTEMPTS} attempts" in record.summary_error
    assert list(ledger.waiting_for_summary()) == []
    report, none = claim(s3, ledger, "run-4")
    assert none == [] and report.not_claimed == {"summary given up (trigger with reprocess_failed to retry)": 1}
    put(s3, "meetings/m.wav")
    _, elsewhere = claim(s3, ledger, "run-5", location=S3Location("audio-in", "meetings/"))
    assert [f["uri"] for f in elsewhere] == ["s3://audio-in/meetings/m.wav"]
    assert bedrock.calls == 2 * SUMMARY_ATTEMPTS - 1, "none after it was given up"

    bedrock.fixed = True
    report, again = claim(s3, ledger, "run-6", reprocess_failed=True)
    assert [f["uri"] for f in again] == [uri] and report.for_summary == 1
    assert [r.uri for r in ledger.waiting_for_summary()] == [uri], "back in the index while run-6 holds it"
    assert summarise("run-6", again).summarized == 1
    assert ledger.get([uri])[uri].status == Status.SUMMARIZED


def test_a_transcript_waiting_for_its_summary_is_taken_by_a_run_over_any_prefix(s3, ledger):
    """Bedrock was out for run-1 (summary_error recorded): run-2 lists another prefix, yet takes the
    waiting transcript for its summary, as it is (same inference id), and its log says so; the one
    still held by a live run is left to it, and a retried claim task gets its own back."""
    files = _transcribed_without_summary(s3, ledger, "run-1")
    put(s3, "meetings/m.wav")

    report, claimed = claim(s3, ledger, "run-2", location=S3Location("audio-in", "meetings/"))

    assert [f["uri"] for f in claimed] == ["s3://audio-in/meetings/m.wav", files[0]["uri"]]
    assert claimed[1] == files[0], "same inference id: the transcript is kept, nothing is submitted again"
    assert report.for_summary == 1 and report.waiting == [files[0]["uri"]]
    assert any(
        "waiting for their summary outside this bucket URI" in line and files[0]["uri"] in line
        for line in report.lines()
    ), report.lines()
    r = ledger.get([files[0]["uri"]])[files[0]["uri"]]
    assert r.run_id == "run-2" and r.status == Status.COMPLETED and r.summary_error is None
    _, retry = claim(s3, ledger, "run-2", location=S3Location("audio-in", "meetings/"))
    assert retry == claimed, "a retried claim task gets what it took back, without a write"
    _, later = claim(s3, ledger, "run-3", location=S3Location("audio-in", "meetings/"))
    assert later == [], "taken by run-2 until its summary settles"
    off, _ = claim(s3, ledger, "run-4", location=S3Location("audio-in", "meetings/"), summarize=False)
    assert off.waiting == []


def test_waiting_transcripts_are_taken_within_max_files_oldest_first(s3, ledger):
    put(s3, "calls/a.wav", "calls/b.wav", "calls/c.wav")
    _, files = claim(s3, ledger, "run-1")
    for f in files:  # a, b, c completed in that order (completed_at counts milliseconds)
        _finish(ledger, [f], Status.COMPLETED)
        time.sleep(0.01)
    ledger.leave_without_summary(list(ledger.get(f["uri"] for f in files).values()), "run-1", "throttled")
    put(s3, "meetings/m.wav")

    report, claimed = claim(s3, ledger, "run-2", location=S3Location("audio-in", "meetings/"), max_files=3)

    assert [f["uri"] for f in claimed] == ["s3://audio-in/meetings/m.wav", *(f["uri"] for f in files[:2])]
    assert report.waiting == [f["uri"] for f in files[:2]]
    _, rest = claim(s3, ledger, "run-3", location=S3Location("audio-in", "meetings/"))
    assert rest == files[2:], "the third waits for the next run"


def test_two_runs_never_both_take_one_transcript_for_its_summary(s3, ledger):
    _transcribed_without_summary(s3, ledger, "run-1")
    first, taken = claim(s3, ledger, "run-2")
    _, later = claim(s3, ledger, "run-3")
    assert len(taken) == 1 and first.for_summary == 1
    assert later == [], "taken: its summary_error is cleared until run-2's summary settles"
    uri = taken[0]["uri"]
    assert ledger.get([uri])[uri].run_id == "run-2"


def test_of_two_runs_that_read_the_same_transcript_one_takes_it(s3, ledger, monkeypatch):
    _transcribed_without_summary(s3, ledger, "run-1")
    read_before_any_write = ledger.get
    seen = {}

    def stale_reads(uris):  # run-3 read before run-2 wrote
        key = tuple(uris)
        seen.setdefault(key, read_before_any_write(key))
        return seen[key]

    monkeypatch.setattr(ledger, "get", stale_reads)
    first, _ = claim(s3, ledger, "run-2")
    second, _ = claim(s3, ledger, "run-3")
    assert first.for_summary == 1 and second.for_summary == 0
    assert second.not_claimed["claimed by a concurrent run"] == 1


def test_new_audio_under_a_transcript_without_summary_is_transcribed_not_summarised(s3, ledger):
    """The summary take-over is for the same content only: a changed ETag is new audio, which gets
    a new claim (new inference id, transcribed again), never the old transcript's summary."""
    files = _transcribed_without_summary(s3, ledger, "run-1")
    put(s3, "calls/a.wav", body=b"other audio")

    report, claimed = claim(s3, ledger, "run-2")

    assert report.for_summary == 0 and [f["uri"] for f in claimed] == [files[0]["uri"]]
    assert claimed[0]["inference_id"] != files[0]["inference_id"]
    r = ledger.get([files[0]["uri"]])[files[0]["uri"]]
    assert r.status == Status.PROCESSING and r.inference_id == claimed[0]["inference_id"]


def test_a_transcript_whose_run_died_before_its_summary_is_taken_once_its_lease_expires(s3, ddb):
    """Completed, no summary, no summary_error: its run was killed before summarising or reporting.
    Within the lease another run may still be summarising it; past it, the next run takes it."""
    now = [1_000.0]
    ledger = at(ddb, now)
    put(s3, "calls/a.wav")
    _, files = claim(s3, ledger, "killed-run", lease_seconds=600)
    _finish(ledger, files, Status.COMPLETED, run_id="killed-run", window=600)

    assert claim(s3, ledger, "run-2", lease_seconds=600)[1] == []
    now[0] = 1_601.0
    report, taken = claim(s3, ledger, "run-3", lease_seconds=600)
    assert taken == files and report.for_summary == 1, "same inference id: not transcribed again"
    r = ledger.get([files[0]["uri"]])[files[0]["uri"]]
    assert r.run_id == "run-3" and r.deadline == 1_601 + 600 and r.status == Status.COMPLETED
    assert claim(s3, ledger, "run-4", lease_seconds=600)[1] == [], "leased again"
    _, retry = claim(s3, ledger, "run-3", lease_seconds=600)
    assert retry == files, "a retried claim task gets the file it took back"


def test_reprocessing_failed_files_keeps_a_result_that_came_late(s3, ledger):
    """A file failed at its deadline whose output object arrived afterwards: reprocess_failed takes
    it for its summary with the result it has, and never submits it again."""
    put(s3, "calls/late.wav", "calls/failed.wav")
    _, files = claim(s3, ledger, "run-1")
    for f in files:
        submit(ledger, f, output_location=f"{CONFIG.output_path}{f['inference_id']}.out")
        assert fail(ledger, f, "deadline").applied
    late = next(f for f in files if f["uri"].endswith("late.wav"))
    s3.put_object(Bucket=CONFIG.output_bucket, Key=f"transcripts/{late['inference_id']}.out", Body=b'{"text": "hi"}')

    report, claimed = claim(s3, ledger, "run-2", reprocess_failed=True)

    assert report.for_summary == 1 and late in claimed, "the late transcript is kept, same inference id"
    again = next(f for f in claimed if f["uri"].endswith("failed.wav"))
    assert again not in files, "the file without a result is claimed again under a new inference id"
    r = ledger.get([late["uri"]])[late["uri"]]
    assert r.status == Status.COMPLETED and r.run_id == "run-2" and r.summary_error is None


def test_a_run_marked_failed_by_hand_leaves_its_work_to_the_next_run_as_it_is(s3, ledger):
    """run-1 ended (marked failed mid-flight) before its lease did: a.wav was submitted, b.wav was
    not yet sent, c.wav was transcribed. run-2 takes all three over at once with their inference
    ids: a.wav is awaited, never sent again; b.wav is sent once; c.wav only needs its summary."""
    put(s3, "calls/a.wav", "calls/b.wav", "calls/c.wav")
    _, files = claim(s3, ledger, "run-1")
    a, b, c = sorted(files, key=lambda f: f["uri"])
    submit(ledger, a, window=10**9)
    _finish(ledger, [c], Status.COMPLETED)
    ended = {"run-1"}

    report, taken = claim(s3, ledger, "run-2", run_ended=ended.__contains__)

    assert sorted(taken, key=lambda f: f["uri"]) == [a, b, c], "same inference ids"
    assert report.adopted == 2 and report.for_summary == 1
    records = ledger.get(f["uri"] for f in files)
    assert [records[f["uri"]].status for f in (a, b, c)] == ["submitted", "processing", "completed"]
    assert {r.run_id for r in records.values()} == {"run-2"}
    _, still_running = claim(s3, ledger, "run-3", run_ended=ended.__contains__)
    assert still_running == [], "run-2 has not ended: its work is its own"

    retry, again = claim(s3, ledger, "run-2", run_ended=ended.__contains__)
    assert sorted(again, key=lambda f: f["uri"]) == [a, b, c], "a retry gets back what it adopted"
    assert retry.not_claimed == {} and retry.adopted == 0, "without a write"


def test_a_changed_file_held_by_an_ended_run_is_not_adopted_under_its_old_claim(s3, ledger):
    """run-1 ended with a.wav in flight, and a.wav was overwritten since: the old claim is for other
    content. run-2 does not adopt it (it would await the old audio's transcript as the new one's);
    the new content waits until the old claim settles or its lease ends, then gets a claim of its own."""
    put(s3, "calls/a.wav")
    _, (old,) = claim(s3, ledger, "run-1")
    submit(ledger, old)
    put(s3, "calls/a.wav", body=b"new audio")
    ended = {"run-1"}

    report, taken = claim(s3, ledger, "run-2", run_ended=ended.__contains__)

    assert taken == [] and report.adopted == 0
    assert report.not_claimed == {"in flight in another run": 1}
    r = ledger.get([old["uri"]])[old["uri"]]
    assert (r.run_id, r.inference_id, r.etag) == ("run-1", old["inference_id"], old["etag"])
    complete(ledger, old)
    _, new = claim(s3, ledger, "run-3", run_ended=ended.__contains__)
    assert [f["uri"] for f in new] == [old["uri"]] and new[0]["etag"] != old["etag"]
    assert new[0]["inference_id"] != old["inference_id"]


def test_a_file_left_in_flight_whose_result_is_in_s3_is_not_transcribed_again(s3, ddb):
    """Its run ended without reading the notification, and the lease expired: the result is in S3,
    so the next run keeps it (same inference id, summary only) instead of claiming the file anew."""
    now = [1_000.0]
    ledger = at(ddb, now)
    put(s3, "calls/a.wav")
    _, (f,) = claim(s3, ledger, "run-1", lease_seconds=600)
    submit(ledger, f, output_location=f"{CONFIG.output_path}{f['inference_id']}.out", window=600)
    assert ledger.get([f["uri"]])[f["uri"]].deadline == 1_600
    s3.put_object(Bucket=CONFIG.output_bucket, Key=f"transcripts/{f['inference_id']}.out", Body=b'{"text": "hi"}')
    now[0] = 1_601.0

    report, taken = claim(s3, ledger, "run-2", lease_seconds=600)

    assert taken == [f] and report.for_summary == 1 and report.abandoned == 0
    r = ledger.get([f["uri"]])[f["uri"]]
    assert r.status == Status.COMPLETED and r.run_id == "run-2"


# ------------------------------------------- audio the endpoint cannot take


def _put_unsendable(s3, monkeypatch) -> dict[str, str]:
    """One audio file of each kind the endpoint cannot take, and one it can: the URI of each, and
    the reason it is skipped for."""
    monkeypatch.setattr("audio_pipeline.listing.MAX_ASYNC_PAYLOAD_BYTES", 10)  # "over 1 GB": 11 bytes here
    overhead = pin_overhead(INPUTS)
    limit = input_location_limit() - overhead  # bytes of the source's URI: the copy sent is named longer
    long_key = "calls/" + "k" * (limit + 1 - len("s3://audio-in/calls/.wav")) + ".wav"
    too_long = (
        f"s3:// URI over {limit} bytes: the copy sent is named {overhead} bytes longer, over the 1024 characters "
        "InvokeEndpointAsync accepts as InputLocation"
    )
    kinds = {
        "calls/empty.wav": (b"", "zero bytes"),
        "calls/big.wav": (b"x" * 11, "over the 1 GB asynchronous inference limit"),
        long_key: (b"audio", too_long),
        "calls/line\nbreak.wav": (
            b"audio",
            "control characters in the key (InvokeEndpointAsync's InputLocation header cannot carry them)",
        ),
    }
    for key, (body, _) in kinds.items():
        put(s3, key, body=body)
    put(s3, "calls/ok.wav")
    return {f"s3://audio-in/{key}": reason for key, (_, reason) in kinds.items()}


def test_audio_the_endpoint_cannot_take_is_recorded_skipped_and_reported(s3, ledger, monkeypatch):
    skipped = _put_unsendable(s3, monkeypatch)

    report, files = claim(s3, ledger, "run-1")

    assert [f["uri"] for f in files] == ["s3://audio-in/calls/ok.wav"], "only what the endpoint can take"
    assert report.skipped == 4
    assert "4 audio files the endpoint cannot take are recorded skipped, with why" in report.lines()
    records = ledger.get(skipped)
    assert {uri: (r.status, r.skip_reason, r.run_id) for uri, r in records.items()} == {
        uri: (Status.SKIPPED, reason, "run-1") for uri, reason in skipped.items()
    }
    assert records["s3://audio-in/calls/empty.wav"].size == 0 and records["s3://audio-in/calls/big.wav"].size == 11

    manifest = (CONFIG.output_bucket, "runs/run-1/manifest.json")
    counts = settle_and_report(ledger, s3, "run-1", CALLS.uri, manifest, "run run-1 ended", RATES).counts
    assert counts == {"skipped": 4, "failed": 1}
    body = json.loads(s3.get_object(Bucket=manifest[0], Key=manifest[1])["Body"].read())
    assert {f["uri"]: f.get("skip_reason") for f in body["files"] if f["status"] == "skipped"} == skipped
    assert body["counts"] == {"skipped": 4, "failed": 1}


def test_a_skip_is_recorded_once_per_etag(s3, ledger, monkeypatch):
    """A later run counts them as already skipped, without a write; new content is recorded again."""
    skipped = _put_unsendable(s3, monkeypatch)
    claim(s3, ledger, "run-1")
    written: list[str] = []
    real = ledger.store.client.transact_write_items

    def spy(TransactItems):
        written.extend(
            op["Put"]["Item"]["uri"]["S"] if "Put" in op else op["Update"]["Key"]["uri"]["S"] for op in TransactItems
        )
        return real(TransactItems=TransactItems)

    monkeypatch.setattr(ledger.store.client, "transact_write_items", spy)

    report, _ = claim(s3, ledger, "run-2")

    assert report.skipped == 0 and report.not_claimed["already skipped"] == 4
    assert not set(written) & set(skipped), "no write for a skip already recorded"
    assert {r.run_id for r in ledger.get(skipped).values()} == {"run-1"}
    put(s3, "calls/empty.wav", body=b"")  # the same empty content: the same ETag
    put(s3, "calls/big.wav", body=b"y" * 12)  # other content, still too big: a new ETag
    report, _ = claim(s3, ledger, "run-3")
    assert report.skipped == 1 and report.not_claimed["already skipped"] == 3
    assert ledger.get(["s3://audio-in/calls/big.wav"])["s3://audio-in/calls/big.wav"].run_id == "run-3"


# ------------------------------------------------------- nothing to list


@pytest.mark.parametrize(
    ("bucket_uri", "keys", "says"),
    [
        ("s3://audio-in/calls/*.wav", ["calls/a.wav"], ["listed 0 objects", "S3 prefixes are literal"]),
        ("s3://audio-in/../", ["calls/a.wav"], ["listed 0 objects", "'..' and '.' are characters of the key"]),
        ("s3://audio-in/call/", ["calls/a.wav"], ["listed 0 objects", "no key starts with this prefix"]),
        (
            "s3://audio-in/docs/",
            ["docs/readme.txt", "docs/notes.pdf", "docs/folder/"],
            [
                "listed 3 objects",
                "skipped 2 (not an audio extension), e.g. docs/notes.pdf, docs/readme.txt",
                "skipped 1 (folder marker), e.g. docs/folder/",
            ],
        ),
    ],
)
def test_a_bucket_uri_with_no_audio_fails_the_claim_saying_what_was_listed_and_why(s3, ledger, bucket_uri, keys, says):
    put(s3, *keys)
    location = parse_bucket_uri(bucket_uri)
    handed: list[dict] = []
    with pytest.raises(NothingToListError) as raised:
        claim_new_files(
            s3, ledger, location, EXTENSIONS, "run-1", handed.append, inputs_path=INPUTS, lease_seconds=LEASE
        )
    message = str(raised.value)
    assert message.startswith(f"{location.uri}: "), message
    assert f"no audio file ({', '.join(sorted(EXTENSIONS))})" in message, message
    for words in says:
        assert words in message, message
    assert handed == [] and ledger.empty()


def test_a_prefix_whose_audio_is_all_done_does_not_fail(s3, ledger):
    put(s3, "calls/a.wav", "calls/b.wav")
    _, files = claim(s3, ledger, "run-1")
    _finish(ledger, files, Status.COMPLETED)
    report, again = claim(s3, ledger, "run-2")
    assert again == [] and report.not_claimed == {"already completed": 2}


def test_a_prefix_of_only_audio_the_endpoint_cannot_take_does_not_fail(s3, ledger):
    """Its files are recorded skipped, and the run reports them: it listed audio, it just cannot send it."""
    put(s3, "calls/empty.wav", body=b"")
    report, files = claim(s3, ledger, "run-1")
    assert files == [] and report.skipped == 1


# --------------------------------------------------- an empty status table


def test_an_empty_table_with_earlier_runs_batch_manifests_refuses_to_run(s3, ledger):
    s3.put_object(Bucket=CONFIG.output_bucket, Key="runs/run-0/batches/1.json", Body=b"{}")
    with pytest.raises(ResetTableError) as raised:
        refuse_reset_table(ledger, s3, CONFIG.output_bucket, CONFIG.runs_prefix)
    message = str(raised.value)
    assert repr(CONFIG.status_table) in message and "runs/run-0/batches/1.json" in message
    assert "accept_empty_status_table" in message


def test_a_table_with_items_runs_whatever_manifests_exist(s3, ledger):
    s3.put_object(Bucket=CONFIG.output_bucket, Key="runs/run-0/batches/1.json", Body=b"{}")
    put(s3, "calls/empty.wav", body=b"")
    claim(s3, ledger, "run-1")  # a skipped file is an item too
    assert not ledger.empty()
    refuse_reset_table(ledger, s3, CONFIG.output_bucket, CONFIG.runs_prefix)


@pytest.mark.parametrize("keys", [[], ["runs/run-0/manifest.json", "runs/run-1/manifest.json"]])
def test_an_empty_table_runs_when_no_earlier_run_claimed_a_file(s3, ledger, keys):
    """A run that claimed nothing writes a run manifest but no batch manifest: the table may be empty."""
    for key in keys:
        s3.put_object(Bucket=CONFIG.output_bucket, Key=key, Body=b"{}")
    s3.put_object(Bucket=CONFIG.output_bucket, Key="transcripts/batches/x.out", Body=b"{}")  # outside runs/
    refuse_reset_table(ledger, s3, CONFIG.output_bucket, CONFIG.runs_prefix)


# ---------------------------------------------------------- claims stream


def test_claimed_files_are_handed_out_chunk_by_chunk_as_the_listing_goes(s3, ledger, monkeypatch):
    """The first chunk's files are handed to the callback before the listing's second page is
    asked for: a claim holds one chunk in memory, never the whole listing."""
    put(s3, *[f"calls/{i:04d}.wav" for i in range(LOOKUP_CHUNK + 200)])  # two pages of ListObjectsV2
    handed: list[dict] = []
    at_page: list[int] = []
    real = s3.get_paginator

    class Watched:
        def __init__(self, name):
            self.paginator = real(name)

        def paginate(self, **kwargs):
            for page in self.paginator.paginate(**kwargs):
                at_page.append(len(handed))
                yield page

    monkeypatch.setattr(s3, "get_paginator", Watched)
    report = claim_new_files(
        s3, ledger, CALLS, EXTENSIONS, "run-1", handed.append, inputs_path=INPUTS, lease_seconds=LEASE
    )
    assert at_page == [0, LOOKUP_CHUNK], "the second page is asked for once the first chunk is handed out"
    assert report.claimed == len(handed) == LOOKUP_CHUNK + 200
    assert len({f["uri"] for f in handed}) == LOOKUP_CHUNK + 200


def test_max_files_stops_the_listing(s3, ledger, monkeypatch):
    put(s3, *[f"calls/{i:04d}.wav" for i in range(LOOKUP_CHUNK + 200)])
    pages: list[int] = []
    real = claims.iter_audio_objects

    def counted(*args, **kwargs):
        for obj in real(*args, **kwargs):
            pages.append(1)
            yield obj

    monkeypatch.setattr(claims, "iter_audio_objects", counted)
    report, files = claim(s3, ledger, "run-1", max_files=10)
    assert len(files) == 10 and report.claimed == 10
    assert len(pages) == LOOKUP_CHUNK, "one chunk looked up, the rest never listed"
