from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from audio_pipeline.batch_summaries import BatchSummarizer, record_no_summary
from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook
from audio_pipeline.ledger import Accepted, Ledger, Result, Status, Summarized, inference_id_for, table_definition
from audio_pipeline.summaries import Summarizer, Summary
from audio_pipeline.work import FileWork
from tests.plugins.conftest import bedrock_hook
from tests.prompts import PROMPTS

from .conftest import CONFIG, REGION, answer_over_http, aws_error

OUT = CONFIG.output_bucket
MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
LEASE = 600


def converse_answer(summary: str) -> dict:
    text = json.dumps({"summary": summary, "key_points": ["a point"]})
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 1},
    }


def transcribed(ledger, s3, transcripts: list[bytes], run_id="run-1"):
    """Claim one file per transcript, send it and record it completed, its .out object in S3."""
    files = []
    for i in range(len(transcripts)):
        uri = f"s3://audio-in/calls/{i}.wav"
        files.append({"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", run_id)})
    uris = [f["uri"] for f in files]
    assert ledger.claim(files, run_id, lease_seconds=LEASE).applied == uris
    since, marked = ledger.mark_invoking(files, run_id, LEASE)
    outputs = [f"s3://{OUT}/transcripts/{f['inference_id']}.out" for f in files]
    accepted = [Accepted(f, since, f["uri"], out, None) for f, out in zip(files, outputs, strict=True)]
    assert ledger.record_invocations(accepted, LEASE).applied == uris
    for out, body in zip(outputs, transcripts, strict=True):
        s3.put_object(Bucket=OUT, Key=out.split("/", 3)[3], Body=body)
    results = [Result(f["uri"], f["inference_id"], output_location=out) for f, out in zip(files, outputs, strict=True)]
    assert ledger.record_results(results, CONFIG.output_path).applied == uris
    return files


def record(ledger, f):
    return ledger.get([f["uri"]])[f["uri"]]


def summaries_in_s3(s3) -> list[str]:
    listed = s3.list_objects_v2(Bucket=OUT, Prefix="transcripts/").get("Contents", [])
    return [o["Key"] for o in listed if o["Key"].endswith(".summary.json")]


@pytest.fixture
def bedrock(aws):
    client = boto3.client("bedrock-runtime", region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub


def summarizer(client) -> Summarizer:
    return Summarizer(bedrock_hook(client), MODEL, prompts=PROMPTS)


def test_summary_is_stored_next_to_the_transcript_and_recorded(ledger, s3, bedrock):
    client, stub = bedrock
    files = transcribed(ledger, s3, [json.dumps(["Hello there. We ship on Friday."]).encode()])
    stub.add_response("converse", converse_answer("They ship on Friday."))

    report = BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE, concurrency=1).run(
        files
    )

    assert report.summarized == 1 and report.errors == [] and not report.retryable
    after = record(ledger, files[0])
    assert after.status == Status.SUMMARIZED and after.summary_error is None
    expected = f"s3://{OUT}/transcripts/{files[0]['inference_id']}.summary.json"
    assert after.summary_location == expected and after.summary_model_id == MODEL
    assert after.summary_opening == "They ship on Friday.", "the report's line needs no read of the summary"
    stored = json.loads(s3.get_object(Bucket=OUT, Key=expected.split("/", 3)[3])["Body"].read())
    assert stored["summary"] == "They ship on Friday." and stored["model_id"] == MODEL


def test_the_files_work_is_recorded_with_its_summary(ledger, s3, bedrock):
    """The transcript's figures (the model server's) and Converse's usage ride on the summary's write:
    the report reads them from the table, no call of their own."""
    client, stub = bedrock
    body = {"text": "Hello. We ship.", "duration_seconds": 61.5, "processing_seconds": 2.25, "concurrent_requests": 1}
    files = transcribed(ledger, s3, [json.dumps(body).encode(), b'["an older format"]'])
    stub.add_response("converse", converse_answer("They ship."))
    stub.add_response("converse", converse_answer("Older."))

    assert (
        BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE, concurrency=1)
        .run(files)
        .summarized
        == 2
    )

    assert record(ledger, files[0]).work == FileWork(61.5, 2.25, 1, input_tokens=10, output_tokens=5)
    assert record(ledger, files[1]).work == FileWork(input_tokens=10, output_tokens=5), "no figures in its format"


