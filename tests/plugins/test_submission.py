from __future__ import annotations

import http.server
import threading
import time
from collections import Counter

import boto3
import pytest
from botocore.exceptions import ClientError

from audio_pipeline.config import PipelineConfig, StackNames
from audio_pipeline.hooks.sagemaker_async import SageMakerAsyncInferenceHook
from audio_pipeline.ledger import Ledger, Result, Status, WriteResult, inference_id_for
from audio_pipeline.pinning import pinned_location, source_of
from audio_pipeline.s3_uris import split_s3_uri
from audio_pipeline.submission import (
    BatchSubmitter,
    EndpointMismatchError,
    EndpointNotFoundError,
    InvocationSettings,
    check_endpoint,
    content_type_for,
)

SETTINGS = InvocationSettings(
    "audio-transcription-async", 3600, 600, 3600 + 600 + 60, inputs_path="s3://audio-transcription-output/inputs/"
)
WINDOW = SETTINGS.result_window_seconds
CONFIG, NAMES = PipelineConfig(), StackNames()


class FakeRuntime:
    """Stands in for sagemaker-runtime, whose moto version is a static fake (see aws-contracts.md).

    ``during``: callables run (once each, in order) at the start of the next invocation, to
    interleave other work with a request in flight."""

    def __init__(self, fail_for=(), throttle_for=()):
        self.calls = []
        self.fail_for = set(fail_for)
        self.throttle_for = set(throttle_for)
        self.during = []

    def invoke_endpoint_async(self, **kwargs):
        while self.during:
            self.during.pop(0)()
        self.calls.append(kwargs)
        if kwargs["InputLocation"] in self.fail_for or self.source(kwargs) in self.fail_for:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "bad input"}}, "InvokeEndpointAsync")
        if self.source(kwargs) in self.throttle_for:  # as botocore raises it once its retries are spent
            error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "InvokeEndpointAsync")
        iid = kwargs["InferenceId"]
        return {
            "InferenceId": iid,
            "OutputLocation": f"s3://out/transcripts/{iid}.out",
            "FailureLocation": f"s3://out/failures/{iid}-error.out",
        }

    @staticmethod
    def source(call) -> str | None:
        """The file a call's InputLocation (a pinned copy: :mod:`audio_pipeline.pinning`) was copied from."""
        return source_of(call["InputLocation"], call["InferenceId"])

    def invoked(self) -> Counter[str]:
        """How often each file was sent to the endpoint (as a pinned copy of it: anything else fails)."""
        sources = [self.source(c) for c in self.calls]
        assert None not in sources, f"sent something other than a pinned copy: {self.calls}"
        return Counter(sources)


def endpoint(client) -> SageMakerAsyncInferenceHook:
    """The submitter's hook over ``client``: a fake, or a boto3 client the test built."""
    hook = SageMakerAsyncInferenceHook(aws_conn_id=None)
    hook.conn = client
    return hook


def pinned(f) -> str:
    """Where the submitter copies the claimed version of ``f`` to send it."""
    return pinned_location(SETTINGS.inputs_path, f["inference_id"], f["uri"])


def audio_bytes(uri: str) -> bytes:
    return f"audio of {uri}".encode()


def assert_sent_the_claimed_versions(calls, files) -> None:
    """Each call's InputLocation is the pinned copy of its claimed file, holding the claimed version's bytes."""
    s3 = boto3.client("s3", region_name="us-east-1")
    by_id = {f["inference_id"]: f for f in files}
    assert calls
    for call in calls:
        f = by_id[call["InferenceId"]]
        assert call["InputLocation"] == pinned(f)
        bucket, key = split_s3_uri(call["InputLocation"])
        copy = s3.get_object(Bucket=bucket, Key=key)
        assert copy["Body"].read() == audio_bytes(f["uri"]) and copy["ETag"].strip('"') == f["etag"]


def s3_client():
    return boto3.client("s3", region_name="us-east-1")


def clocked(ledger, now):
    """The same table, on a clock the test moves (``now[0]``)."""
    return Ledger(ledger.store.client, ledger.table_name, backoff_base=0, clock=lambda: now[0])


