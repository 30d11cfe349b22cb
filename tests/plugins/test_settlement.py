from __future__ import annotations

import json

from audio_pipeline.settlement import settle_run
from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import inference_id_for
from tests.plugins.conftest import CONFIG


def test_settle_run_fails_leftovers_and_reports_every_file(table):
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
    report = settle_run(table, "run-1", "s3://audio-in/", reason="run run-1 ended")
    assert report.abandoned == 2
    assert report.counts == {"completed": 1, "failed": 3}
    by_uri = {f["uri"]: f for f in report.files}
    assert by_uri[stuck["uri"]]["failure_reason"] == "run run-1 ended"
    # transcribed but never summarised: told why, so that a later run takes it for its summary
    assert by_uri[done["uri"]]["summary_error"] == "run run-1 ended before summarising it"
    assert table.get_many([done["uri"]])[done["uri"]]["summary_error"] == "run run-1 ended before summarising it"
    lines = report.lines()
    assert lines[0].startswith("run run-1 over s3://audio-in/: 1 completed, 3 failed")
    assert sum(1 for line in lines if "s3://audio-in/" in line and not line.startswith("run ")) == 4
    manifest = json.loads(report.to_json())
    assert manifest["counts"] == {"completed": 1, "failed": 3} and len(manifest["files"]) == 4
    assert not [i for i in table.run_items("run-1") if i["status"] in ("processing", "submitted")]


def test_empty_run(table):
    report = settle_run(table, "run-empty", None, reason="x")
    assert report.files == [] and "no files" in report.lines()[0]


def test_a_file_a_later_run_took_is_left_to_it(table):
    uri = "s3://audio-in/a.wav"
    f = {"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")}
    table.claim([f], "run-1")
    table.apply([Transition(uri, f["inference_id"], Status.SUBMITTED)])
    table.apply([Transition(uri, f["inference_id"], Status.COMPLETED, {"run_id": "run-2"})])  # taken since
    settle_run(table, "run-1", None, reason="x")
    assert "summary_error" not in table.get_many([uri])[uri]


def test_each_file_line_shows_status_transcript_summary_and_the_summarys_first_sentence(table):
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
    report = settle_run(table, "run-1", "s3://audio-in/", reason="ended")
    lines = {line.split()[1]: line for line in report.lines()[1:]}
    assert len(lines) == 3
    assert lines[talk["uri"]] == (
        f'summarized {talk["uri"]}  transcript s3://o/0.out  summary {summary}  "Plants turn light into sugar."'
    )
    assert lines[noise["uri"]] == f"failed     {noise['uri']}  reason: not decodable audio", "no transcript it lacks"
    assert lines[later["uri"]] == f"completed  {later['uri']}  transcript s3://o/2.out  summary error: throttled"
    assert json.loads(report.to_json())["files"][2]["summary_opening"] == "Plants turn light into sugar."
