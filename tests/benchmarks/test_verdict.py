"""The fault runner's verdict per file version, from the witness journals and S3 (moto in-process)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from audio_pipeline.config import PipelineConfig
from audio_pipeline.ledger import table_definition
from benchmarks.verdict import Judge, Tally
from local.witness import BEDROCK_RUNTIME, MODEL_SERVER, SAGEMAKER_ASYNC, WitnessJournal, text_key

IN, OUT = "audio-in", "audio-out"


class World:
    """A bucket of recordings, the status table, and the three journals, written by hand."""

    def __init__(self, tmp_path):
        self.session = boto3.session.Session(region_name="us-east-1")
        self.s3 = self.session.client("s3")
        for bucket in (IN, OUT):
            self.s3.create_bucket(Bucket=bucket)
        self.session.client("dynamodb").create_table(TableName=PipelineConfig().status_table, **table_definition())
        self.table = self.session.resource("dynamodb").Table(PipelineConfig().status_table)
        self.dir = tmp_path
        names = (SAGEMAKER_ASYNC, MODEL_SERVER, BEDROCK_RUNTIME)
        self.journals = {name: WitnessJournal(tmp_path / name) for name in names}

    def recording(self, name: str) -> tuple[str, str]:
        etag = self.s3.put_object(Bucket=IN, Key=name, Body=name.encode())["ETag"]
        return f"s3://{IN}/{name}", etag

    def transcribed(
        self,
        uri: str,
        etag: str,
        request: str,
        *,
        calls: int = 1,
        stored: bool = True,
        text: str | None = None,
        answered: bool = True,
    ) -> str:
        """An accepted request for ``uri`` (``answered`` with its 202 unless a kill cut it), ``calls``
        model calls for it, and (if ``stored``) its .out object."""
        output = f"s3://{OUT}/{request}.out"
        self.journals[SAGEMAKER_ASYNC].record(
            "accepted", request_id=request, inference_id=f"id-{request}", input_location=uri, output_location=output
        )
        if answered:
            self.journals[SAGEMAKER_ASYNC].record("answered", request_id=request)
        for n in range(calls):
            self.journals[MODEL_SERVER].record(
                "call",
                call_id=f"{request}-{n}",
                input_location=uri,
                input_etag=etag,
                inference_id=f"id-{request}",
                request_id=request,
            )
        text = text or f"transcript of {uri} by {request}"
        if stored:
            self.s3.put_object(Bucket=OUT, Key=f"{request}.out", Body=json.dumps({"text": text}))
        return text

    def summarised(self, request: str, text: str, *, answered: int = 1) -> None:
        self.s3.put_object(Bucket=OUT, Key=f"{request}.summary.json", Body=b"{}")
        for _ in range(answered):
            self.journals[BEDROCK_RUNTIME].record("request", text_key=text_key(text), outcome="success")

    def status(self, uri: str, etag: str, status: str, **fields: str) -> None:
        self.table.put_item(Item={"uri": uri, "etag": etag, "status": status, **fields})

    def judge(self, *uris: str):
        return {v.uri: v for v in Judge(self.session, self.dir).judge(list(uris))}


@pytest.fixture
def world(tmp_path, monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield World(tmp_path)


def test_a_summarized_status_needs_both_objects_in_s3(world):
    done, etag = world.recording("done.wav")
    world.summarised("r1", world.transcribed(done, etag, "r1"))
    world.status(done, etag, "summarized")
    claimed, claimed_etag = world.recording("claimed.wav")  # says summarized, nothing in S3
    world.status(claimed, claimed_etag, "summarized")
    no_summary, no_summary_etag = world.recording("no-summary.wav")
    world.transcribed(no_summary, no_summary_etag, "r3")
    world.status(no_summary, no_summary_etag, "summarized")
    verdicts = world.judge(done, claimed, no_summary)
    assert {u: v.outcome for u, v in verdicts.items()} == {done: "summarized", claimed: "lost", no_summary: "lost"}
    assert (verdicts[done].model_calls, verdicts[done].summaries, verdicts[done].twice) == (1, 1, False)


def test_failed_needs_a_reason_and_a_summary_error_needs_the_transcript(world):
    failed, failed_etag = world.recording("failed.wav")
    world.status(failed, failed_etag, "failed", failure_reason="model said no")
    silent, silent_etag = world.recording("silent.wav")
    world.status(silent, silent_etag, "failed")
    kept, kept_etag = world.recording("kept.wav")
    world.transcribed(kept, kept_etag, "r1")
    world.status(kept, kept_etag, "completed", summary_error="Bedrock rejected it")
    gone, gone_etag = world.recording("gone.wav")
    world.transcribed(gone, gone_etag, "r2", stored=False)
    world.status(gone, gone_etag, "completed", summary_error="Bedrock rejected it")
    in_flight, in_flight_etag = world.recording("in-flight.wav")
    world.status(in_flight, in_flight_etag, "submitted")
    verdicts = world.judge(failed, silent, kept, gone, in_flight)
    outcomes = {u: v.outcome for u, v in verdicts.items()}
    assert outcomes == {failed: "failed", silent: "lost", kept: "summary_error", gone: "lost", in_flight: "lost"}
    assert Tally.of(list(verdicts.values())).reasons == {failed: "model said no"}  # every failure's reason


def test_a_status_about_another_version_of_the_file_says_nothing_about_this_one(world):
    uri, old_etag = world.recording("a.wav")
    world.summarised("r1", world.transcribed(uri, old_etag, "r1"))
    world.status(uri, old_etag, "summarized")
    world.s3.put_object(Bucket=IN, Key="a.wav", Body=b"new audio")
    (verdict,) = world.judge(uri).values()
    assert verdict.outcome == "lost" and verdict.model_calls == 0  # the new version was never transcribed


def test_twice_is_two_requests_for_one_version_or_two_answered_summaries_not_a_rerun(world):
    twice, twice_etag = world.recording("twice.wav")
    world.transcribed(twice, twice_etag, "r1")
    world.summarised("r2", world.transcribed(twice, twice_etag, "r2"))
    world.status(twice, twice_etag, "summarized")
    summarised_twice, st_etag = world.recording("summarised-twice.wav")
    world.summarised("r3", world.transcribed(summarised_twice, st_etag, "r3"), answered=2)
    world.status(summarised_twice, st_etag, "summarized")
    rerun, rerun_etag = world.recording("rerun.wav")  # one accepted request the endpoint ran again after a restart
    world.summarised("r4", world.transcribed(rerun, rerun_etag, "r4", calls=2))
    world.status(rerun, rerun_etag, "summarized")
    verdicts = world.judge(twice, summarised_twice, rerun)
    assert {u: v.twice for u, v in verdicts.items()} == {twice: True, summarised_twice: True, rerun: False}
    tally = Tally.of(list(verdicts.values()))
    assert (tally.twice, tally.model_calls, tally.reruns, tally.lost) == (2, 5, 1, 0)


def test_one_clip_under_two_keys_is_summarised_once_per_key_not_twice(world):
    first, first_etag = world.recording("calls/a.wav")
    second, second_etag = world.recording("later/a.wav")
    for uri, etag, request in ((first, first_etag, "r1"), (second, second_etag, "r2")):
        world.summarised(request, world.transcribed(uri, etag, request, text="the same words"))
        world.status(uri, etag, "summarized")
    verdicts = world.judge(first)  # the other key need not be judged to be counted
    assert (verdicts[first].summaries, verdicts[first].twice) == (1, False)
    third, third_etag = world.recording("again/a.wav")
    world.summarised("r3", world.transcribed(third, third_etag, "r3", text="the same words"), answered=2)
    world.status(third, third_etag, "summarized")
    verdicts = world.judge(first, second, third)  # four answers for three keys: one is extra
    assert {v.twice for v in verdicts.values()} == {True}


def test_a_skip_counts_only_when_recorded_for_this_version_with_a_reason(world):
    empty, empty_etag = world.recording("empty.wav")
    world.status(empty, empty_etag, "skipped", skip_reason="zero bytes")
    old, old_etag = world.recording("old.wav")
    world.status(old, old_etag, "skipped", skip_reason="zero bytes")
    world.s3.put_object(Bucket=IN, Key="old.wav", Body=b"now audio")
    sent, sent_etag = world.recording("sent.wav")
    world.status(sent, sent_etag, "failed", failure_reason="model said no")
    missing, _ = world.recording("missing.wav")
    judge = Judge(world.session, world.dir)
    assert judge.skip_reasons([empty, old, sent, missing]) == {
        empty: "zero bytes",
        old: None,  # about another version
        sent: None,
        missing: None,
    }
    (verdict,) = judge.judge([empty])
    assert verdict.outcome == "lost", "a skipped file among the files expected processed is not one of them"


def test_a_failure_whose_submission_the_endpoint_never_answered_is_told_apart(world):
    unsent, unsent_etag = world.recording("unsent.wav")  # its submission was cut: nothing was accepted
    world.status(unsent, unsent_etag, "failed", failure_reason="no result within the result window")
    cut, cut_etag = world.recording("cut.wav")  # journaled and run, but killed before its 202 went out
    world.transcribed(cut, cut_etag, "r0", answered=False)
    world.status(cut, cut_etag, "failed", failure_reason="no result within the result window")
    refused, refused_etag = world.recording("refused.wav")  # accepted, and the model refused it
    world.transcribed(refused, refused_etag, "r1", stored=False)
    world.status(refused, refused_etag, "failed", failure_reason="model said no")
    tally = Tally.of(list(world.judge(unsent, cut, refused).values()))
    assert (tally.outcomes["failed"], tally.failed_unanswered) == (3, 2)
    assert tally.failures == [
        f"{unsent} (0 accepted, 0 model calls): no result within the result window",
        f"{cut} (1 accepted, 1 model calls): no result within the result window",
        f"{refused} (1 accepted, 1 model calls): model said no",
    ]