@pytest.fixture(autouse=True)
def _audio_buckets(request):
    """The submitter copies what it sends: tests on the ledger get the audio and output buckets."""
    if "ledger" in request.fixturenames:
        request.getfixturevalue("s3")


def claimed_files(n, run_id="run-1"):
    """``n`` audio objects put in (moto) S3, as claimed: their real ETags and sizes."""
    s3 = boto3.client("s3", region_name="us-east-1")
    files = []
    for i in range(n):
        uri = f"s3://audio-in/{i}.wav"
        s3.put_object(Bucket="audio-in", Key=f"{i}.wav", Body=audio_bytes(uri))
        head = s3.head_object(Bucket="audio-in", Key=f"{i}.wav")
        etag = head["ETag"].strip('"')
        iid = inference_id_for(uri, etag, run_id)
        files.append({"uri": uri, "etag": etag, "size": head["ContentLength"], "inference_id": iid})
    return files


def claim(ledger, n, run_id="run-1", lease_seconds=WINDOW):
    files = claimed_files(n, run_id)
    assert ledger.claim(files, run_id, lease_seconds=lease_seconds).applied == [f["uri"] for f in files]
    return files


def test_submits_each_file_and_records_where_results_go(ledger):
    now = [1000.0]
    at_1000 = clocked(ledger, now)
    files = claim(at_1000, 30)
    runtime = FakeRuntime()
    report = BatchSubmitter(at_1000, endpoint(runtime), s3_client(), SETTINGS, "run-1", flush_every=7).submit(files)
    assert report.submitted == 30 and not report.failed
    assert [c["InferenceId"] for c in runtime.calls] == [f["inference_id"] for f in files]
    call = runtime.calls[0]
    assert call["EndpointName"] == "audio-transcription-async" and call["ContentType"] == "audio/wav"
    assert call["RequestTTLSeconds"] == 3600 and call["InvocationTimeoutSeconds"] == 600
    assert_sent_the_claimed_versions(runtime.calls, files)
    record = ledger.get([files[0]["uri"]])[files[0]["uri"]]
    assert record.status == Status.SUBMITTED and record.invoking_since is None
    assert record.input_location == pinned(files[0])
    assert record.output_location.endswith(".out") and record.failure_location.endswith("-error.out")
    assert record.deadline == 1000 + 3600 + 600 + 60


def test_a_failed_submission_fails_that_file_only(ledger):
    files = claim(ledger, 3)
    runtime = FakeRuntime(fail_for={files[1]["uri"]})
    report = BatchSubmitter(ledger, endpoint(runtime), s3_client(), SETTINGS, "run-1").submit(files)
    assert report.submitted == 2 and [u for u, _ in report.failed] == [files[1]["uri"]]
    records = ledger.get(f["uri"] for f in files)
    assert records[files[1]["uri"]].status == Status.FAILED
    assert "ValidationError" in records[files[1]["uri"]].failure_reason
    assert records[files[2]["uri"]].status == Status.SUBMITTED


def test_rerun_never_submits_twice(ledger):
    files = claim(ledger, 5)
    runtime = FakeRuntime()
    BatchSubmitter(ledger, endpoint(runtime), s3_client(), SETTINGS, "run-1").submit(files[:3])
    report = BatchSubmitter(ledger, endpoint(runtime), s3_client(), SETTINGS, "run-1").submit(files)
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


def test_kill_midway_still_records_what_was_invoked(ledger):
    files = claim(ledger, 10)
    runtime = DyingRuntime()
    with pytest.raises(Killed):
        BatchSubmitter(ledger, endpoint(runtime), s3_client(), SETTINGS, "run-1", flush_every=25).submit(files)
    records = ledger.get(f["uri"] for f in files)
    statuses = [records[f["uri"]].status for f in files]
    assert statuses == ["submitted"] * 6 + ["processing"] * 4
    assert records[files[6]["uri"]].invoking_since is not None, "being sent when killed: it keeps its mark"
    assert [records[f["uri"]].invoking_since for f in files[7:]] == [None] * 3, "never sent: the mark goes"
    retry = FakeRuntime()
    report = BatchSubmitter(ledger, endpoint(retry), s3_client(), SETTINGS, "run-1").submit(files)
    assert [c["InputLocation"] for c in retry.calls] == [pinned(f) for f in files[7:]]
    assert_sent_the_claimed_versions(runtime.calls + retry.calls, files)
    # the request being sent when the task was killed may have reached the endpoint: never sent twice
    assert [uri for uri, _ in report.unclear] == [files[6]["uri"]]
    assert ledger.get([files[6]["uri"]])[files[6]["uri"]].status == Status.SUBMITTED


