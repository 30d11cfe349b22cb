from __future__ import annotations

import io
import json

from audio_pipeline.ledger import FileRecord, Status
from audio_pipeline.reporting import RunReport, file_line

from .conftest import RATES


def test_a_report_counts_its_files_as_they_come_and_writes_the_manifest_as_it_goes():
    files = [
        FileRecord("s3://in/a.wav", Status.SUMMARIZED, output_location="s3://o/a.out", run_id="r", etag="e"),
        FileRecord("s3://in/b.wav", Status.FAILED, failure_reason="run r ended before a result was recorded"),
        FileRecord("s3://in/c.wav", Status.FAILED, failure_reason="not decodable audio", inference_id="i"),
    ]
    out = io.BytesIO()
    report = RunReport(run_id="r", bucket_uri="s3://in/", out=out, rates=RATES)
    assert report.add(files[:2], abandoned=1) == [file_line(f) for f in files[:2]]
    written = len(out.getvalue())
    assert report.add(files[2:]) == [file_line(files[2])]
    assert len(out.getvalue()) > written, "written as it comes, not held until the end"
    assert report.close() == [
        "run r over s3://in/: 2 failed, 1 summarized",
        "1 files were still in flight when the run ended and are now failed",
    ]
    manifest = json.loads(out.getvalue())
    assert manifest["counts"] == {"summarized": 1, "failed": 2}
    assert manifest["files"] == [  # what a reader of the manifest needs, not the claim's bookkeeping
        {"uri": "s3://in/a.wav", "status": "summarized", "output_location": "s3://o/a.out"},
        {"uri": "s3://in/b.wav", "status": "failed", "failure_reason": "run r ended before a result was recorded"},
        {"uri": "s3://in/c.wav", "status": "failed", "failure_reason": "not decodable audio"},
    ]
    assert manifest["run_id"] == "r" and manifest["bucket_uri"] == "s3://in/" and manifest["abandoned"] == 1
    assert manifest["written_at"]


def test_a_run_without_files_writes_an_empty_manifest():
    out = io.BytesIO()
    report = RunReport(run_id="r", bucket_uri=None, out=out, rates=RATES)
    assert report.close() == ["run r over (no bucket URI): no files"]
    manifest = json.loads(out.getvalue())
    assert manifest["files"] == [] and manifest["counts"] == {} and manifest["abandoned"] == 0


def test_a_failed_file_shows_its_reason_and_no_transcript_it_lacks():
    line = file_line(FileRecord("s3://in/x.wav", Status.FAILED, output_location="s3://o/x.out", failure_reason="400"))
    assert line == "failed     s3://in/x.wav  reason: 400"


def test_a_skipped_file_shows_why():
    line = file_line(FileRecord("s3://in/empty.wav", Status.SKIPPED, skip_reason="empty object"))
    assert line == "skipped    s3://in/empty.wav  reason: empty object"