def test_files_without_a_transcript_are_left_alone(ledger, s3, bedrock):
    client, _ = bedrock
    files = transcribed(ledger, s3, [b'"text"'])
    done = Summarized(record(ledger, files[0]), f"s3://{OUT}/elsewhere.summary.json", "Done.", MODEL)
    assert ledger.record_summaries([done], "run-1").applied == [files[0]["uri"]]
    stranger = {"uri": "s3://audio-in/never-claimed.wav", "etag": "e", "size": 1, "inference_id": "x"}

    report = BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE).run(
        [*files, stranger]
    )

    assert report.summarized == 0 and report.not_completed == 2 and report.errors == []
    assert record(ledger, files[0]).summary_location == f"s3://{OUT}/elsewhere.summary.json"


def test_a_rejected_request_is_recorded_and_not_worth_a_retry(ledger, s3, bedrock):
    client, stub = bedrock
    files = transcribed(ledger, s3, [b'{"text": "first call"}', b'{"text": "second call"}'])
    stub.add_client_error("converse", "ValidationException", "Input is too long for requested model.", 400)
    stub.add_response("converse", converse_answer("A call."))

    report = BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE, concurrency=1).run(
        files
    )

    assert report.summarized == 1 and len(report.errors) == 1 and not report.retryable
    failure = report.errors[0]
    assert failure.uri == files[0]["uri"] and "ValidationException" in failure.reason
    after = record(ledger, files[0])
    assert after.status == Status.COMPLETED, "the transcript is kept"
    assert "Input is too long" in after.summary_error


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("AccessDeniedException", 403, False),
        ("ResourceNotFoundException", 404, False),
        ("ValidationException", 400, False),
        ("ThrottlingException", 429, True),
        ("ServiceUnavailableException", 503, True),
    ],
)
def test_only_errors_a_later_attempt_may_outlast_are_worth_a_retry(ledger, s3, bedrock, code, status, retryable):
    """A model without access, a model id that does not exist, a request Bedrock rejects: the same
    request fails again, so the task must not be retried for it; throttling and outages may pass."""
    client, stub = bedrock
    files = transcribed(ledger, s3, [b'{"text": "a call"}'])
    stub.add_client_error("converse", code, f"{code} from Bedrock", status)

    report = BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE).run(files)

    stub.assert_no_pending_responses()
    assert report.summarized == 0 and [e.uri for e in report.errors] == [files[0]["uri"]]
    assert report.errors[0].retryable is retryable and report.retryable is retryable
    assert code in report.errors[0].reason
    after = record(ledger, files[0])
    assert after.status == Status.COMPLETED and code in after.summary_error


def test_throttling_that_outlasts_the_retries_is_worth_a_retry(aws_over_http):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=OUT)
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName=CONFIG.status_table, **table_definition())
    ledger = Ledger(ddb, CONFIG.status_table)
    config = Config(retries={"mode": "adaptive", "max_attempts": 1})
    client = AdaptiveBedrockRuntimeHook(region_name=REGION, config=config).conn
    files = transcribed(ledger, s3, [b'{"text": "a call"}'])
    answer_over_http(client, "Converse", [(429, aws_error("ThrottlingException", "Too many requests"))] * 2)

    report = BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE).run(files)

    assert report.retryable and "ThrottlingException after 2 attempts" in report.errors[0].reason
    assert record(ledger, files[0]).status == Status.COMPLETED


