from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from audio_pipeline.batch_summaries import BatchSummarizer, record_no_summary
from audio_pipeline.hooks.bedrock_runtime import AdaptiveBedrockRuntimeHook
from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import StatusTable, inference_id_for, table_definition
from audio_pipeline.summaries import Summarizer
from tests.prompts import PROMPTS

from .conftest import CONFIG, REGION, answer_over_http, aws_error

OUT = CONFIG.output_bucket
MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def converse_answer(summary: str) -> dict:
    text = json.dumps({"summary": summary, "key_points": ["a point"]})
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 1},
    }


def transcribed(table, s3, transcripts: list[bytes], run_id="run-1"):
    """Claim one file per transcript and record it completed, its .out object in S3."""
    files = []
    for i in range(len(transcripts)):
        uri = f"s3://audio-in/calls/{i}.wav"
        files.append({"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", run_id)})
    table.claim(files, run_id)
    moves = []
    for f, body in zip(files, transcripts, strict=True):
        key = f"transcripts/{f['inference_id']}.out"
        s3.put_object(Bucket=OUT, Key=key, Body=body)
        moves.append(
            Transition(f["uri"], f["inference_id"], Status.COMPLETED, {"output_location": f"s3://{OUT}/{key}"})
        )
    table.apply(moves)
    return files


@pytest.fixture
def bedrock(aws):
    client = boto3.client("bedrock-runtime", region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub


def summarizer(client) -> Summarizer:
    return Summarizer(client, MODEL, prompts=PROMPTS)


def test_summary_is_stored_next_to_the_transcript_and_recorded(table, s3, bedrock):
    client, stub = bedrock
    files = transcribed(table, s3, [json.dumps(["Hello there. We ship on Friday."]).encode()])
    stub.add_response("converse", converse_answer("They ship on Friday."))

    report = BatchSummarizer(table, s3, summarizer(client), run_id="run-1", concurrency=1).run(files)

    assert report.summarized == 1 and report.errors == [] and not report.retryable
    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["status"] == Status.SUMMARIZED
    expected = f"s3://{OUT}/transcripts/{files[0]['inference_id']}.summary.json"
    assert item["summary_location"] == expected and item["summary_model_id"] == MODEL
    assert item["summary_opening"] == "They ship on Friday.", "the report's line needs no read of the summary"
    stored = json.loads(s3.get_object(Bucket=OUT, Key=expected.split("/", 3)[3])["Body"].read())
    assert stored["summary"] == "They ship on Friday." and stored["model_id"] == MODEL


def test_files_without_a_transcript_are_left_alone(table, s3, bedrock):
    client, _ = bedrock
    files = transcribed(table, s3, [b'"text"'])
    table.apply([Transition(files[0]["uri"], files[0]["inference_id"], Status.SUMMARIZED, expect=(Status.COMPLETED,))])
    stranger = {"uri": "s3://audio-in/never-claimed.wav", "etag": "e", "size": 1, "inference_id": "x"}

    report = BatchSummarizer(table, s3, summarizer(client), run_id="run-1").run([*files, stranger])

    assert report.summarized == 0 and report.not_completed == 2 and report.errors == []


def test_a_rejected_request_is_recorded_and_not_worth_a_retry(table, s3, bedrock):
    client, stub = bedrock
    files = transcribed(table, s3, [b'{"text": "first call"}', b'{"text": "second call"}'])
    stub.add_client_error("converse", "ValidationException", "Input is too long for requested model.", 400)
    stub.add_response("converse", converse_answer("A call."))

    report = BatchSummarizer(table, s3, summarizer(client), run_id="run-1", concurrency=1).run(files)

    assert report.summarized == 1 and len(report.errors) == 1 and not report.retryable
    failure = report.errors[0]
    assert failure.uri == files[0]["uri"] and "ValidationException" in failure.reason
    item = table.get_many([failure.uri])[failure.uri]
    assert item["status"] == Status.COMPLETED, "the transcript is kept"
    assert "Input is too long" in item["summary_error"]


def test_throttling_that_outlasts_the_retries_is_worth_a_retry(aws_over_http):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=OUT)
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName=CONFIG.status_table, **table_definition())
    table = StatusTable(ddb, CONFIG.status_table)
    config = Config(retries={"mode": "adaptive", "max_attempts": 1})
    client = AdaptiveBedrockRuntimeHook(region_name=REGION, config=config).conn
    files = transcribed(table, s3, [b'{"text": "a call"}'])
    answer_over_http(client, "Converse", [(429, aws_error("ThrottlingException", "Too many requests"))] * 2)

    report = BatchSummarizer(table, s3, summarizer(client), run_id="run-1").run(files)

    assert report.retryable and "ThrottlingException after 2 attempts" in report.errors[0].reason
    assert table.get_many([files[0]["uri"]])[files[0]["uri"]]["status"] == Status.COMPLETED


