from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from audio_pipeline.ledger import Accepted, Result, Status, Summarized, SummaryFailed, inference_id_for
from audio_pipeline.settlement import settle_and_report, settle_run
from audio_pipeline.work import FileWork
from tests.plugins.conftest import CONFIG, RATES

MANIFEST = (CONFIG.output_bucket, "runs/run-1/manifest.json")
WINDOW = 3600


def claimed(ledger, *names, run_id="run-1"):
    uris = [f"s3://audio-in/{name}.wav" for name in names]
    files = [{"uri": u, "etag": "e", "size": 1, "inference_id": inference_id_for(u, "e", run_id)} for u in uris]
    assert ledger.claim(files, run_id, lease_seconds=WINDOW).applied == uris
    return files


def submitted(ledger, files, run_id="run-1", outputs=None):
    """Send ``files`` as the submitter does: marked, then accepted (``outputs``: their output locations)."""
    since, marked = ledger.mark_invoking(files, run_id, WINDOW)
    assert marked == [f["uri"] for f in files]
    outputs = outputs or [None] * len(files)
    accepted = [Accepted(f, since, f["uri"], out, None) for f, out in zip(files, outputs, strict=True)]
    assert ledger.record_invocations(accepted, WINDOW).applied == marked


def record(ledger, f):
    return ledger.get([f["uri"]])[f["uri"]]


@pytest.fixture
def settle(s3, ledger, caplog):
    """Run the end of a run as ``report_run`` does: its log lines, its manifest read back from S3."""

    def run(run_id="run-1", bucket_uri="s3://audio-in/", reason="run run-1 ended"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="audio_pipeline.settlement"):
            report = settle_and_report(ledger, s3, run_id, bucket_uri, MANIFEST, reason, RATES)
        manifest = json.loads(s3.get_object(Bucket=MANIFEST[0], Key=MANIFEST[1])["Body"].read())
        return SimpleNamespace(report=report, lines=caplog.messages, manifest=manifest)

    return run


def test_settle_run_fails_leftovers_and_reports_every_file(ledger, settle):
    files = claimed(ledger, "done", "failed", "stuck-processing", "stuck-submitted")
    done, failed, _, stuck = files
    submitted(ledger, [done, failed, stuck], outputs=["s3://o/d.out", None, None])
    results = [
        Result(done["uri"], done["inference_id"], output_location="s3://o/d.out"),
        Result(failed["uri"], failed["inference_id"], failure_reason="bad audio"),
    ]
    assert ledger.record_results(results).applied == [done["uri"], failed["uri"]]
    settled = settle()
    assert settled.report.abandoned == 2 and settled.manifest["abandoned"] == 2
    assert settled.report.counts == {"completed": 1, "failed": 3}
    by_uri = {f["uri"]: f for f in settled.manifest["files"]}
    assert by_uri[stuck["uri"]]["failure_reason"] == "run run-1 ended", "submitted: its result may still come"
    never_sent = "run run-1 ended before sending it to the endpoint; the next run claims it again"
    assert by_uri["s3://audio-in/stuck-processing.wav"]["failure_reason"] == never_sent
    assert record(ledger, files[2]).never_sent is True and record(ledger, stuck).never_sent is False
    assert by_uri[failed["uri"]]["failure_reason"] == "bad audio", "settled before the end: left as it is"
    # transcribed but never summarised: told why, so that a later run takes it for its summary
    assert by_uri[done["uri"]]["summary_error"] == "run run-1 ended before summarising it"
    assert record(ledger, done).summary_error == "run run-1 ended before summarising it"
    lines = settled.lines
    assert lines[-3:] == [
        "run run-1 over s3://audio-in/: 1 completed, 3 failed",
        "2 files were still in flight when the run ended and are now failed",
        f"Run manifest: s3://{MANIFEST[0]}/{MANIFEST[1]}",
    ]
    assert sum(1 for line in lines if "s3://audio-in/" in line and not line.startswith("run ")) == 4
    assert settled.manifest["counts"] == {"completed": 1, "failed": 3} and len(settled.manifest["files"]) == 4
    assert settled.manifest["run_id"] == "run-1" and settled.manifest["written_at"]
    assert not [r for r in ledger.run_records("run-1") if r.in_flight]


def test_empty_run(settle):
    empty = settle(run_id="run-empty", bucket_uri=None)
    assert empty.manifest["files"] == [] and empty.manifest["counts"] == {}
    assert empty.lines[0] == "run run-empty over (no bucket URI): no files"