def test_an_unreadable_transcript_is_recorded_and_not_worth_a_retry(ledger, s3, bedrock):
    client, _ = bedrock
    files = transcribed(ledger, s3, [b"\x00\x01 not json"])

    report = BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE).run(files)

    assert not report.retryable and "TranscriptFormatError" in report.errors[0].reason


def test_a_later_success_clears_the_recorded_error(ledger, s3, bedrock):
    client, stub = bedrock
    files = transcribed(ledger, s3, [b'{"text": "a call"}'])
    stub.add_client_error("converse", "AccessDeniedException", "no access to the model", 403)
    stub.add_response("converse", converse_answer("A call."))
    batch = BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE)

    assert batch.run(files).errors
    assert batch.run(files).summarized == 1

    after = record(ledger, files[0])
    assert after.status == Status.SUMMARIZED and after.summary_error is None


def test_with_summaries_off_each_transcript_records_why_it_has_none(ledger, s3):
    files = transcribed(ledger, s3, [b'{"text": "a call"}', b'{"text": "another"}'])
    done = Summarized(record(ledger, files[1]), f"s3://{OUT}/1.summary.json", "Done.", MODEL)
    assert ledger.record_summaries([done], "run-1").applied == [files[1]["uri"]]
    stranger = {"uri": "s3://audio-in/never-claimed.wav", "etag": "e", "size": 1, "inference_id": "x"}

    assert record_no_summary(ledger, [*files, stranger], "run-1", "summaries were off for run run-1") == 1

    records = ledger.get(f["uri"] for f in files)
    assert records[files[0]["uri"]].summary_error == "summaries were off for run run-1"
    assert records[files[0]["uri"]].status == Status.COMPLETED
    assert records[files[1]["uri"]].summary_error is None, "a summarised file is left as it is"
    assert records[files[1]["uri"]].status == Status.SUMMARIZED


def test_a_retry_never_takes_back_a_file_another_run_took_for_its_summary(ledger, s3, bedrock):
    """run-1's summary is throttled past its retries (summary_error recorded, its task will retry);
    meanwhile run-2 takes the file for its summary. run-1's retry must leave it to run-2:
    one summary per file version."""
    client, stub = bedrock
    files = transcribed(ledger, s3, [b'{"text": "a call"}'])
    stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429)  # past botocore's retries
    assert BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE).run(files).retryable

    read = record(ledger, files[0])
    assert ledger.take_for_summary([read], "run-2", 600) == [files[0]["uri"]]

    retry = BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE).run(files)

    stub.assert_no_pending_responses()
    assert retry.summarized == 0 and retry.errors == [] and retry.not_completed == 1
    after = record(ledger, files[0])
    assert after.run_id == "run-2" and after.status == Status.COMPLETED and after.summary_error is None
    assert summaries_in_s3(s3) == [], "run-1 wrote no summary"


def test_a_run_takes_its_files_before_summarising_so_no_other_run_can(ledger, s3, bedrock):
    """Summary work is leased: while run-1's retry summarises a file, run-2, which read it before
    (summary_error and all), loses the conditional write and never summarises it too."""
    client, stub = bedrock
    files = transcribed(ledger, s3, [b'{"text": "a call"}'])
    assert record_no_summary(ledger, files, "run-1", "ThrottlingException after 6 attempts") == 1
    read_by_run_2 = record(ledger, files[0])
    taken_by_run_2 = []

    def run_2_claims_meanwhile(**_):
        taken_by_run_2.extend(ledger.take_for_summary([read_by_run_2], "run-2", 600))

    client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", run_2_claims_meanwhile)
    stub.add_response("converse", converse_answer("A call."))

    assert (
        BatchSummarizer(ledger, s3, summarizer(client), run_id="run-1", lease_seconds=LEASE).run(files).summarized == 1
    )
    assert taken_by_run_2 == []
    after = record(ledger, files[0])
    assert after.status == Status.SUMMARIZED and after.run_id == "run-1"


class Killed(BaseException):
    """What Airflow's SIGTERM handler raises into the task."""


