from __future__ import annotations

import json
import logging
from dataclasses import replace
from types import SimpleNamespace

import pytest

from audio_pipeline.settlement import settle_and_report, settle_run
from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import inference_id_for
from tests.plugins.conftest import CONFIG

MANIFEST = (CONFIG.output_bucket, "runs/run-1/manifest.json")


@pytest.fixture
def settle(s3, table, caplog):
    """Run the end of a run as ``report_run`` does: its log lines, its manifest read back from S3."""

    def run(run_id="run-1", bucket_uri="s3://audio-in/", reason="run run-1 ended"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="audio_pipeline.settlement"):
            report = settle_and_report(table, s3, run_id, bucket_uri, MANIFEST, reason)
        manifest = json.loads(s3.get_object(Bucket=MANIFEST[0], Key=MANIFEST[1])["Body"].read())
        return SimpleNamespace(report=report, lines=caplog.messages, manifest=manifest)

    return run


def test_settle_run_fails_leftovers_and_reports_every_file(table, settle):
    files = []
    for name in ("done", "failed", "stuck-processing", "stuck-submitted"):
        uri = f"s3://audio-in/{name}.wav"
        files.append({"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")})
    table.claim(files, "run-1")
    done, failed, _, stuck = files
    table.apply([Transition(f["uri"], f["inference_id"], Status.SUBMITTED) for f in (done, failed, stuck)])
    table.apply(
        [
            Transition(done["uri"], done["inference_id"], Status.COMPLETED, {"output_location": "s3://o/d.out"}),
            Transition(failed["uri"], failed["inference_id"], Status.FAILED, {"failure_reason": "bad audio"}),
        ]
    )
    settled = settle()
    assert settled.report.abandoned == 2 and settled.manifest["abandoned"] == 2
    assert settled.report.counts == {"completed": 1, "failed": 3}
    by_uri = {f["uri"]: f for f in settled.manifest["files"]}
    assert by_uri[stuck["uri"]]["failure_reason"] == "run run-1 ended", "submitted: its result may still come"
    never_sent = "run run-1 ended before sending it to the endpoint; the next run claims it again"
    assert by_uri["s3://audio-in/stuck-processing.wav"]["failure_reason"] == never_sent
    # transcribed but never summarised: told why, so that a later run takes it for its summary
    assert by_uri[done["uri"]]["summary_error"] == "run run-1 ended before summarising it"
    assert table.get_many([done["uri"]])[done["uri"]]["summary_error"] == "run run-1 ended before summarising it"
    lines = settled.lines
    assert lines[-3:] == [
        "run run-1 over s3://audio-in/: 1 completed, 3 failed",
        "2 files were still in flight when the run ended and are now failed",
        f"Run manifest: s3://{MANIFEST[0]}/{MANIFEST[1]}",
    ]
    assert sum(1 for line in lines if "s3://audio-in/" in line and not line.startswith("run ")) == 4
    assert settled.manifest["counts"] == {"completed": 1, "failed": 3} and len(settled.manifest["files"]) == 4
    assert settled.manifest["run_id"] == "run-1" and settled.manifest["written_at"]
    assert not [i for i in table.run_items("run-1") if i["status"] in ("processing", "submitted")]


def test_empty_run(settle):
    empty = settle(run_id="run-empty", bucket_uri=None)
    assert empty.manifest["files"] == [] and empty.manifest["counts"] == {}
    assert empty.lines[0] == "run run-empty over (no bucket URI): no files"


def test_a_file_a_later_run_took_is_left_to_it(table):
    uri = "s3://audio-in/a.wav"
    f = {"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")}
    table.claim([f], "run-1")
    table.apply([Transition(uri, f["inference_id"], Status.SUBMITTED)])
    table.apply([Transition(uri, f["inference_id"], Status.COMPLETED, {"run_id": "run-2"})])  # taken since
    list(settle_run(table, "run-1", reason="x"))
    assert "summary_error" not in table.get_many([uri])[uri]


