from __future__ import annotations

from audio_pipeline.batch_summaries import record_no_summary
from audio_pipeline.claims import claim_new_files
from audio_pipeline.config import DEFAULT_AUDIO_EXTENSIONS
from audio_pipeline.s3_uris import S3Location
from audio_pipeline.settlement import settle_run
from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import StatusTable

from .conftest import CONFIG

EXTENSIONS = frozenset(DEFAULT_AUDIO_EXTENSIONS)
CALLS = S3Location("audio-in", "calls/")


def put(s3, *keys, body=b"audio"):
    for key in keys:
        s3.put_object(Bucket="audio-in", Key=key, Body=body)


def test_claims_new_audio_once(s3, table):
    put(s3, "calls/a.wav", "calls/b.mp3", "calls/readme.txt")
    first = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1")
    assert sorted(f["uri"] for f in first.claimed) == ["s3://audio-in/calls/a.wav", "s3://audio-in/calls/b.mp3"]
    second = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2")
    assert second.claimed == []
    assert second.not_claimed == {"in flight in another run": 2}


def test_retried_claim_task_gets_its_own_claims_back(s3, table):
    put(s3, "calls/a.wav", "calls/b.wav")
    first = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1")
    retry = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1")
    assert retry.claimed == first.claimed


def test_two_concurrent_runs_never_share_a_file(s3, table):
    put(s3, *[f"calls/{i:03d}.wav" for i in range(300)])
    a = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-a")
    b = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-b")
    assert len(a.claimed) + len(b.claimed) == 300
    assert not {f["uri"] for f in a.claimed} & {f["uri"] for f in b.claimed}


def _finish(table, files, to):
    for f in files:
        table.apply([Transition(f["uri"], f["inference_id"], Status.SUBMITTED)])
        table.apply([Transition(f["uri"], f["inference_id"], to, {"failure_reason": "x"} if to == "failed" else {})])


def test_done_failed_and_changed_files(s3, table):
    put(s3, "calls/done.wav", "calls/failed.wav", "calls/changed.wav")
    first = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1").claimed
    by_uri = {f["uri"].rsplit("/", 1)[-1]: f for f in first}
    _finish(table, [by_uri["done.wav"], by_uri["changed.wav"]], Status.COMPLETED)
    _finish(table, [by_uri["failed.wav"]], Status.FAILED)
    put(s3, "calls/changed.wav", body=b"new content")

    second = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2")
    assert [f["uri"] for f in second.claimed] == ["s3://audio-in/calls/changed.wav"]
    assert second.not_claimed == {
        "already completed": 1,
        "failed before (trigger with reprocess_failed to retry)": 1,
    }
    third = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3", reprocess_failed=True)
    assert [f["uri"] for f in third.claimed] == ["s3://audio-in/calls/failed.wav"]


def test_files_a_run_never_sent_go_to_the_next_run(s3, table):
    """run-1's claim task failed after claiming (its manifests never written): its teardown fails
    the files it never sent, and the next run, without reprocess_failed, claims them anew."""
    put(s3, "calls/a.wav", "calls/b.wav")
    first = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1").claimed
    list(settle_run(table, "run-1", reason="run run-1 ended"))
    nightly = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2")
    assert sorted(f["uri"] for f in nightly.claimed) == sorted(f["uri"] for f in first)
    assert not {f["inference_id"] for f in nightly.claimed} & {f["inference_id"] for f in first}
    _finish(table, nightly.claimed, Status.FAILED)
    assert claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3").not_claimed == {
        "failed before (trigger with reprocess_failed to retry)": 2
    }, "a file that failed once sent waits for reprocess_failed"


def test_max_files(s3, table):
    put(s3, *[f"calls/{i:04d}.wav" for i in range(1500)])
    report = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1", max_files=1200)
    assert len(report.claimed) == 1200
    assert len(list(table.run_items("run-1"))) == 1200
    assert "claimed 1200 files for this run" in report.lines()


def test_files_a_crashed_run_left_in_flight_go_to_the_next_run_after_their_lease(s3, ddb):
    now = [1_000.0]
    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0, clock=lambda: now[0])
    put(s3, "calls/a.wav", "calls/b.wav")
    claim_new_files(s3, table, CALLS, EXTENSIONS, "crashed-run", lease_seconds=600)
    assert claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2", lease_seconds=600).claimed == []
    now[0] = 1_601.0
    report = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3", lease_seconds=600)
    assert len(report.claimed) == 2 and report.abandoned == 2
    assert "2 of them were left in flight past their deadline by an earlier run" in report.lines()
    assert {i["run_id"] for i in table.get_many(f["uri"] for f in report.claimed).values()} == {"run-3"}


