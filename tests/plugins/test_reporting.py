from __future__ import annotations

import json

from audio_pipeline.reporting import RunReport, file_line


def test_a_report_counts_its_files_and_says_what_was_abandoned():
    files = [
        {"uri": "s3://in/a.wav", "status": "summarized", "output_location": "s3://o/a.out"},
        {"uri": "s3://in/b.wav", "status": "failed", "failure_reason": "run r ended before a result was recorded"},
    ]
    report = RunReport(run_id="r", bucket_uri="s3://in/", files=files, abandoned=1)
    lines = report.lines()
    assert lines[0] == "run r over s3://in/: 1 failed, 1 summarized"
    assert lines[1] == "1 files were still in flight when the run ended and are now failed"
    assert lines[2:] == [file_line(f) for f in files]
    manifest = json.loads(report.to_json())
    assert manifest["counts"] == {"summarized": 1, "failed": 1} and manifest["files"] == files
    assert manifest["run_id"] == "r" and manifest["abandoned"] == 1 and manifest["written_at"]


def test_a_failed_file_shows_its_reason_and_no_transcript_it_lacks():
    line = file_line(
        {"uri": "s3://in/x.wav", "status": "failed", "output_location": "s3://o/x.out", "failure_reason": "400"}
    )
    assert line == "failed     s3://in/x.wav  reason: 400"
