"""Upload audio, run the DAG through the real Airflow, and read back every file's outcome."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from audio_pipeline.config import PipelineConfig
from audio_pipeline.ledger import FileRecord, Ledger, Status
from audio_pipeline.s3_uris import split_s3_uri
from audio_pipeline.transcripts import TranscriptFormatError, parse_transcript
from local.stack.airflow_api import AirflowApi

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
log = logging.getLogger("local.stack")


@dataclass
class FileResult:
    uri: str
    status: str
    transcript: str | None
    summary: str | None
    failure_reason: str | None


def upload(s3: Any, directory: Path, bucket: str, prefix: str) -> list[str]:
    """Upload every file under ``directory`` (subfolders kept as key prefixes); return the keys."""
    keys = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(directory).as_posix()
        s3.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def run_pipeline(api: AirflowApi, bucket_uri: str, timeout: float) -> tuple[str, str, float]:
    """Trigger ``audio_transcription`` on ``bucket_uri``; wait. Returns (run id, state, seconds)."""
    api.wait_for_dag()
    if api.is_paused():
        raise RuntimeError("audio_transcription is paused, so its run would wait, queued: airflow dags unpause it")
    started = time.monotonic()
    run_id = api.trigger({"bucket_uri": bucket_uri})
    state = api.wait_for_run(run_id, timeout)
    return run_id, state, time.monotonic() - started


def results(session: Any, bucket: str, keys: list[str], config: PipelineConfig = PipelineConfig()) -> list[FileResult]:
    """One result per uploaded audio file, from the status table and the objects it points to."""
    s3 = session.client("s3")
    ledger = Ledger(session.client("dynamodb"), config.status_table)
    audio = [f"s3://{bucket}/{k}" for k in keys if k.rsplit(".", 1)[-1].lower() in config.extensions]
    records = ledger.get(audio)
    out = []
    for uri in audio:
        record: FileRecord | None = records.get(uri)
        if record is None:
            out.append(FileResult(uri=uri, status="not claimed", transcript=None, summary=None, failure_reason=None))
            continue
        transcript = summary = None
        if record.status in (Status.COMPLETED, Status.SUMMARIZED) and record.output_location:  # else no output object
            try:
                transcript = parse_transcript(_read(s3, record.output_location))
            except (TranscriptFormatError, s3.exceptions.NoSuchKey) as err:
                transcript = f"(unreadable: {err})"
        if record.summary_location:
            summary = json.loads(_read(s3, record.summary_location))["summary"]
        out.append(
            FileResult(
                uri=uri,
                status=record.status.value,
                transcript=transcript,
                summary=summary,
                failure_reason=record.failure_reason or record.summary_error or record.skip_reason,
            )
        )
    return out


def _read(s3: Any, uri: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def failed_tasks(api: AirflowApi, run_id: str, logs: str) -> list[str]:
    lines = []
    for ti in api.task_instances(run_id):
        if ti["state"] in ("failed", "upstream_failed"):
            index = f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ""
            lines.append(f"{ti['task_id']}{index}: {ti['state']} ({logs})")
    return lines


def table(rows: list[FileResult], width: int = 60) -> str:
    def cut(text: str | None) -> str:
        text = (text or "").replace("\n", " ")
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = []
    for r in rows:
        lines.append(f"{r.status:<11} {r.uri}")
        if r.transcript:
            lines.append(f"            transcript: {cut(r.transcript)}")
        if r.summary:
            lines.append(f"            summary:    {cut(r.summary)}")
        if r.failure_reason:
            lines.append(f"            reason:     {cut(r.failure_reason)}")
    return "\n".join(lines)


def write_report(rows: list[FileResult], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in rows], indent=1, ensure_ascii=False) + "\n")


def run_demo(
    session: Any, api: AirflowApi, bucket: str, audio_dir: Path, report: Path | None, timeout: float, logs: str
) -> int:
    """Upload ``audio_dir``, run the DAG on it, print each file's outcome; 0 when every file is summarized.

    ``make demo`` (the native stack) and ``make compose-demo`` (docker compose) both run this;
    ``logs`` tells where the task logs of a failed task are.
    """
    started = time.monotonic()
    prefix = f"demo-{time.strftime('%Y%m%d-%H%M%S')}/"
    keys = upload(session.client("s3"), audio_dir, bucket, prefix)
    log.info("uploaded %d files from %s to s3://%s/%s", len(keys), audio_dir, bucket, prefix)
    run_id, state, seconds = run_pipeline(api, f"s3://{bucket}/{prefix}", timeout)
    rows = results(session, bucket, keys)
    print(table(rows))
    print(f"\nrun {run_id}: {state} in {seconds:.0f}s ({time.monotonic() - started:.0f}s in all)")
    if state != "success":
        for line in failed_tasks(api, run_id, logs):
            print(f"  {line}")
    if report:
        write_report(rows, report)
        print(f"report: {report}")
    ok = state == "success" and rows and all(r.status == "summarized" for r in rows)
    return 0 if ok else 1
