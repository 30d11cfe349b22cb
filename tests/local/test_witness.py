"""The witness journals: durable across a SIGKILL and a restart, and what each process records."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

from local.sagemaker_async.requests import Journal
from local.sagemaker_async.service import AsyncInferenceService
from local.stack.services import REPO
from local.witness import (
    BEDROCK_RUNTIME,
    MODEL_SERVER,
    SAGEMAKER_ASYNC,
    ModelWitness,
    Witnesses,
    WitnessJournal,
    copied_from,
    read_journal,
    text_key,
)
from tests.moto_server import free_port

from .conftest import REGION, drain, running_model_server, url_of
from .test_sagemaker_async import running_emulator

KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from local.witness import WitnessJournal
journal = WitnessJournal(Path(sys.argv[1]))
for i in range(3):
    journal.record("call", n=i)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_records_survive_a_sigkill_and_a_restart_appends(tmp_path):
    path = tmp_path / "w" / "journal.jsonl"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], cwd=REPO, check=False)
    assert killed.returncode == -9
    with path.open("ab") as torn:
        torn.write(b'{"event": "call", "n": ')  # a line the kill cut short
    restarted = WitnessJournal(path)
    restarted.record("call", n=3)
    restarted.close()
    assert [e["n"] for e in read_journal(path)] == [0, 1, 2, 3]


def _bedrock(port, journal):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.bedrock_runtime",
            "--port",
            str(port),
            "--witness-journal",
            str(journal),
            "--fault-fail-marker",
            "REJECT",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _summarise(client, transcript):
    return client.converse(
        modelId="us.anthropic.claude-haiku-4-5-20251001-v1:0",
        messages=[{"role": "user", "content": [{"text": f"Summarise.\n\n<transcript>\n{transcript}\n</transcript>"}]}],
    )


def test_bedrock_emulator_journals_each_request_across_a_restart(tmp_path):
    journal, port = tmp_path / BEDROCK_RUNTIME, free_port()
    client = boto3.client(
        "bedrock-runtime",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}),
    )
    first = _bedrock(port, journal)
    try:
        _wait(f"http://127.0.0.1:{port}/_emulator/health")
        _summarise(client, "The budget was approved.")
    finally:
        first.kill()
        first.wait()
    second = _bedrock(port, journal)
    try:
        _wait(f"http://127.0.0.1:{port}/_emulator/health")
        _summarise(client, "The budget was approved.")
        with pytest.raises(client.exceptions.ValidationException):
            _summarise(client, "REJECT this one.")
    finally:
        second.kill()
        second.wait()
    witnesses = Witnesses.load(tmp_path)
    assert [(r["text_key"], r["outcome"]) for r in witnesses.bedrock_requests] == [
        (text_key("The budget was approved."), "success"),
        (text_key("The budget was approved."), "success"),
        (text_key("REJECT this one."), "ValidationException"),
    ]
    assert witnesses.summaries_succeeded() == {text_key("The budget was approved."): 2}


def test_emulator_and_model_server_journal_each_file_version(async_endpoint, tmp_path):
    """Accepted requests with their result locations; model calls with the S3 version they read."""
    s3 = async_endpoint["s3"]
    with running_model_server(0.01) as model:
        model.witness = ModelWitness(WitnessJournal(tmp_path / MODEL_SERVER))
        journal = WitnessJournal(tmp_path / SAGEMAKER_ASYNC)
        with running_emulator(url_of(model), tmp_path, witness=journal) as runtime:
            uri = "s3://audio-in/日本 a.wav"
            etags = []
            for n, body in enumerate((b"first version", b"second version")):
                etags.append(s3.put_object(Bucket="audio-in", Key="日本 a.wav", Body=body)["ETag"])
                runtime.invoke_endpoint_async(EndpointName="asr", InputLocation=uri, InferenceId=f"v{n}")
                drain(async_endpoint["sqs"], async_endpoint["queue_url"], 1)
    witnesses = Witnesses.load(tmp_path)
    assert [(a["input_location"], a["inference_id"]) for a in witnesses.accepted] == [(uri, "v0"), (uri, "v1")]
    assert witnesses.answered == {a["request_id"] for a in witnesses.accepted}, "each 202 went out"
    for n, etag in enumerate(etags):
        (call,) = witnesses.calls_of(uri, etag)
        assert call["inference_id"] == f"v{n}" and call["bytes"] == len(("first version", "second version")[n])
        assert call["request_id"] == witnesses.accepted[n]["request_id"]
        (location,) = witnesses.output_locations({f"v{n}"})
        assert s3.get_object(Bucket="audio-out", Key=location.split("/", 3)[3])["ContentLength"] > 0
    outcomes = [e["status"] for e in read_journal(tmp_path / MODEL_SERVER) if e["event"] == "outcome"]
    assert outcomes == [200, 200]


def _service(tmp_path, journal):
    return AsyncInferenceService(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        sns=boto3.client("sns"),
        region=REGION,
        model_url="http://unused",
        journal=journal,
        witness=WitnessJournal(tmp_path / SAGEMAKER_ASYNC),
    )


def test_a_request_that_died_before_its_journal_entry_was_never_accepted(async_endpoint, tmp_path):
    """Killed before the endpoint journaled it, a request gets no 202 and never runs: no witness may
    say the endpoint accepted it (the fault runner then knows why its file failed at its deadline)."""

    class Killed(Exception):
        pass

    class DyingJournal(Journal):
        def add(self, request):
            raise Killed

    with pytest.raises(Killed):
        _service(tmp_path, DyingJournal(tmp_path / "journal")).accept(
            "asr", {"x-amzn-sagemaker-inputlocation": "s3://audio-in/a.wav"}
        )
    assert Witnesses.load(tmp_path).accepted == []


def test_a_journaled_request_is_witnessed_before_it_can_run_and_once(async_endpoint, tmp_path):
    """Killed between its journal entry and its witness record, a request is witnessed when a restart
    resumes it, before it runs; one witnessed and resumed counts once."""
    from local.sagemaker_async.requests import build_request

    journal = Journal(tmp_path / "journal")
    first = _service(tmp_path, journal)
    first._enqueue = lambda endpoint, request: None  # it dies before a worker takes the request
    witnessed = first.accept("asr", {"x-amzn-sagemaker-inputlocation": "s3://audio-in/a.wav"})
    endpoint = _service(tmp_path, journal).endpoints.get("asr")
    unwitnessed = build_request(endpoint, {"x-amzn-sagemaker-inputlocation": "s3://audio-in/b.wav"}, time.time())
    journal.add(unwitnessed)  # then the process died

    restarted = _service(tmp_path, journal)
    enqueued = []
    restarted._enqueue = lambda endpoint, request: enqueued.append(
        (request.request_id, any(a["request_id"] == request.request_id for a in Witnesses.load(tmp_path).accepted))
    )
    assert restarted.resume() == 2
    assert sorted(enqueued) == sorted([(witnessed.request_id, True), (unwitnessed.request_id, True)])
    accepted = Witnesses.load(tmp_path).accepted
    assert sorted(a["request_id"] for a in accepted) == sorted([witnessed.request_id, unwitnessed.request_id])
    assert Witnesses.load(tmp_path).answered == set(), "no 202 went out: their callers never learned the locations"


def test_copied_from_maps_a_pinned_copy_back_to_its_source_and_leaves_other_locations_alone():
    iid = "a" * 40
    pinned = f"s3://audio-transcription-output/inputs/{iid}/audio-in/calls/day 1/a.wav"
    assert copied_from(pinned, iid) == "s3://audio-in/calls/day 1/a.wav"
    assert copied_from("s3://audio-in/calls/a.wav", iid) == "s3://audio-in/calls/a.wav", "not a copy: as it is"
    assert copied_from(pinned, "b" * 40) == pinned, "a copy of another claim's inference id is not this one's"
    assert copied_from(f"s3://out/inputs/{iid}/", iid) == f"s3://out/inputs/{iid}/", "no source named"
    assert copied_from(pinned, None) == pinned and copied_from(None, iid) is None and copied_from("", iid) == ""


def test_load_judges_accepted_requests_and_model_calls_by_the_file_copied_and_keeps_what_was_sent(tmp_path):
    iid, other = "a" * 40, "b" * 40
    pinned = f"s3://audio-transcription-output/inputs/{iid}/audio-in/calls/a.wav"
    plain = "s3://audio-in/calls/b.wav"
    endpoint = WitnessJournal(tmp_path / SAGEMAKER_ASYNC)
    endpoint.record("accepted", request_id="r1", inference_id=iid, input_location=pinned)
    endpoint.record("accepted", request_id="r1", inference_id=iid, input_location=pinned)  # a resume repeats it
    endpoint.record("accepted", request_id="r2", inference_id=other, input_location=plain)
    endpoint.close()
    model = WitnessJournal(tmp_path / MODEL_SERVER)
    model.record("call", inference_id=iid, input_location=pinned)
    model.record("call", inference_id=other, input_location=plain)
    model.close()

    witnesses = Witnesses.load(tmp_path)

    assert [(a["request_id"], a["input_location"], a["sent_location"]) for a in witnesses.accepted] == [
        ("r1", "s3://audio-in/calls/a.wav", pinned),
        ("r2", plain, plain),
    ]
    assert [(c["input_location"], c["sent_location"]) for c in witnesses.model_calls] == [
        ("s3://audio-in/calls/a.wav", pinned),
        (plain, plain),
    ]