def test_a_hard_kill_midway_never_invokes_a_file_twice(ledger, monkeypatch):
    """SIGKILL: nothing runs on the way out, so the statuses of the files invoked since the last
    write are lost; the retry must not invoke them again (each would be transcribed twice)."""
    now = [1000.0]
    timed = clocked(ledger, now)
    files = claim(timed, 10)
    runtime = DyingRuntime()
    record_invocations = timed.record_invocations

    def dead_after_kill(outcomes, window_seconds):
        if len(runtime.calls) == 6:
            return WriteResult()  # the process is gone: its last writes never happen
        return record_invocations(outcomes, window_seconds)

    monkeypatch.setattr(timed, "record_invocations", dead_after_kill)
    with pytest.raises(Killed):
        BatchSubmitter(timed, endpoint(runtime), s3_client(), SETTINGS, "run-1", flush_every=4).submit(files)
    monkeypatch.setattr(timed, "record_invocations", record_invocations)

    now[0] = 2000.0
    retry = FakeRuntime()
    report = BatchSubmitter(timed, endpoint(retry), s3_client(), SETTINGS, "run-1", flush_every=4).submit(files)

    invoked = [c["InputLocation"] for c in runtime.calls + retry.calls]
    assert len(invoked) == len(set(invoked)), "a file was sent to the endpoint twice"
    assert [c["InputLocation"] for c in retry.calls] == [pinned(f) for f in files[8:]]
    assert_sent_the_claimed_versions(runtime.calls + retry.calls, files)
    assert [uri for uri, _ in report.unclear] == [f["uri"] for f in files[4:8]]
    records = ledger.get(f["uri"] for f in files)
    for f in files[4:8]:  # sent (if at all) before the retry: awaited a whole window from then
        record = records[f["uri"]]
        assert record.status == Status.SUBMITTED and "may have accepted it" in record.submit_error
        assert record.deadline == 2000 + WINDOW
        assert record.invoking_since == 1000, "the mark stays: its owner, if still sending, may say more"


def test_fast_notification_is_not_undone(ledger):
    files = claim(ledger, 1)
    f = files[0]
    result = Result(f["uri"], f["inference_id"], output_location=f"s3://out/transcripts/{f['inference_id']}.out")
    assert ledger.record_results([result]).applied == [f["uri"]]
    # the file is already settled, so it is not submitted again
    runtime = FakeRuntime()
    report = BatchSubmitter(ledger, endpoint(runtime), s3_client(), SETTINGS, "run-1").submit(files)
    assert report.already_done == 1 and runtime.calls == []
    assert ledger.get([f["uri"]])[f["uri"]].status == Status.COMPLETED


def test_two_submitters_over_one_batch_at_once_invoke_each_file_once(ledger, monkeypatch):
    """Two submitting tasks of one run (a retry beside a zombie attempt) read the batch before
    either marks it; the second marks while the first is sending. Only one mark holds a file:
    the other submitter sends nothing."""
    files = claim(ledger, 4)
    runtime = FakeRuntime()
    first = BatchSubmitter(ledger, endpoint(runtime), s3_client(), SETTINGS, "run-1")
    second_ledger = Ledger(ledger.store.client, ledger.table_name, backoff_base=0)
    second = BatchSubmitter(second_ledger, endpoint(runtime), s3_client(), SETTINGS, "run-1")
    mark_invoking = second_ledger.mark_invoking
    second_marks = []
    first_reports = []

    def mark_while_the_first_sends(group, run_id, window_seconds):
        # the second submitter has read the batch (nothing marked yet); now the first reads,
        # marks and sends, and while its first request is in flight, the second marks
        runtime.during.append(lambda: second_marks.append(mark_invoking(group, run_id, window_seconds)))
        first_reports.append(first.submit(files))
        return second_marks[0]

    monkeypatch.setattr(second_ledger, "mark_invoking", mark_while_the_first_sends)
    second_report = second.submit(files)

    assert runtime.invoked() == {f["uri"]: 1 for f in files}, "a file was sent to the endpoint twice"
    assert second_marks and second_marks[0][1] == [], "a file marked by the first submitter is not marked again"
    assert first_reports[0].submitted == 4 and second_report.submitted == 0
    records = ledger.get(f["uri"] for f in files)
    assert {r.status for r in records.values()} == {Status.SUBMITTED}