def test_a_file_a_later_run_took_is_left_to_it(ledger):
    (f,) = claimed(ledger, "a")
    submitted(ledger, [f], outputs=["s3://o/a.out"])
    assert ledger.record_results([Result(f["uri"], f["inference_id"], output_location="s3://o/a.out")]).applied
    assert ledger.take_for_summary([record(ledger, f)], "run-2", 600) == [f["uri"]]  # taken since
    list(settle_run(ledger, "run-1", reason="x"))
    after = record(ledger, f)
    assert after.summary_error is None and after.run_id == "run-2" and after.status == Status.COMPLETED


def test_a_file_another_run_adopted_while_in_flight_is_left_to_it(ledger, monkeypatch):
    """run-1's end reads its files (the run index is eventually consistent: it may still list a file
    handed on a moment ago); run-2 then adopts one, still in flight. run-1 must not fail it: its
    result is run-2's to await."""
    kept, handed_on = claimed(ledger, "kept", "handed-on")
    submitted(ledger, [kept, handed_on], outputs=["s3://o/k.out", "s3://o/h.out"])
    run_records = ledger.run_records

    def read_then_run_2_adopts(run_id):
        records = list(run_records(run_id))
        assert ledger.adopt([record(ledger, handed_on)], "run-2") == [handed_on["uri"]]
        yield from records

    monkeypatch.setattr(ledger, "run_records", read_then_run_2_adopts)

    (settled,) = settle_run(ledger, "run-1", reason="run run-1 ended")

    assert settled.abandoned == 1, "only the file run-1 still held"
    after = record(ledger, handed_on)
    assert after.status == Status.SUBMITTED and after.run_id == "run-2" and after.failure_reason is None
    assert record(ledger, kept).failure_reason == "run run-1 ended"
    assert ledger.record_results([Result(handed_on["uri"], handed_on["inference_id"], output_location="s3://o/h.out")])


def test_a_file_marked_after_the_end_read_it_is_not_failed_as_never_sent(ledger):
    """The end reads a file unsent (``processing``, no mark); a submitter marks it before the end's
    write: it may reach the endpoint, so it must not be failed ``never_sent`` (the next run would
    claim and send it again) but with the run's reason."""
    (f,) = claimed(ledger, "racing")
    stale = list(ledger.run_records("run-1"))
    assert [(r.status, r.invoking_since) for r in stale] == [(Status.PROCESSING, None)]
    assert ledger.mark_invoking([f], "run-1", WINDOW)[1] == [f["uri"]]

    assert ledger.fail_leftovers(stale, "run-1", "run run-1 ended") == 1

    after = record(ledger, f)
    assert after.status == Status.FAILED and after.never_sent is False
    assert after.failure_reason == "run run-1 ended"
    later = {"uri": f["uri"], "etag": "e", "size": 1, "inference_id": inference_id_for(f["uri"], "e", "run-2")}
    assert ledger.claim([later], "run-2", lease_seconds=WINDOW).rejected == [f["uri"]], "not claimed again as new"


def test_each_file_line_shows_status_transcript_summary_and_the_summarys_first_sentence(ledger, settle):
    files = claimed(ledger, "talk", "noise", "later")
    talk, noise, later = files
    submitted(ledger, files, outputs=[f"s3://o/{i}.out" for i in range(3)])
    summary = f"s3://{CONFIG.output_bucket}/transcripts/0.summary.json"  # never read: the table holds its opening
    results = [
        Result(talk["uri"], talk["inference_id"], output_location="s3://o/0.out"),
        Result(noise["uri"], noise["inference_id"], failure_reason="not decodable audio"),
        Result(later["uri"], later["inference_id"], output_location="s3://o/2.out"),
    ]
    assert len(ledger.record_results(results).applied) == 3
    outcomes = [
        Summarized(record(ledger, talk), summary, "Plants turn light into sugar.", "model"),
        SummaryFailed(record(ledger, later), "throttled"),
    ]
    assert len(ledger.record_summaries(outcomes, "run-1").applied) == 2
    ended = settle(reason="ended")
    lines = {line.split()[1]: line for line in ended.lines[:-2] if line.split()[0] in Status}
    assert len(lines) == 3
    assert lines[talk["uri"]] == (
        f'summarized {talk["uri"]}  transcript s3://o/0.out  summary {summary}  "Plants turn light into sugar."'
    )
    assert lines[noise["uri"]] == f"failed     {noise['uri']}  reason: not decodable audio", "no transcript it lacks"
    assert lines[later["uri"]] == f"completed  {later['uri']}  transcript s3://o/2.out  summary error: throttled"
    assert ended.manifest["files"][2]["summary_opening"] == "Plants turn light into sugar."


