"""The whole pipeline through real processes: moto server, the emulators, the model server
(faster-whisper) and Airflow's api-server, scheduler, dag-processor and triggerer."""

from __future__ import annotations

import fnmatch
import json
import re
import time
import urllib.request

import pytest

from audio_pipeline.config import PipelineConfig
from audio_pipeline.ledger import Ledger
from audio_pipeline.summaries import first_sentence
from benchmarks.verdict import Judge
from local.stack.airflow_api import AirflowApi
from local.stack.demo import SAMPLES, results
from model_server.wer import word_error_rate
from tests.e2e.conftest import REFERENCES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WER_BOUND = 0.35  # measured 0.00-0.12 per clip (docs/asr-quality.md)


def test_the_run_succeeds(outcome):
    assert outcome["state"] == "success"


@pytest.mark.parametrize("clip", sorted(REFERENCES))
def test_each_clip_is_transcribed_and_summarised(outcome, clip):
    row = outcome["rows"][clip]
    assert row.status == "summarized", row.failure_reason
    assert word_error_rate(REFERENCES[clip], row.transcript) < WER_BOUND, row.transcript
    assert row.summary


def ledger_of(session) -> Ledger:
    return Ledger(session.client("dynamodb"), PipelineConfig().status_table)


def test_summary_documents_sit_next_to_the_transcripts(outcome):
    ledger = ledger_of(outcome["session"])
    s3 = outcome["session"].client("s3")
    summarized = [r.uri for r in outcome["rows"].values() if r.status == "summarized"]
    records = ledger.get(summarized)
    assert summarized and sorted(records) == sorted(summarized)
    for record in records.values():
        assert record.output_location and record.summary_location
        assert record.summary_location == record.output_location.removesuffix(".out") + ".summary.json"
        bucket, key = record.summary_location[len("s3://") :].split("/", 1)
        doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert doc["summary"] and doc["model_id"] and isinstance(doc["key_points"], list)


def test_broken_audio_fails_with_a_reason_and_text_files_are_skipped(outcome):
    broken = outcome["rows"]["not-really.wav"]
    assert broken.status == "failed"
    assert "400" in broken.failure_reason and "not decodable audio" in broken.failure_reason
    assert broken.transcript is None and broken.summary is None, "the report shows no transcript it does not have"
    assert "notes.txt" not in outcome["rows"]


def test_nothing_is_left_in_flight_and_the_run_manifest_is_written(outcome):
    statuses = {r.status.value for r in ledger_of(outcome["session"]).run_records(outcome["run_id"])}
    assert statuses == {"summarized", "failed"}
    s3 = outcome["session"].client("s3")
    manifest = json.loads(
        s3.get_object(Bucket="audio-transcription-output", Key=f"runs/{outcome['run_id']}/manifest.json")["Body"].read()
    )
    assert manifest["counts"] == {"summarized": len(REFERENCES), "failed": 1}


def test_the_manifest_shows_each_files_and_the_runs_work_and_estimated_cost_naming_the_sources(outcome):
    s3 = outcome["session"].client("s3")
    key = f"runs/{outcome['run_id']}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket="audio-transcription-output", Key=key)["Body"].read())
    summarized = [f for f in manifest["files"] if f["status"] == "summarized"]
    assert len(summarized) == len(REFERENCES)
    for f in summarized:
        work, cost = f["work"], f["estimated_cost_usd"]
        # the model server (faster-whisper, one request at a time) and the Bedrock emulator's usage
        assert work["audio_seconds"] > 10 and work["processing_seconds"] > 0 and work["concurrent_requests"] == 1
        assert work["input_tokens"] > 100 and work["output_tokens"] > 10, work
        assert cost["total"] == pytest.approx(cost["endpoint"] + cost["bedrock"], abs=2e-6) and cost["bedrock"] > 0
    (failed,) = [f for f in manifest["files"] if f["status"] == "failed"]
    assert "work" not in failed and "estimated_cost_usd" not in failed, "undecodable audio: no figures"
    totals = manifest["work"]
    assert totals["audio_seconds"] == pytest.approx(sum(f["work"]["audio_seconds"] for f in summarized), abs=1e-2)
    assert totals["input_tokens"] == sum(f["work"]["input_tokens"] for f in summarized)
    cost = manifest["estimated_cost_usd"]
    assert cost["total"] == pytest.approx(sum(f["estimated_cost_usd"]["total"] for f in summarized), abs=1e-5)
    assert cost["per_audio_hour"] == pytest.approx(cost["total"] * 3600 / totals["audio_seconds"], rel=1e-3)
    estimate = manifest["estimate"]
    assert "an estimate, not a bill" in estimate["note"] and estimate["price_table"].startswith("prices.json as of ")
    assert "model server" in estimate["sources"]["processing_seconds"]
    assert (
        "Converse" in estimate["sources"]["input_tokens"] and "prices.json" in estimate["sources"]["usd_per_1k_tokens"]
    )