def test_a_submitter_whose_lease_ran_out_never_invokes(ledger):
    """run-1's claim outlived its lease before it was sent: another run may claim the file at any
    moment, so run-1 sends nothing; the run that claims it next sends it, once."""
    now = [1000.0]
    timed = clocked(ledger, now)
    files = claim(timed, 3, lease_seconds=100)
    now[0] = 1101.0  # past the claim's deadline (1100)
    runtime = FakeRuntime()

    report = BatchSubmitter(timed, endpoint(runtime), s3_client(), SETTINGS, "run-1").submit(files)

    assert runtime.calls == [] and report.submitted == 0
    records = ledger.get(f["uri"] for f in files)
    assert {(r.status, r.invoking_since) for r in records.values()} == {(Status.PROCESSING, None)}
    later = claimed_files(3, "run-2")
    assert timed.claim(later, "run-2", lease_seconds=WINDOW).applied == [f["uri"] for f in later]
    assert BatchSubmitter(timed, endpoint(runtime), s3_client(), SETTINGS, "run-2").submit(later).submitted == 3
    assert runtime.invoked() == {f["uri"]: 1 for f in files}
    assert {c["InferenceId"] for c in runtime.calls} == {f["inference_id"] for f in later}


@pytest.mark.parametrize("taken", ["claimed after the lease ran out", "adopted"])
def test_a_submitter_that_read_its_files_before_another_run_took_them_never_invokes(ledger, monkeypatch, taken):
    """run-1's submitter reads its files; before it marks them, run-2 takes them over (a new claim
    once run-1's lease ran out, or adopted as they are when run-1 was seen to end). Only the run
    holding the claim marks a file: run-1 sends nothing, run-2 sends each once."""
    now = [1000.0]
    timed = clocked(ledger, now)
    files = claim(timed, 3, lease_seconds=100)
    runtime = FakeRuntime()
    run_1 = clocked(ledger, now)
    get = run_1.get
    taken_by_run_2 = []

    def read_then_run_2_takes_them(uris):
        records = get(uris)
        if taken == "adopted":
            taken_by_run_2[:] = files
            assert timed.adopt(list(records.values()), "run-2") == [f["uri"] for f in files]
        else:
            now[0] = 1101.0
            taken_by_run_2[:] = claimed_files(3, "run-2")
            assert timed.claim(taken_by_run_2, "run-2", lease_seconds=WINDOW).applied == [f["uri"] for f in files]
        return records

    monkeypatch.setattr(run_1, "get", read_then_run_2_takes_them)
    report = BatchSubmitter(run_1, endpoint(runtime), s3_client(), SETTINGS, "run-1").submit(files)

    assert runtime.calls == [] and report.submitted == 0
    second = BatchSubmitter(timed, endpoint(runtime), s3_client(), SETTINGS, "run-2")
    assert second.submit(taken_by_run_2).submitted == 3
    assert runtime.invoked() == {f["uri"]: 1 for f in files}
    records = ledger.get(f["uri"] for f in files)
    assert {(r.run_id, r.status) for r in records.values()} == {("run-2", Status.SUBMITTED)}