def test_each_file_line_shows_status_transcript_summary_and_the_summarys_first_sentence(table, settle):
    uris = [f"s3://audio-in/{name}.wav" for name in ("talk", "noise", "later")]
    files = [{"uri": u, "etag": "e", "size": 1, "inference_id": inference_id_for(u, "e", "run-1")} for u in uris]
    table.claim(files, "run-1")
    talk, noise, later = files
    table.apply(
        [
            Transition(f["uri"], f["inference_id"], Status.SUBMITTED, {"output_location": f"s3://o/{i}.out"})
            for i, f in enumerate(files)
        ]
    )
    summary = f"s3://{CONFIG.output_bucket}/transcripts/0.summary.json"  # never read: the table holds its opening
    table.apply(
        [
            Transition(talk["uri"], talk["inference_id"], Status.COMPLETED, {"output_location": "s3://o/0.out"}),
            Transition(noise["uri"], noise["inference_id"], Status.FAILED, {"failure_reason": "not decodable audio"}),
            Transition(later["uri"], later["inference_id"], Status.COMPLETED, {"summary_error": "throttled"}),
        ]
    )
    opening = {"summary_location": summary, "summary_opening": "Plants turn light into sugar."}
    table.apply([Transition(talk["uri"], talk["inference_id"], Status.SUMMARIZED, opening)])
    ended = settle(reason="ended")
    lines = {line.split()[1]: line for line in ended.lines[:-2]}
    assert len(lines) == 3
    assert lines[talk["uri"]] == (
        f'summarized {talk["uri"]}  transcript s3://o/0.out  summary {summary}  "Plants turn light into sugar."'
    )
    assert lines[noise["uri"]] == f"failed     {noise['uri']}  reason: not decodable audio", "no transcript it lacks"
    assert lines[later["uri"]] == f"completed  {later['uri']}  transcript s3://o/2.out  summary error: throttled"
    assert ended.manifest["files"][2]["summary_opening"] == "Plants turn light into sugar."


def test_a_run_is_settled_a_chunk_at_a_time(table):
    uris = [f"s3://audio-in/{i}.wav" for i in range(5)]
    files = [{"uri": u, "etag": "e", "size": 1, "inference_id": inference_id_for(u, "e", "run-1")} for u in uris]
    table.claim(files, "run-1")
    chunks = settle_run(table, "run-1", reason="ended", chunk=2)
    first = next(chunks)
    assert len(first.files) == 2 and first.abandoned == 2
    still_claimed = [i for i in table.run_items("run-1") if i["status"] == Status.PROCESSING]
    assert len(still_claimed) == 3, "the next chunk waits until this one is reported"
    rest = list(chunks)
    assert [len(c.files) for c in rest] == [2, 1] and sum(c.abandoned for c in rest) == 3
    reported = [f["uri"] for c in (first, *rest) for f in c.files]
    assert sorted(reported) == uris, "every file once"


def test_a_file_being_sent_when_its_run_ended_is_failed_as_perhaps_sent(table, settle):
    uris = [f"s3://audio-in/{name}.wav" for name in ("unsent", "marked")]
    files = [{"uri": u, "etag": "e", "size": 1, "inference_id": inference_id_for(u, "e", "run-1")} for u in uris]
    table.claim(files, "run-1")
    unsent, marked = files
    mark = Transition(marked["uri"], marked["inference_id"], Status.PROCESSING, {"invoking_since": 1})
    table.apply([replace(mark, expect=(Status.PROCESSING,))])
    settle(reason="run run-1 ended")
    items = table.get_many(uris)
    assert items[unsent["uri"]]["never_sent"] is True
    assert "never_sent" not in items[marked["uri"]], "it may have reached the endpoint: not claimed again as new"
    assert items[marked["uri"]]["failure_reason"] == "run run-1 ended"