def test_report_runs_last_lines_are_the_runs_work_and_estimated_cost_also_in_cloudwatch(stack, outcome):
    """The task's own last log lines; the same estimate published as EstimatedCostUSD (and the audio as
    AudioSeconds) to moto's CloudWatch, within report_run's time."""
    from datetime import datetime, timedelta

    from audio_pipeline.metrics_names import AUDIO_SECONDS, ESTIMATED_COST_USD, NAMESPACE, dimensions

    (name,) = [n for n in task_log_records(stack, outcome["run_id"]) if n.startswith("task_id=report_run/")]
    records = task_log_records(stack, outcome["run_id"])[name]
    ours = [r["event"] for r in records if str(r.get("logger", "")).startswith("audio_pipeline")]
    print("\n".join(ours[-3:]))
    work, total, per_hour = ours[-3:]
    assert work.startswith("work: ") and "(the model server's output)" in work and "(Converse's usage)" in work
    assert total.startswith("estimated cost (an estimate, not a bill): $") and "prices from prices.json as of" in total
    assert re.fullmatch(r"estimated cost per audio hour: \$\d+\.\d{4} \(an estimate\)", per_hour), per_hour

    s3 = outcome["session"].client("s3")
    key = f"runs/{outcome['run_id']}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket="audio-transcription-output", Key=key)["Body"].read())
    (ti,) = [t for t in outcome["api"].task_instances(outcome["run_id"]) if t["task_id"] == "report_run"]
    began, ended = (datetime.fromisoformat(ti[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    cloudwatch = outcome["session"].client("cloudwatch")

    def published(metric: str) -> list[float]:
        stat = {"Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions()}, "Stat": "Sum"}
        query = {"Id": "q", "MetricStat": {**stat, "Period": 3600}}
        return cloudwatch.get_metric_data(
            MetricDataQueries=[query], StartTime=began - timedelta(seconds=1), EndTime=ended + timedelta(seconds=1)
        )["MetricDataResults"][0]["Values"]

    assert published(ESTIMATED_COST_USD) == [pytest.approx(manifest["estimated_cost_usd"]["total"], abs=1e-6)]
    assert published(AUDIO_SECONDS) == [pytest.approx(manifest["work"]["audio_seconds"], abs=1e-3)]
    assert manifest["estimated_cost_usd"]["total"] > 0


def task_log_records(stack, run_id):
    """Every record of the run's task logs as Airflow wrote them (trigger logs included)."""
    folder = stack.settings.airflow_home / "logs" / "dag_id=audio_transcription" / f"run_id={run_id}"
    files = sorted(p for p in folder.rglob("*.log*") if p.is_file())
    return {p.relative_to(folder).as_posix(): [json.loads(line) for line in p.read_text().splitlines()] for p in files}


def test_task_logs_of_the_run_carry_no_warnings(stack, outcome):
    logs = task_log_records(stack, outcome["run_id"])
    tasks = {name.split("/")[0] for name in logs}
    assert len(tasks) == 6 and any(".trigger." in name for name in logs), sorted(logs)
    loud = [
        f"{name}: {r['level']}: {r['event']}"
        for name, records in logs.items()
        for r in records
        if r.get("level") in ("warning", "error", "critical")
    ]
    assert not loud, "\n".join(loud)


def test_report_run_logs_one_line_per_file_with_its_transcript_summary_and_first_sentence(outcome):
    log = outcome["api"].task_log(outcome["run_id"], "report_run")
    for clip, row in outcome["rows"].items():
        lines = [line for line in log.splitlines() if line.split()[1:2] == [row.uri]]
        assert len(lines) == 1, (clip, log)
        if row.status == "summarized":
            assert re.fullmatch(
                rf'summarized {re.escape(row.uri)}  transcript s3://\S+\.out  summary s3://\S+\.summary\.json  "[^"]+"'
                r"  \[audio \d+\.\d s, endpoint \d+\.\d\d s, tokens \d+ in/\d+ out, ~\$\d+\.\d{6} \(estimate\)\]",
                lines[0],
            ), lines[0]
            assert lines[0].split('"')[1] == first_sentence(row.summary)
        else:
            assert lines[0].startswith(f"failed     {row.uri}  reason: "), lines[0]


def test_mapped_tasks_have_readable_names(outcome):
    tis = outcome["api"].task_instances(outcome["run_id"])
    mapped = [ti for ti in tis if ti["task_id"].startswith("transcribe.")]
    assert mapped and all(ti.get("rendered_map_index") == "batch 1 of 1" for ti in mapped), mapped


IAM_ACTIONS = {
    "s3:HeadBucket": ("s3:ListBucket",),
    "s3:HeadObject": ("s3:GetObject",),
    "s3:ListObjectsV2": ("s3:ListBucket",),
    "s3:CopyObject": ("s3:GetObject", "s3:PutObject"),
    "sqs:DeleteMessageBatch": ("sqs:DeleteMessage",),
    "sqs:ChangeMessageVisibilityBatch": ("sqs:ChangeMessageVisibility",),
    "dynamodb:TransactWriteItems": ("dynamodb:PutItem", "dynamodb:UpdateItem"),  # the ledger's Puts and Updates
    "monitoring:PutMetricData": ("cloudwatch:PutMetricData",),  # CloudWatch signs as "monitoring"
}
"""The IAM actions an operation needs where they are named otherwise (AWS's Service Authorization
Reference); any other operation needs the action of its own name."""


def test_the_deployed_execution_role_allows_every_call_the_runs_made(stack, outcome, tmp_path_factory):
    """Every AWS operation the stack's Airflow has made so far through the provider's hooks (moto
    counts them by caller: the run above, its failure included) is allowed by the execution role
    infra/ deploys. moto enforces no IAM: a call the role lacks would fail every run on MWAA only."""
    from tests.infra.conftest import synth  # aws-cdk starts a node process: only this test needs it
    from tests.infra.test_stack import as_list, role_statements

    moto = stack.settings.url(stack.settings.ports.moto)
    made = set(json.loads(urllib.request.urlopen(f"{moto}/_emulator/calls", timeout=10).read())["airflow"])
    assert {"dynamodb:Scan", "dynamodb:TransactWriteItems", "sqs:ReceiveMessage", "s3:CopyObject"} <= made, made
    template, _ = synth(tmp_path_factory)
    statements = role_statements(template, "AirflowExecutionRole")
    allowed = [a for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"])]
    missing = {
        f"{operation} ({action})"
        for operation in made
        for action in IAM_ACTIONS.get(operation, (operation,))
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in allowed)
    }
    assert not missing, f"the execution role does not allow {sorted(missing)}"


def test_transcripts_of_a_run_without_summaries_are_summarised_by_the_next_run_not_transcribed_again(stack):
    session = stack.aws_session()
    clips = sorted(REFERENCES)[:2]
    for clip in clips:
        session.client("s3").upload_file(str(SAMPLES / clip), "audio-transcription-input", f"later/{clip}")
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    uri = "s3://audio-transcription-input/later/"
    first = api.trigger({"bucket_uri": uri, "summarize": False})
    assert api.wait_for_run(first, timeout=300) == "success"
    keys = [f"later/{clip}" for clip in clips]
    assert {r.status for r in results(session, "audio-transcription-input", keys)} == {"completed"}

    second = api.trigger({"bucket_uri": uri})
    assert api.wait_for_run(second, timeout=300) == "success"
    rows = results(session, "audio-transcription-input", keys)
    assert {r.status for r in rows} == {"summarized"} and all(r.summary for r in rows)
    verdicts = Judge(session, stack.settings.witness_dir).judge([f"s3://audio-transcription-input/{k}" for k in keys])
    assert [(v.outcome, v.model_calls, v.summaries) for v in verdicts] == [("summarized", 1, 1)] * len(keys), verdicts


@pytest.mark.parametrize(
    ("bucket_uri", "message"),
    [
        ("audio-transcription-input/e2e/", "must start with s3://"),
        ("s3://Not_A_Bucket/e2e/", "is not a valid S3 bucket name"),
        ("s3://no-such-bucket-here/e2e/", "bucket 'no-such-bucket-here' does not exist"),
    ],
)
def test_unusable_bucket_uri_fails_the_first_task_at_once_saying_why(stack, bucket_uri, message):
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    run_id = api.trigger({"bucket_uri": bucket_uri})
    assert api.wait_for_run(run_id, timeout=120) == "failed"
    first = next(ti for ti in api.task_instances(run_id) if ti["task_id"] == "resolve_run")
    assert first["state"] == "failed" and first["try_number"] == 1, "no retries: a retry would say the same"
    assert message in api.task_log(run_id, "resolve_run")


@pytest.mark.parametrize(
    ("prefix", "text_files", "message"),
    [
        ("nothing-here/", [], "listed 0 objects, no audio file"),
        ("notes-only/", ["notes.txt"], "listed 1 objects, no audio file"),
    ],
)
def test_a_bucket_uri_without_audio_fails_the_claim_at_once_saying_what_was_listed(stack, prefix, text_files, message):
    s3 = stack.aws_session().client("s3")
    for name in text_files:
        s3.put_object(Bucket="audio-transcription-input", Key=f"{prefix}{name}", Body=b"not audio")
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    run_id = api.trigger({"bucket_uri": f"s3://audio-transcription-input/{prefix}"})
    assert api.wait_for_run(run_id, timeout=180) == "failed", "a mistyped prefix is not a green run"
    claim = next(ti for ti in api.task_instances(run_id) if ti["task_id"] == "claim_new_audio")
    assert claim["state"] == "failed" and claim["try_number"] == 1, "no retries: a retry would list the same"
    log = api.task_log(run_id, "claim_new_audio")
    assert f"s3://audio-transcription-input/{prefix}: {message}" in log, log


def secret_lookups(stack, reset: bool = False) -> int:
    """``GetParameter`` calls the moto server answered (every caller: Airflow's secrets backend in
    each task process, the triggerer, the scheduler); ``reset`` zeroes the count first."""
    url = f"{stack.settings.url(stack.settings.ports.moto)}/_emulator/calls"
    if reset:
        urllib.request.urlopen(urllib.request.Request(f"{url}/reset", method="POST"), timeout=10).close()
    calls = json.loads(urllib.request.urlopen(url, timeout=10).read())
    return sum(by_operation.get("ssm:GetParameter", 0) for by_operation in calls.values())


def nightly_run(api: AirflowApi) -> str:
    """The nightly run the scheduler creates for the DAG, unpaused from its creation as on MWAA (the
    latest interval, no catchup), finished."""
    api.wait_for_dag()
    deadline = time.monotonic() + 120
    while not (runs := [r for r in api.dag_runs() if r["run_type"] == "scheduled"]) and time.monotonic() < deadline:
        time.sleep(2)
    assert runs, "the unpaused DAG gets the latest nightly run"
    run_id = runs[0]["dag_run_id"]
    api.wait_for_run(run_id, timeout=120)
    return run_id


def test_a_run_reads_its_configuration_once_whatever_the_number_of_batches(stack):
    """Variables come from SSM Parameter Store, as on MWAA: the secret lookups of a run are
    counted at the moto server, for one batch and for three."""
    session = stack.aws_session()
    clip = min(REFERENCES, key=lambda c: (SAMPLES / c).stat().st_size)
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    nightly_run(api)  # no other run while counting
    lookups = {}
    for batches in (1, 3):
        prefix = f"lookups-{batches}/"
        for i in range(3):
            session.client("s3").upload_file(str(SAMPLES / clip), "audio-transcription-input", f"{prefix}{i}-{clip}")
        secret_lookups(stack, reset=True)
        run_id = api.trigger({"bucket_uri": f"s3://audio-transcription-input/{prefix}", "batch_size": 3 // batches})
        assert api.wait_for_run(run_id, timeout=300) == "success"
        mapped = {ti["map_index"] for ti in api.task_instances(run_id) if ti["task_id"] == "transcribe.submit"}
        assert len(mapped) == batches
        lookups[batches] = secret_lookups(stack)
    print(f"secret lookups per run: {lookups}")
    assert 1 <= lookups[1] <= 10 and lookups[3] == lookups[1], lookups


def test_the_nightly_run_without_a_configured_prefix_is_skipped_saying_why(stack):
    """The local stack sets no schedule_bucket_uri."""
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    run_id = nightly_run(api)
    assert api.wait_for_run(run_id, timeout=10) == "success", "not red in the UI, not an alert"
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(run_id)}
    assert states["resolve_run"] == "skipped" and states["report_run"] == "skipped", states
    assert "no bucket URI for the nightly run" in api.task_log(run_id, "resolve_run")


def test_stack_env_lets_boto3_reach_the_stack(stack):
    import subprocess
    import sys

    env_file = stack.settings.state_dir / "stack.env"
    script = (
        f"source {env_file} && {sys.executable} -c "
        '\'import boto3, os; print(boto3.client("s3").head_bucket(Bucket=os.environ["AUDIO_BUCKET"])'
        '["ResponseMetadata"]["HTTPStatusCode"])\''
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "200", result.stderr
    text = env_file.read_text()
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AUDIO_BUCKET",
        "STATUS_TABLE",
        "NOTIFICATION_QUEUE_URL",
        "SAGEMAKER_ENDPOINT_NAME",
    ):
        assert f"export {name}=" in text, name
