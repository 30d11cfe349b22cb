from __future__ import annotations

import http.server
import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import WriteResult, inference_id_for
from audio_pipeline.submission import (
    BatchSubmitter,
    EndpointNotFoundError,
    InvocationSettings,
    check_endpoint,
    content_type_for,
)

SETTINGS = InvocationSettings("audio-transcription-async", 3600, 600, 60)


class FakeRuntime:
    """Stands in for sagemaker-runtime, whose moto version is a static fake (see aws-contracts.md)."""

    def __init__(self, fail_for=()):
        self.calls = []
        self.fail_for = set(fail_for)

    def invoke_endpoint_async(self, **kwargs):
        self.calls.append(kwargs)
        if kwargs["InputLocation"] in self.fail_for:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "bad input"}}, "InvokeEndpointAsync")
        iid = kwargs["InferenceId"]
        return {
            "InferenceId": iid,
            "OutputLocation": f"s3://out/transcripts/{iid}.out",
            "FailureLocation": f"s3://out/failures/{iid}-error.out",
        }


def claim(table, n, run_id="run-1"):
    files = [
        {
            "uri": f"s3://audio-in/{i}.wav",
            "etag": "e",
            "size": 1,
            "inference_id": inference_id_for(f"s3://audio-in/{i}.wav", "e", run_id),
        }
        for i in range(n)
    ]
    table.claim(files, run_id)
    return files


def test_submits_each_file_and_records_where_results_go(table):
    files = claim(table, 30)
    runtime = FakeRuntime()
    report = BatchSubmitter(table, runtime, SETTINGS, flush_every=7, clock=lambda: 1000.0).submit(files)
    assert report.submitted == 30 and not report.failed
    assert [c["InferenceId"] for c in runtime.calls] == [f["inference_id"] for f in files]
    call = runtime.calls[0]
    assert call["EndpointName"] == "audio-transcription-async" and call["ContentType"] == "audio/wav"
    assert call["RequestTTLSeconds"] == 3600 and call["InvocationTimeoutSeconds"] == 600
    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["status"] == "submitted"
    assert item["output_location"].endswith(".out") and item["failure_location"].endswith("-error.out")
    assert int(item["deadline"]) == 1000 + 3600 + 600 + 60


def test_a_failed_submission_fails_that_file_only(table):
    files = claim(table, 3)
    runtime = FakeRuntime(fail_for={files[1]["uri"]})
    report = BatchSubmitter(table, runtime, SETTINGS).submit(files)
    assert report.submitted == 2 and [u for u, _ in report.failed] == [files[1]["uri"]]
    items = table.get_many(f["uri"] for f in files)
    assert items[files[1]["uri"]]["status"] == "failed"
    assert "ValidationError" in items[files[1]["uri"]]["failure_reason"]
    assert items[files[2]["uri"]]["status"] == "submitted"


def test_rerun_never_submits_twice(table):
    files = claim(table, 5)
    runtime = FakeRuntime()
    BatchSubmitter(table, runtime, SETTINGS).submit(files[:3])
    report = BatchSubmitter(table, runtime, SETTINGS).submit(files)
    assert report.already_done == 3 and report.submitted == 2
    assert len(runtime.calls) == 5


class Killed(BaseException):
    """What Airflow's SIGTERM handler raises into the task."""


class DyingRuntime(FakeRuntime):
    """Killed while sending its seventh invocation."""

    def invoke_endpoint_async(self, **kwargs):
        if len(self.calls) == 6:
            raise Killed()
        return super().invoke_endpoint_async(**kwargs)


def test_kill_midway_still_records_what_was_invoked(table):
    files = claim(table, 10)
    runtime = DyingRuntime()
    with pytest.raises(Killed):
        BatchSubmitter(table, runtime, SETTINGS, flush_every=25).submit(files)
    statuses = [table.get_many([f["uri"]])[f["uri"]]["status"] for f in files]
    assert statuses == ["submitted"] * 6 + ["processing"] * 4
    retry = FakeRuntime()
    report = BatchSubmitter(table, retry, SETTINGS).submit(files)
    assert [c["InputLocation"] for c in retry.calls] == [f["uri"] for f in files[7:]]
    # the request being sent when the task was killed may have reached the endpoint: never sent twice
    assert [uri for uri, _ in report.unclear] == [files[6]["uri"]]
    assert table.get_many([files[6]["uri"]])[files[6]["uri"]]["status"] == "submitted"


def test_a_hard_kill_midway_never_invokes_a_file_twice(table, monkeypatch):
    """SIGKILL: nothing runs on the way out, so the statuses of the files invoked since the last
    write are lost; the retry must not invoke them again (each would be transcribed twice)."""
    files = claim(table, 10)
    runtime = DyingRuntime()
    writes = table.apply

    def dead_after_kill(transitions):
        transitions = list(transitions)
        if len(runtime.calls) == 6 and transitions and transitions[0].to != "processing":
            return WriteResult()  # the process is gone: its last writes never happen
        return writes(transitions)

    monkeypatch.setattr(table, "apply", dead_after_kill)
    with pytest.raises(Killed):
        BatchSubmitter(table, runtime, SETTINGS, flush_every=4, clock=lambda: 1000.0).submit(files)
    monkeypatch.setattr(table, "apply", writes)

    retry = FakeRuntime()
    report = BatchSubmitter(table, retry, SETTINGS, flush_every=4, clock=lambda: 2000.0).submit(files)

    invoked = [c["InputLocation"] for c in runtime.calls + retry.calls]
    assert len(invoked) == len(set(invoked)), "a file was sent to the endpoint twice"
    assert [c["InputLocation"] for c in retry.calls] == [f["uri"] for f in files[8:]]
    assert [uri for uri, _ in report.unclear] == [f["uri"] for f in files[4:8]]
    items = table.get_many(f["uri"] for f in files)
    for f in files[4:8]:  # sent (if at all) before the retry: awaited a whole window from then
        item = items[f["uri"]]
        assert item["status"] == "submitted" and "may have accepted it" in item["submit_error"]
        assert item["deadline"] == 2000 + SETTINGS.result_window_seconds