def test_marking_renews_the_lease_so_no_claim_takes_a_file_being_sent(ledger):
    """A mark made just before the claim's deadline renews it: a run that looks while the request
    is in flight, past the old deadline, cannot claim the file and send it again."""
    now = [1000.0]
    timed = clocked(ledger, now)
    files = claim(timed, 2, lease_seconds=100)
    now[0] = 1090.0  # the lease is still live: the mark is allowed
    runtime = FakeRuntime()
    later = claimed_files(2, "run-2")
    claims_meanwhile = []

    def run_2_claims_past_the_old_deadline():
        now[0] = 1200.0
        claims_meanwhile.append(timed.claim(later, "run-2", lease_seconds=WINDOW))

    runtime.during.append(run_2_claims_past_the_old_deadline)

    assert BatchSubmitter(timed, endpoint(runtime), s3_client(), SETTINGS, "run-1").submit(files).submitted == 2

    assert claims_meanwhile[0].applied == [] and claims_meanwhile[0].rejected == [f["uri"] for f in later]
    assert BatchSubmitter(timed, endpoint(runtime), s3_client(), SETTINGS, "run-2").submit(later).already_done == 2
    assert runtime.invoked() == {f["uri"]: 1 for f in files}
    records = ledger.get(f["uri"] for f in files)
    assert {(r.run_id, r.status) for r in records.values()} == {("run-1", Status.SUBMITTED)}
    assert {r.deadline for r in records.values()} == {1200 + WINDOW}, "recorded when its answer came"