def test_an_unreadable_transcript_is_recorded_and_not_worth_a_retry(table, s3, bedrock):
    client, _ = bedrock
    files = transcribed(table, s3, [b"\x00\x01 not json"])

    report = BatchSummarizer(table, s3, summarizer(client), run_id="run-1").run(files)

    assert not report.retryable and "TranscriptFormatError" in report.errors[0].reason


def test_a_later_success_clears_the_recorded_error(table, s3, bedrock):
    client, stub = bedrock
    files = transcribed(table, s3, [b'{"text": "a call"}'])
    stub.add_client_error("converse", "AccessDeniedException", "no access to the model", 403)
    stub.add_response("converse", converse_answer("A call."))
    batch = BatchSummarizer(table, s3, summarizer(client), run_id="run-1")

    assert batch.run(files).errors
    assert batch.run(files).summarized == 1

    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["status"] == Status.SUMMARIZED and "summary_error" not in item


def test_with_summaries_off_each_transcript_records_why_it_has_none(table, s3):
    files = transcribed(table, s3, [b'{"text": "a call"}', b'{"text": "another"}'])
    table.apply([Transition(files[1]["uri"], files[1]["inference_id"], Status.SUMMARIZED, expect=(Status.COMPLETED,))])
    stranger = {"uri": "s3://audio-in/never-claimed.wav", "etag": "e", "size": 1, "inference_id": "x"}

    assert record_no_summary(table, [*files, stranger], "run-1", "summaries were off for run run-1") == 1

    items = table.get_many(f["uri"] for f in files)
    assert items[files[0]["uri"]]["summary_error"] == "summaries were off for run run-1"
    assert items[files[0]["uri"]]["status"] == Status.COMPLETED
    assert "summary_error" not in items[files[1]["uri"]], "a summarised file is left as it is"


def test_a_retry_never_takes_back_a_file_another_run_took_for_its_summary(table, s3, bedrock):
    """run-1's summary is throttled past its retries (summary_error recorded, its task will retry);
    meanwhile run-2 takes the file for its summary. run-1's retry must leave it to run-2:
    one summary per file version."""
    from audio_pipeline.claims import take_for_summary

    client, stub = bedrock
    files = transcribed(table, s3, [b'{"text": "a call"}'])
    stub.add_client_error("converse", "ThrottlingException", "Too many requests", 429)  # past botocore's retries
    assert BatchSummarizer(table, s3, summarizer(client), run_id="run-1").run(files).retryable

    read = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert take_for_summary(table, [(files[0], read)], "run-2", 600) == [files[0]["uri"]]

    retry = BatchSummarizer(table, s3, summarizer(client), run_id="run-1").run(files)

    stub.assert_no_pending_responses()
    assert retry.summarized == 0 and retry.errors == [] and retry.not_completed == 1
    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["run_id"] == "run-2" and item["status"] == Status.COMPLETED and "summary_error" not in item
    listed = s3.list_objects_v2(Bucket=OUT, Prefix="transcripts/")["Contents"]
    assert not [o for o in listed if o["Key"].endswith(".summary.json")], "run-1 wrote no summary"


def test_a_run_takes_its_files_before_summarising_so_no_other_run_can(table, s3, bedrock):
    """Summary work is leased: while run-1's retry summarises a file, run-2, which read it before
    (summary_error and all), loses the conditional write and never summarises it too."""
    from audio_pipeline.claims import take_for_summary

    client, stub = bedrock
    files = transcribed(table, s3, [b'{"text": "a call"}'])
    assert record_no_summary(table, files, "run-1", "ThrottlingException after 6 attempts") == 1
    read_by_run_2 = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    taken_by_run_2 = []

    def run_2_claims_meanwhile(**_):
        taken_by_run_2.extend(take_for_summary(table, [(files[0], read_by_run_2)], "run-2", 600))

    client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", run_2_claims_meanwhile)
    stub.add_response("converse", converse_answer("A call."))

    assert BatchSummarizer(table, s3, summarizer(client), run_id="run-1").run(files).summarized == 1
    assert taken_by_run_2 == []
    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["status"] == Status.SUMMARIZED and item["run_id"] == "run-1"