def _transcribed_without_summary(s3, table, run_id):
    """a.wav: completed, its summary_error recorded; b.wav: completed, its summary under way."""
    put(s3, "calls/a.wav", "calls/b.wav")
    files = claim_new_files(s3, table, CALLS, EXTENSIONS, run_id).claimed
    _finish(table, files, Status.COMPLETED)
    assert record_no_summary(table, files[:1], run_id, f"summaries were off for {run_id} (summarize=false)") == 1
    return files


def test_a_transcript_without_summary_is_taken_for_its_summary_alone(s3, table):
    files = _transcribed_without_summary(s3, table, "run-1")
    off = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2", summarize=False)
    assert off.claimed == [] and off.not_claimed == {"already completed": 2}

    report = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3")
    assert report.claimed == [files[0]], "same inference id: the transcript is kept, nothing is submitted again"
    assert report.for_summary == 1 and report.not_claimed == {"already completed": 1}
    assert "1 of them were transcribed before and need only their summary" in report.lines()
    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["run_id"] == "run-3" and item["status"] == Status.COMPLETED
    assert [i["uri"] for i in table.run_items("run-3")] == [files[0]["uri"]]


def test_two_runs_never_both_take_one_transcript_for_its_summary(s3, table):
    _transcribed_without_summary(s3, table, "run-1")
    first = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2")
    later = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3")
    assert len(first.claimed) == 1 and first.for_summary == 1
    assert later.claimed == [], "taken: its summary_error is cleared until run-2's summary settles"
    uri = first.claimed[0]["uri"]
    assert table.get_many([uri])[uri]["run_id"] == "run-2"


def test_of_two_runs_that_read_the_same_transcript_one_takes_it(s3, table, monkeypatch):
    _transcribed_without_summary(s3, table, "run-1")
    read_before_any_write = table.get_many
    seen = {}

    def stale_reads(uris, attributes=None):  # run-3 read before run-2 wrote
        key = tuple(uris)
        seen.setdefault(key, read_before_any_write(key, attributes))
        return seen[key]

    monkeypatch.setattr(table, "get_many", stale_reads)
    first = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2")
    second = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3")
    assert first.for_summary == 1 and second.for_summary == 0
    assert second.not_claimed["claimed by a concurrent run"] == 1


def test_new_audio_under_a_transcript_without_summary_is_transcribed_not_summarised(s3, table):
    """The summary take-over is for the same content only: a changed ETag is new audio, which gets
    a new claim (new inference id, transcribed again), never the old transcript's summary."""
    files = _transcribed_without_summary(s3, table, "run-1")
    put(s3, "calls/a.wav", body=b"other audio")

    report = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2")

    assert report.for_summary == 0 and [f["uri"] for f in report.claimed] == [files[0]["uri"]]
    assert report.claimed[0]["inference_id"] != files[0]["inference_id"]
    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["status"] == Status.PROCESSING and item["inference_id"] == report.claimed[0]["inference_id"]


def test_a_transcript_whose_run_died_before_its_summary_is_taken_once_its_lease_expires(s3, ddb):
    """Completed, no summary, no summary_error: its run was killed before summarising or reporting.
    Within the lease another run may still be summarising it; past it, the next run takes it."""
    now = [1_000.0]
    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0, clock=lambda: now[0])
    put(s3, "calls/a.wav")
    files = claim_new_files(s3, table, CALLS, EXTENSIONS, "killed-run", lease_seconds=600).claimed
    _finish(table, files, Status.COMPLETED)

    assert claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2", lease_seconds=600).claimed == []
    now[0] = 1_601.0
    report = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3", lease_seconds=600)
    assert report.claimed == files and report.for_summary == 1, "same inference id: not transcribed again"
    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["run_id"] == "run-3" and item["deadline"] == 1_601 + 600 and item["status"] == Status.COMPLETED
    assert claim_new_files(s3, table, CALLS, EXTENSIONS, "run-4", lease_seconds=600).claimed == [], "leased again"
    retry = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3", lease_seconds=600)
    assert retry.claimed == files, "a retried claim task gets the file it took back"