class CountingSummarizer:
    """Stands in for Bedrock: counts the summaries it produced. Killed (:class:`Killed`) when asked
    for summary number ``killed_at``, or once ``process`` died: from then on nothing of the task runs."""

    def __init__(self, killed_at: int | None = None) -> None:
        self.produced: list[str] = []
        self.killed_at = killed_at
        self.dead = False

    def summarize(self, transcript: str) -> Summary:
        if self.dead or (self.killed_at is not None and len(self.produced) + 1 == self.killed_at):
            self.dead = True
            raise Killed()
        self.produced.append(transcript)
        return Summary(f"About {transcript}.", [], MODEL, chunks=1, input_chars=len(transcript))


def calls(n: int) -> list[bytes]:
    return [json.dumps({"text": f"call {i}"}).encode() for i in range(n)]


def test_a_task_killed_mid_batch_keeps_what_it_summarised_and_its_retry_asks_bedrock_only_for_the_rest(ledger, s3):
    files = transcribed(ledger, s3, calls(5))
    killed = CountingSummarizer(killed_at=3)
    with pytest.raises(Killed):
        BatchSummarizer(ledger, s3, killed, run_id="run-1", lease_seconds=LEASE, concurrency=1).run(files)
    statuses = [record(ledger, f).status for f in files]
    assert statuses == [Status.SUMMARIZED] * 2 + [Status.COMPLETED] * 3, "each summary is recorded as it is stored"

    retry = CountingSummarizer()
    report = BatchSummarizer(ledger, s3, retry, run_id="run-1", lease_seconds=LEASE, concurrency=1).run(files)

    assert report.summarized == 3 and report.errors == [] and report.not_completed == 2
    assert len(killed.produced) + len(retry.produced) == len(files), "a stored summary was asked of Bedrock again"
    assert retry.produced == ["call 2", "call 3", "call 4"]
    assert {record(ledger, f).status for f in files} == {Status.SUMMARIZED}


def test_a_summary_stored_by_a_task_killed_before_recording_it_is_recorded_not_asked_again(ledger, s3, monkeypatch):
    """Killed between storing a summary in S3 and recording it: the retry finds it in S3 (the file
    was taken for its summary before) and records it without asking Bedrock again."""
    files = transcribed(ledger, s3, calls(3))
    first = CountingSummarizer()
    record_summaries = ledger.record_summaries

    def killed_on_the_second_record(outcomes, run_id):
        if first.dead or len(first.produced) == 2:
            first.dead = True  # nothing of the task runs after this
            raise Killed()
        return record_summaries(outcomes, run_id)

    monkeypatch.setattr(ledger, "record_summaries", killed_on_the_second_record)
    with pytest.raises(Killed):
        BatchSummarizer(ledger, s3, first, run_id="run-1", lease_seconds=LEASE, concurrency=1).run(files)
    monkeypatch.setattr(ledger, "record_summaries", record_summaries)
    assert first.produced == ["call 0", "call 1"] and len(summaries_in_s3(s3)) == 2
    assert [record(ledger, f).status for f in files] == [Status.SUMMARIZED, Status.COMPLETED, Status.COMPLETED]

    retry = CountingSummarizer()
    report = BatchSummarizer(ledger, s3, retry, run_id="run-1", lease_seconds=LEASE, concurrency=1).run(files)

    assert report.summarized == 2 and report.errors == []
    assert len(first.produced) + len(retry.produced) == len(files), "a stored summary was asked of Bedrock again"
    assert retry.produced == ["call 2"]
    after = record(ledger, files[1])
    assert after.status == Status.SUMMARIZED and after.summary_opening == "About call 1."
    assert after.summary_model_id == MODEL and after.summary_location.endswith(".summary.json")
    # the stored summary's usage; the transcript, not read, leaves its figures to the run's report
    assert after.work == FileWork(input_tokens=0, output_tokens=0)