def test_request_is_valid_for_the_real_sagemaker_runtime_api(ledger):
    """Run the submitter on a real boto3 client: botocore validates names, types and ranges."""
    from botocore.stub import Stubber

    files = claim(ledger, 1)
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stub = Stubber(client)
    expected = {
        "EndpointName": SETTINGS.endpoint_name,
        "InputLocation": pinned(files[0]),
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
        report = BatchSubmitter(ledger, endpoint(client), s3_client(), SETTINGS, "run-1").submit(files)
    stub.assert_no_pending_responses()
    assert report.submitted == 1
    assert ledger.get([files[0]["uri"]])[files[0]["uri"]].output_location == "s3://o/i.out"


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
        check_endpoint(sagemaker, "nowhere", CONFIG.output_path)

    def throttled(**kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeEndpoint")

    monkeypatch.setattr(sagemaker, "describe_endpoint", throttled)
    with pytest.raises(ClientError, match="ThrottlingException"):  # not an unusable endpoint: worth a retry
        check_endpoint(sagemaker, "nowhere", CONFIG.output_path)
    monkeypatch.setattr(sagemaker, "describe_endpoint", lambda **kw: {"EndpointStatus": "Creating"})
    with pytest.raises(RuntimeError, match="is Creating, not InService") as raised:
        check_endpoint(sagemaker, "soon", CONFIG.output_path)
    assert not isinstance(raised.value, EndpointNotFoundError)


def test_check_endpoint_refuses_an_endpoint_that_writes_results_where_the_pipeline_does_not_read(aws):
    """The local stack's endpoint (moto's control plane, as bootstrap creates it) passes; the same
    endpoint checked against other output settings, and an endpoint without AsyncInferenceConfig,
    fail naming the endpoint, its config and what to set."""
    from local.bootstrap import bootstrap

    bootstrap(boto3.session.Session())
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    check_endpoint(sagemaker, CONFIG.endpoint_name, CONFIG.output_path)
    check_endpoint(sagemaker, CONFIG.endpoint_name, CONFIG.output_path.rstrip("/"))
    with pytest.raises(EndpointMismatchError, match=rf"writes its results to {CONFIG.output_path} .*output_bucket"):
        check_endpoint(sagemaker, CONFIG.endpoint_name, "s3://elsewhere/output/")
    variant = {"VariantName": "AllTraffic", "ModelName": NAMES.model_name, "InitialInstanceCount": 1}
    sagemaker.create_endpoint_config(
        EndpointConfigName="realtime", ProductionVariants=[{**variant, "InstanceType": "ml.g4dn.xlarge"}]
    )
    sagemaker.create_endpoint(EndpointName="realtime", EndpointConfigName="realtime")
    with pytest.raises(EndpointMismatchError, match="'realtime' is not an asynchronous inference endpoint"):
        check_endpoint(sagemaker, "realtime", CONFIG.output_path)


class SilentEndpoint(http.server.BaseHTTPRequestHandler):
    """Reads each request, then answers nothing: SageMaker may have accepted it, the client cannot know."""

    received: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(self.path)
        time.sleep(2)

    def log_message(self, *args):
        pass


def test_a_file_refused_for_a_passing_reason_is_claimed_again_by_the_next_run(ledger):
    """Throttled past botocore's retries, the error says nothing about the file: it fails
    ``never_sent`` and the next run claims it and sends it. A refusal of the request itself
    (ValidationError) stays failed until a run reprocesses failures."""
    files = claim(ledger, 2)
    throttled, invalid = files[0]["uri"], files[1]["uri"]
    runtime = FakeRuntime(fail_for={invalid}, throttle_for={throttled})
    report = BatchSubmitter(ledger, endpoint(runtime), s3_client(), SETTINGS, "run-1").submit(files)
    assert report.submitted == 0 and {u for u, _ in report.failed} == {throttled, invalid}
    records = ledger.get([throttled, invalid])
    assert records[throttled].status == Status.FAILED and records[throttled].never_sent
    assert "ThrottlingException" in records[throttled].failure_reason
    assert "the next run sends it again" in records[throttled].failure_reason
    assert records[invalid].status == Status.FAILED and not records[invalid].never_sent
    again = claimed_files(2, "run-2")  # the same objects, unchanged
    assert ledger.claim(again, "run-2", lease_seconds=WINDOW).applied == [throttled]
    retried = BatchSubmitter(ledger, endpoint(FakeRuntime()), s3_client(), SETTINGS, "run-2").submit(again[:1])
    assert retried.submitted == 1 and ledger.get([throttled])[throttled].status == Status.SUBMITTED


@pytest.fixture
def silent_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SilentEndpoint)
    SilentEndpoint.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", SilentEndpoint.received
    server.shutdown()
    server.server_close()


def test_an_unclear_invoke_error_is_awaited_not_sent_again(ledger, silent_endpoint, monkeypatch):
    """A read timeout after the request went out: recorded submitted with its deadline, never re-invoked
    (not by botocore's retries either), so a result SageMaker sends later is kept and nothing runs twice."""
    from botocore.config import Config

    url, received = silent_endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    hook = SageMakerAsyncInferenceHook(aws_conn_id=None, config=Config(read_timeout=0.3, connect_timeout=1))
    assert hook.conn.meta.config.retries["mode"] == "adaptive", "the hook's own retries, which retry read timeouts"
    at_1000 = clocked(ledger, [1000.0])
    files = claim(at_1000, 1)

    report = BatchSubmitter(at_1000, hook, s3_client(), SETTINGS, "run-1").submit(files)

    assert len(received) == 1, "the invocation was sent more than once"
    assert report.failed == [] and [u for u, _ in report.unclear] == [files[0]["uri"]]
    record = ledger.get([files[0]["uri"]])[files[0]["uri"]]
    assert record.status == Status.SUBMITTED and "ReadTimeoutError" in record.submit_error
    assert record.output_location is None and record.invoking_since == 1000, "the mark stays, for its owner"
    assert record.deadline == 1000 + SETTINGS.result_window_seconds
    assert BatchSubmitter(ledger, hook, s3_client(), SETTINGS, "run-1").submit(files).already_done == 1
    assert len(received) == 1


def test_a_refused_connection_is_a_clear_failure(ledger, monkeypatch):
    """Nothing listens: nothing can have been accepted, so the file fails with the reason, for the
    next run to send again."""
    from botocore.config import Config

    from tests.moto_server import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{free_port()}")
    config = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1)
    hook = SageMakerAsyncInferenceHook(aws_conn_id=None, config=config)
    files = claim(ledger, 1)
    report = BatchSubmitter(ledger, hook, s3_client(), SETTINGS, "run-1").submit(files)
    assert report.unclear == [] and [u for u, _ in report.failed] == [files[0]["uri"]]
    record = ledger.get([files[0]["uri"]])[files[0]["uri"]]
    assert record.status == Status.FAILED and record.never_sent, "the next run sends it"