def test_reprocessing_failed_files_keeps_a_result_that_came_late(s3, table):
    """A file failed at its deadline whose output object arrived afterwards: reprocess_failed takes
    it for its summary with the result it has, and never submits it again."""
    put(s3, "calls/late.wav", "calls/failed.wav")
    files = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1").claimed
    for f in files:
        out = f"s3://{CONFIG.output_bucket}/transcripts/{f['inference_id']}.out"
        table.apply([Transition(f["uri"], f["inference_id"], Status.SUBMITTED, {"output_location": out})])
        table.apply([Transition(f["uri"], f["inference_id"], Status.FAILED, {"failure_reason": "deadline"})])
    late = next(f for f in files if f["uri"].endswith("late.wav"))
    s3.put_object(Bucket=CONFIG.output_bucket, Key=f"transcripts/{late['inference_id']}.out", Body=b'{"text": "hi"}')

    report = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2", reprocess_failed=True)

    assert report.for_summary == 1 and late in report.claimed, "the late transcript is kept, same inference id"
    again = next(f for f in report.claimed if f["uri"].endswith("failed.wav"))
    assert again not in files, "the file without a result is claimed again under a new inference id"
    item = table.get_many([late["uri"]])[late["uri"]]
    assert item["status"] == Status.COMPLETED and item["run_id"] == "run-2" and "summary_error" not in item


def test_a_run_marked_failed_by_hand_leaves_its_work_to_the_next_run_as_it_is(s3, table):
    """run-1 ended (marked failed mid-flight) before its lease did: a.wav was submitted, b.wav was
    not yet sent, c.wav was transcribed. run-2 takes all three over at once with their inference
    ids: a.wav is awaited, never sent again; b.wav is sent once; c.wav only needs its summary."""
    put(s3, "calls/a.wav", "calls/b.wav", "calls/c.wav")
    files = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1").claimed
    a, b, c = sorted(files, key=lambda f: f["uri"])
    table.apply([Transition(a["uri"], a["inference_id"], Status.SUBMITTED, {"deadline": 10**10})])
    _finish(table, [c], Status.COMPLETED)
    ended = {"run-1"}

    report = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2", run_ended=ended.__contains__)

    assert sorted(report.claimed, key=lambda f: f["uri"]) == [a, b, c], "same inference ids"
    assert report.adopted == 2 and report.for_summary == 1
    items = table.get_many(f["uri"] for f in files)
    assert [items[f["uri"]]["status"] for f in (a, b, c)] == ["submitted", "processing", "completed"]
    assert {i["run_id"] for i in items.values()} == {"run-2"}
    still_running = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-3", run_ended=ended.__contains__)
    assert still_running.claimed == [], "run-2 has not ended: its work is its own"

    retry = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2", run_ended=ended.__contains__)
    assert sorted(retry.claimed, key=lambda f: f["uri"]) == [a, b, c], "a retry gets back what it adopted"
    assert retry.not_claimed == {} and retry.adopted == 0, "without a write"


def test_a_file_left_in_flight_whose_result_is_in_s3_is_not_transcribed_again(s3, ddb):
    """Its run ended without reading the notification, and the lease expired: the result is in S3,
    so the next run keeps it (same inference id, summary only) instead of claiming the file anew."""
    now = [1_000.0]
    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0, clock=lambda: now[0])
    put(s3, "calls/a.wav")
    (f,) = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-1", lease_seconds=600).claimed
    out = f"s3://{CONFIG.output_bucket}/transcripts/{f['inference_id']}.out"
    table.apply([Transition(f["uri"], f["inference_id"], Status.SUBMITTED, {"output_location": out, "deadline": 1600})])
    s3.put_object(Bucket=CONFIG.output_bucket, Key=f"transcripts/{f['inference_id']}.out", Body=b'{"text": "hi"}')
    now[0] = 1_601.0

    report = claim_new_files(s3, table, CALLS, EXTENSIONS, "run-2", lease_seconds=600)

    assert report.claimed == [f] and report.for_summary == 1 and report.abandoned == 0
    item = table.get_many([f["uri"]])[f["uri"]]
    assert item["status"] == Status.COMPLETED and item["run_id"] == "run-2"