def test_a_run_is_settled_a_chunk_at_a_time(ledger):
    files = claimed(ledger, *map(str, range(5)))
    uris = [f["uri"] for f in files]
    chunks = settle_run(ledger, "run-1", reason="ended", chunk=2)
    first = next(chunks)
    assert len(first.files) == 2 and first.abandoned == 2
    still_claimed = [r for r in ledger.run_records("run-1") if r.status == Status.PROCESSING]
    assert len(still_claimed) == 3, "the next chunk waits until this one is reported"
    rest = list(chunks)
    assert [len(c.files) for c in rest] == [2, 1] and sum(c.abandoned for c in rest) == 3
    reported = [f.uri for c in (first, *rest) for f in c.files]
    assert sorted(reported) == uris, "every file once"


def test_a_file_being_sent_when_its_run_ended_is_failed_as_perhaps_sent(ledger, settle):
    unsent, marked = claimed(ledger, "unsent", "marked")
    assert ledger.mark_invoking([marked], "run-1", WINDOW)[1] == [marked["uri"]]
    settle(reason="run run-1 ended")
    assert record(ledger, unsent).never_sent is True
    after = record(ledger, marked)
    assert after.never_sent is False, "it may have reached the endpoint: not claimed again as new"
    assert after.failure_reason == "run run-1 ended"


def test_the_manifest_and_lines_show_each_files_work_and_estimated_cost_and_the_runs(ledger, s3, settle):
    """A summarised file's figures come from the table (recorded with its summary); a transcript without a
    summary is read from S3 for its endpoint figures; a file this run only summarised counts its tokens
    here and its endpoint work in the run whose claim transcribed it."""
    summarised, unsummarised = claimed(ledger, "summarised", "unsummarised")
    (earlier,) = claimed(ledger, "earlier", run_id="run-0")
    outputs = [f"s3://{CONFIG.output_bucket}/transcripts/{name}.out" for name in ("s", "u", "e")]
    submitted(ledger, [summarised, unsummarised], outputs=outputs[:2])
    submitted(ledger, [earlier], run_id="run-0", outputs=outputs[2:])
    files = (summarised, unsummarised, earlier)
    results = [Result(f["uri"], f["inference_id"], output_location=o) for f, o in zip(files, outputs, strict=True)]
    assert len(ledger.record_results(results).applied) == 3
    transcript = {"text": "Hi.", "duration_seconds": 1800.0, "processing_seconds": 90.0, "concurrent_requests": 1}
    s3.put_object(Bucket=CONFIG.output_bucket, Key="transcripts/u.out", Body=json.dumps(transcript).encode())
    assert ledger.take_for_summary([record(ledger, earlier)], "run-1", WINDOW) == [earlier["uri"]]
    hour = FileWork(3600.0, 180.0, 1, input_tokens=20000, output_tokens=6000)
    outcomes = [
        Summarized(record(ledger, summarised), "s3://o/s.summary.json", "Hi.", "m", hour),
        Summarized(record(ledger, earlier), "s3://o/e.summary.json", "Hi.", "m", hour),
    ]
    assert len(ledger.record_summaries(outcomes, "run-1").applied) == 2

    ended = settle()

    by_uri = {f["uri"]: f for f in ended.manifest["files"]}
    assert by_uri[summarised["uri"]]["work"] == hour.report()
    assert by_uri[summarised["uri"]]["estimated_cost_usd"] == {"endpoint": 0.0368, "bedrock": 0.055, "total": 0.0918}
    assert by_uri[unsummarised["uri"]]["work"] == {
        "audio_seconds": 1800.0,
        "processing_seconds": 90.0,
        "concurrent_requests": 1,
    }
    assert by_uri[unsummarised["uri"]]["estimated_cost_usd"] == {"endpoint": 0.0184, "total": 0.0184}
    assert by_uri[earlier["uri"]]["estimated_cost_usd"] == {"bedrock": 0.055, "total": 0.055}
    assert "endpoint_work_counted_by" in by_uri[earlier["uri"]]
    assert ended.manifest["work"] == {
        "audio_seconds": 5400.0,
        "processing_seconds": 270.0,
        "input_tokens": 40000,
        "output_tokens": 12000,
    }
    assert ended.manifest["estimated_cost_usd"] == {
        "endpoint": 0.0552,
        "bedrock": 0.11,
        "total": 0.1652,
        "per_audio_hour": pytest.approx(0.1652 / 1.5, abs=1e-6),
    }
    assert ended.manifest["estimate"]["price_table"] == "prices.json as of 2026-01, us-east-1"
    assert "model server" in ended.manifest["estimate"]["sources"]["processing_seconds"]
    line = next(line for line in ended.lines if unsummarised["uri"] in line)
    assert line.endswith("[audio 1800.0 s, endpoint 90.00 s, ~$0.018400 (estimate)]")
    assert ended.report.costs.usd == pytest.approx(0.1652)