def test_fast_notification_is_not_undone(table):
    files = claim(table, 1)
    table.apply([Transition(files[0]["uri"], files[0]["inference_id"], Status.COMPLETED)])
    # the file is already settled, so it is not submitted again
    runtime = FakeRuntime()
    report = BatchSubmitter(table, runtime, SETTINGS).submit(files)
    assert report.already_done == 1 and runtime.calls == []


def test_request_is_valid_for_the_real_sagemaker_runtime_api(table):
    """Run the submitter on a real boto3 client: botocore validates names, types and ranges."""
    from botocore.stub import Stubber

    files = claim(table, 1)
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stub = Stubber(client)
    expected = {
        "EndpointName": SETTINGS.endpoint_name,
        "InputLocation": files[0]["uri"],
        "ContentType": "audio/wav",
        "InferenceId": files[0]["inference_id"],
        "RequestTTLSeconds": SETTINGS.request_ttl_seconds,
        "InvocationTimeoutSeconds": SETTINGS.invocation_timeout_seconds,
    }
    stub.add_response(
        "invoke_endpoint_async",
        {
            "InferenceId": files[0]["inference_id"],
            "OutputLocation": "s3://o/i.out",
            "FailureLocation": "s3://o/i-error.out",
        },
        expected,
    )
    with stub:
        report = BatchSubmitter(table, client, SETTINGS).submit(files)
    stub.assert_no_pending_responses()
    assert report.submitted == 1


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://b/a.WAV", "audio/wav"),
        ("s3://b/a.mp3", "audio/mpeg"),
        ("s3://b/a.opus", "audio/ogg"),
        ("s3://b/a.xyz", "application/octet-stream"),
    ],
)
def test_content_types(uri, expected):
    assert content_type_for(uri) == expected


def test_check_endpoint_tells_a_missing_endpoint_from_a_passing_problem(aws, monkeypatch):
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    with pytest.raises(EndpointNotFoundError, match="endpoint .nowhere. does not exist.*endpoint_name in the Airflow"):
        check_endpoint(sagemaker, "nowhere")

    def throttled(**kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeEndpoint")

    monkeypatch.setattr(sagemaker, "describe_endpoint", throttled)
    with pytest.raises(ClientError, match="ThrottlingException"):  # not an unusable endpoint: worth a retry
        check_endpoint(sagemaker, "nowhere")
    monkeypatch.setattr(sagemaker, "describe_endpoint", lambda **kw: {"EndpointStatus": "Creating"})
    with pytest.raises(RuntimeError, match="is Creating, not InService") as raised:
        check_endpoint(sagemaker, "soon")
    assert not isinstance(raised.value, EndpointNotFoundError)
    monkeypatch.setattr(sagemaker, "describe_endpoint", lambda **kw: {"EndpointStatus": "InService"})
    check_endpoint(sagemaker, "ready")


class SilentEndpoint(http.server.BaseHTTPRequestHandler):
    """Reads each request, then answers nothing: SageMaker may have accepted it, the client cannot know."""

    received: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(self.path)
        time.sleep(2)

    def log_message(self, *args):
        pass


@pytest.fixture
def silent_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SilentEndpoint)
    SilentEndpoint.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", SilentEndpoint.received
    server.shutdown()
    server.server_close()


def test_an_unclear_invoke_error_is_awaited_not_sent_again(table, silent_endpoint, monkeypatch):
    """A read timeout after the request went out: recorded submitted with its deadline, never re-invoked
    (not by botocore's retries either), so a result SageMaker sends later is kept and nothing runs twice."""
    from botocore.config import Config

    from audio_pipeline.hooks.retries import DEFAULT_RETRIES

    url, received = silent_endpoint
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        config=Config(retries=dict(DEFAULT_RETRIES), read_timeout=0.3, connect_timeout=1),  # botocore edits it
    )
    files = claim(table, 1)

    report = BatchSubmitter(table, client, SETTINGS, clock=lambda: 1000.0).submit(files)

    assert len(received) == 1, "the invocation was sent more than once"
    assert report.failed == [] and [u for u, _ in report.unclear] == [files[0]["uri"]]
    item = table.get_many([files[0]["uri"]])[files[0]["uri"]]
    assert item["status"] == "submitted" and "ReadTimeoutError" in item["submit_error"]
    assert item["deadline"] == 1000 + SETTINGS.result_window_seconds
    assert BatchSubmitter(table, client, SETTINGS).submit(files).already_done == 1
    assert len(received) == 1


def test_a_refused_connection_is_a_clear_failure(table):
    """Nothing listens: nothing can have been accepted, so the file fails with the reason."""
    from botocore.config import Config

    from tests.moto_server import free_port

    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    files = claim(table, 1)
    report = BatchSubmitter(table, client, SETTINGS).submit(files)
    assert report.unclear == [] and [u for u, _ in report.failed] == [files[0]["uri"]]
    assert table.get_many([files[0]["uri"]])[files[0]["uri"]]["status"] == "failed"
