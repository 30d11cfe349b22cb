"""Model-based check of exactly-once: the pipeline's own steps, interleaved at random, on moto.

Hypothesis drives up to three DAG runs over overlapping prefixes of one bucket through the code
the tasks run (claim, submit, wait on notifications, summarise, settle at the end), with a fake
asynchronous endpoint that works its queue in any order and notifications that are lost,
duplicated or reordered; tasks die at any write (a kill: nothing after it runs, not even a
``finally``), two submitters run over one batch at once, old runs carry on after their lease ran
out, objects are overwritten while they wait in the endpoint's queue, and the clock jumps. After
every step the invariants below are checked against witnesses the pipeline cannot touch (the
endpoint's journal, the summariser's calls, the objects in S3), not against the table alone.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from moto import mock_aws

from audio_pipeline import batch_summaries
from audio_pipeline.batch_summaries import BatchSummarizer
from audio_pipeline.batch_watcher import BatchWatcher
from audio_pipeline.batches import ClaimedFile
from audio_pipeline.claims import NothingToListError, claim_new_files
from audio_pipeline.ledger import FileRecord, Ledger, Status, table_definition
from audio_pipeline.s3_uris import S3Location, split_s3_uri
from audio_pipeline.settlement import settle_run
from audio_pipeline.submission import BatchSubmitter, InvocationSettings
from audio_pipeline.summaries import Summary, SummaryError, summary_location
from tests.plugins.test_submission import endpoint

REGION = "us-east-1"
IN, OUT = "audio-in", "audio-out"
OUTPUT_PATH = f"s3://{OUT}/transcripts/"
KEYS = ("p/a.wav", "p/b.wav", "p/q/c.wav", "p/q/d.wav")
PREFIXES = ("p/", "p/q/")
RUNS = ("run-1", "run-2", "run-3")
INPUTS_PATH = f"s3://{OUT}/inputs/"
SETTINGS = InvocationSettings(
    "endpoint",
    request_ttl_seconds=600,
    invocation_timeout_seconds=60,
    result_window_seconds=720,
    inputs_path=INPUTS_PATH,
)
WINDOW = SETTINGS.result_window_seconds


def KILL(calls: int) -> st.SearchStrategy[int | None]:  # noqa: N802 (a strategy, named as a constant)
    """Where a task dies: at one of its first ``calls`` status-table calls (one time in four), or not."""
    return st.one_of(st.none(), st.none(), st.none(), st.integers(1, calls))


class Killed(BaseException):
    """The task's process died: raised by every status-table call once the kill point is reached."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Mortal:
    """A DynamoDB client shared by the tasks of a step, each in a thread of its own.

    A task dies (:class:`Killed`) at its ``kill_at``-th call and on every call after (nothing it
    would do next happens, not even a ``finally``'s write). When two tasks run at once, each call
    waits for its turn in ``order`` (the task that makes the next call, by index), so the two
    interleave at every read and write as the order says; once the order is used up, the first
    task still running makes every call until it ends (so every schedule is reproducible).
    """

    def __init__(self, client) -> None:
        self.client = client
        self.local = threading.local()
        self.turn = threading.Condition()
        self.order: list[int] = []
        self.ended: set[int] = set()
        self.tasks = 0

    def run(self, tasks: list[tuple[Callable[[], object], int | None]], order: list[int]) -> None:
        """Run ``tasks`` (each with its ``kill_at``) at once, interleaved by ``order``; a killed task
        ends quietly, another error is raised."""
        self.order, self.ended, self.tasks = [i for i in order if i < len(tasks)], set(), len(tasks)
        errors: list[BaseException] = []

        def task(index: int, step: Callable[[], object], kill_at: int | None) -> None:
            self.local.index, self.local.calls, self.local.kill_at = index, 0, kill_at
            try:
                step()
            except Killed:
                pass
            except BaseException as err:  # noqa: BLE001 (raised in the test's thread below)
                errors.append(err)
            finally:
                with self.turn:
                    self.ended.add(index)
                    self.turn.notify_all()

        threads = [threading.Thread(target=task, args=(i, *t)) for i, t in enumerate(tasks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _next(self) -> int:
        """The task whose call goes next: the order's, else the first task still running."""
        while self.order and self.order[0] in self.ended:
            self.order.pop(0)
        return self.order[0] if self.order else min(set(range(self.tasks)) - self.ended)

    def _wait_for_turn(self, me: int) -> None:
        with self.turn:
            while me != self._next():
                self.turn.wait()
            if self.order:
                self.order.pop(0)
            self.turn.notify_all()

    def __getattr__(self, name):
        attribute = getattr(self.client, name)
        if not callable(attribute) or name in ("get_paginator", "meta"):
            return attribute

        def call(*args, **kwargs):
            me = getattr(self.local, "index", None)
            if me is not None:  # a task's own call (not one of its pool's threads)
                self._wait_for_turn(me)
                self.local.calls += 1
                if self.local.kill_at is not None and self.local.calls >= self.local.kill_at:
                    raise Killed(name)
            return attribute(*args, **kwargs)

        return call


@dataclass
class Request:
    input_location: str
    uri: str
    """The file the input was copied from (the pinned copy's name says: ``<path><id>/<bucket>/<key>``)."""
    inference_id: str
    claimed_etag: str
    queued_at: float


@dataclass
class Endpoint:
    """A fake asynchronous endpoint: a queue worked in any order, a journal of what it was sent."""

    s3: object
    clock: Clock
    queue: list[Request] = field(default_factory=list)
    sent: list[Request] = field(default_factory=list)
    transcribed: Counter = field(default_factory=Counter)
    """(uri, etag) -> transcripts the endpoint wrote."""
    outbox: list[dict] = field(default_factory=list)
    during_invoke: object = None
    """Called (once) inside an invocation: another submitter running at the same moment."""
    throttled: set[str] = field(default_factory=set)
    """Files whose invocations are throttled past the client's retries."""

    def invoke_endpoint_async(self, *, InputLocation, InferenceId, **_):  # noqa: N803 (boto3's names)
        source = "s3://" + InputLocation.partition(f"/{InferenceId}/")[2]
        if source in self.throttled:  # as botocore raises it once its retries are spent: nothing queued
            error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "InvokeEndpointAsync")
        request = Request(InputLocation, source, InferenceId, _etag_in(InferenceId), self.clock())
        self.queue.append(request)
        self.sent.append(request)
        if self.during_invoke:
            hook, self.during_invoke = self.during_invoke, None
            hook()
        return {
            "InferenceId": InferenceId,
            "OutputLocation": f"{OUTPUT_PATH}{InferenceId}.out",
            "FailureLocation": f"s3://{OUT}/failures/{InferenceId}-error.out",
        }

    def expire(self) -> None:
        """Requests past ``RequestTTLSeconds`` in the queue are dropped, with a failure notification."""
        for request in [r for r in self.queue if r.queued_at + SETTINGS.request_ttl_seconds < self.clock()]:
            self.queue.remove(request)
            self._notify(
                request, {"invocationStatus": "Failed", "failureReason": "Request expired (RequestTTLSeconds)"}
            )

    def _notify(self, request: Request, outcome: dict) -> None:
        doc = {
            "inferenceId": request.inference_id,
            "requestParameters": {"inputLocation": request.input_location},
            **outcome,
        }
        self.outbox.append({"MessageId": str(len(self.outbox)), "ReceiptHandle": "r", "Body": json.dumps(doc)})

    def work(self, index: int, succeed: bool) -> None:
        request = self.queue.pop(index % len(self.queue))
        bucket, key = split_s3_uri(request.input_location)
        etag = self.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')  # what it reads now
        if succeed:
            location = f"{OUTPUT_PATH}{request.inference_id}.out"
            body = json.dumps({"text": f"{request.uri} {etag}", "etag": etag})
            self.s3.put_object(Bucket=OUT, Key=location.split("/", 3)[3], Body=body.encode())
            self.transcribed[(request.uri, etag)] += 1
            self._notify(request, {"invocationStatus": "Completed", "responseParameters": {"outputLocation": location}})
        else:
            self._notify(request, {"invocationStatus": "Failed", "failureReason": "ClientError: model failed"})


_ETAGS: dict[str, str] = {}
"""inference id -> the ETag its claim was made for (the claim's inference id hashes it in)."""


def _etag_in(inference_id: str) -> str:
    return _ETAGS.get(inference_id, "?")


class Summarizer:
    """A fake Bedrock summariser that counts the summaries it made, and rejects (an error no retry
    fixes) the transcripts of the files in ``rejects``, noting which run asked."""

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.rejects: set[str] = set()
        self.rejected_for: dict[str, set[str]] = {}
        """file -> the runs whose summary of it was rejected."""
        self.run_id = ""
        """The run whose summarising task is asking."""

    def summarize(self, transcript: str) -> Summary:
        uri = transcript.split(" ", 1)[0]  # the endpoint's transcript names its file
        if uri in self.rejects:
            self.rejected_for.setdefault(uri, set()).add(self.run_id)
            event("a summary rejected")
            raise SummaryError("the model rejected the transcript", retryable=False)
        self.calls[transcript] += 1
        return Summary(f"Summary of {transcript}.", [], "model", chunks=1, input_chars=len(transcript))


@dataclass
class Run:
    run_id: str
    prefix: str
    files: list[ClaimedFile] = field(default_factory=list)
    ended: bool = False
    snapshot: list[FileRecord] | None = None
    """The run index as its teardown read it, before its write."""


@pytest.fixture(autouse=True, scope="module")
def moto() -> Iterator[None]:
    """One moto for every example (each makes its own table): starting moto anew costs more than an example."""
    with mock_aws():
        yield


@pytest.fixture(autouse=True, scope="module")
def one_rejection_gives_up() -> Iterator[None]:
    """A summary is given up at its first rejection here, so that the few examples that summarise a
    rejected file reach the given-up state (three runs' rejections are counted in test_claims)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch_summaries, "SUMMARY_ATTEMPTS", 1)
        yield


_EXAMPLES = itertools.count()


class LedgerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.s3 = boto3.client("s3", region_name=REGION)
        ddb = boto3.client("dynamodb", region_name=REGION)
        table = f"status-{next(_EXAMPLES)}"
        ddb.create_table(TableName=table, **table_definition())
        self.ddb = Mortal(ddb)
        self.clock = Clock()
        self.ledger = Ledger(self.ddb, table, clock=self.clock, backoff_base=0, concurrency=1, page_size=2)
        self.endpoint = Endpoint(self.s3, self.clock)
        self.summarizer = Summarizer()
        self.runs: dict[str, Run] = {}
        self.versions: dict[str, int] = {}
        self.failed_by_teardown: list[tuple[str, str | None, str]] = []

    def teardown(self) -> None:
        try:
            self.every_claim_ends()
            self.a_later_run_over_any_prefix_summarises_every_waiting_transcript()
        finally:
            self._clean_up()

    def every_claim_ends(self) -> None:
        """Whatever the runs left, a window later every file is settled or claimable again (for
        its transcription or its summary): no claim lasts past its lease."""
        later = self.clock() + WINDOW + 1
        for record in self.ledger.get(f"s3://{IN}/{k}" for k in KEYS).values():
            waiting = record.in_flight or (record.status == Status.COMPLETED and record.summary_error is None)
            assert not waiting or record.lease_expired(later), f"held past its lease: {record}"

    def a_later_run_over_any_prefix_summarises_every_waiting_transcript(self) -> None:
        """None left waiting forever: once the endpoint has answered everything, every run has ended
        and a window has passed, one more run, listing only ``p/q/``, takes every transcript still
        without a summary (under ``p/`` too: the waiting index) and summarises it; still none is
        summarised twice."""
        self.summarizer.rejects.clear()  # Bedrock's problem fixed: what is not given up gets its summary
        self.summarizer.run_id = "run-last"
        given_up = {uri for uri, r in self.ledger.get(f"s3://{IN}/{k}" for k in KEYS).items() if r.summary_given_up}
        while self.endpoint.queue:  # the endpoint works off its queue; every notification is recorded
            self.endpoint.work(0, succeed=True)
        for run in [r for r in self.runs.values() if r.files]:
            self._watcher(run).record_messages(list(self.endpoint.outbox))
        self.clock.now += WINDOW + 1
        for run in self.runs.values():
            run.ended = True
        files: list[ClaimedFile] = []
        report = claim_new_files(
            self.s3,
            self.ledger,
            S3Location(IN, "p/q/"),
            frozenset({"wav"}),
            "run-last",
            files.append,
            inputs_path=INPUTS_PATH,
            lease_seconds=WINDOW,
            run_ended=lambda other: True,
        )
        if any(not uri.startswith(f"s3://{IN}/p/q/") for uri in report.waiting):
            event("a later run took a transcript waiting under another prefix")
        BatchSummarizer(self.ledger, self.s3, self.summarizer, run_id="run-last", lease_seconds=WINDOW).run(files)
        records = self.ledger.get(f"s3://{IN}/{k}" for k in KEYS).values()
        waiting = [r for r in records if r.status == Status.COMPLETED and not r.summary_given_up]
        assert not waiting, f"transcripts left without a summary: {waiting}"
        assert {r.uri for r in records if r.summary_given_up} == given_up, "run-last took a given-up summary"
        self.no_version_summarised_twice()

    def _clean_up(self) -> None:
        self.ddb.client.delete_table(TableName=self.ledger.table_name)
        for bucket in (IN, OUT):
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    self.s3.delete_object(Bucket=bucket, Key=o["Key"])

    # ------------------------------------------------------------------ steps

    @initialize(rejected=st.none() | st.integers(0, len(KEYS) - 1))
    def upload(self, rejected: int | None) -> None:
        """The buckets and the files; Bedrock rejects the transcript of one of them (``rejected``,
        every version: an error no retry fixes), or of none."""
        for bucket in (IN, OUT):
            self.s3.create_bucket(Bucket=bucket)
        for key in KEYS:
            self._put(key)
        if rejected is not None:
            self.summarizer.rejects.add(f"s3://{IN}/{KEYS[rejected]}")

    def _put(self, key: str) -> None:
        self.versions[key] = self.versions.get(key, 0) + 1
        self.s3.put_object(Bucket=IN, Key=key, Body=f"{key} version {self.versions[key]}".encode())

    def _run(self, run_id: str) -> Run | None:
        run = self.runs.get(run_id)
        return run if run and not run.ended else None

    def _working(self) -> list[str]:
        """Runs whose tasks may still run: claimed something, not ended."""
        return sorted(r.run_id for r in self.runs.values() if r.files and not r.ended)

    def _watcher(self, run: Run) -> BatchWatcher:
        """A run's sensor, as a trigger (re)starts it."""
        return BatchWatcher(
            self.ledger,
            self.s3,
            run.files,
            fallback_deadline=self.clock() + WINDOW,
            output_path=OUTPUT_PATH,
            clock=self.clock,
        )

    def _draw_working(self, data: st.DataObject) -> Run:
        return self.runs[data.draw(st.sampled_from(self._working()), label="run")]

    def _dies(self, kill_at: int | None, step: Callable[[], object]) -> bool:
        """Run ``step`` as a task that dies at its ``kill_at``-th status-table call (None: lives);
        whether it lived."""
        lived = []
        self.ddb.run([(lambda: lived.append(step()), kill_at)], [])
        return bool(lived)

    @rule(run_id=st.sampled_from(RUNS), prefix=st.sampled_from(PREFIXES), kill_at=KILL(4))
    def claim(self, run_id: str, prefix: str, kill_at: int | None) -> None:
        self._dies(kill_at, self._claim_task(run_id, prefix))

    def _claim_task(self, run_id: str, prefix: str) -> Callable[[], None]:
        """A run's claim task (again, on a retry: a retry keeps the run's prefix)."""
        run = self.runs.setdefault(run_id, Run(run_id, prefix))

        def claim() -> None:
            if run.ended:
                return
            claimed: list[ClaimedFile] = []
            try:
                claim_new_files(
                    self.s3,
                    self.ledger,
                    S3Location(IN, run.prefix),
                    frozenset({"wav"}),
                    run_id,
                    claimed.append,
                    inputs_path=INPUTS_PATH,
                    lease_seconds=WINDOW,
                    run_ended=lambda other: self.runs[other].ended if other in self.runs else False,
                )
            except NothingToListError:
                pytest.fail("the bucket always holds audio")
            for f in claimed:
                _ETAGS[f["inference_id"]] = f["etag"]
            if claimed:
                run.files = claimed  # the batch manifest is written once the claim task ends

        return claim

    @precondition(lambda self: self._working())
    @rule(
        data=st.data(),
        kill_at=KILL(6),
        rival=st.sampled_from([None, None, "submit", "claim"]),
        order=st.lists(st.integers(0, 1), max_size=8),
    )
    def submit(self, data: st.DataObject, kill_at: int | None, rival: str | None, order: list[int]) -> None:
        """A run's submit task, and at the same moment (interleaved by ``order``) maybe a rival: a
        second submit task over the same batch (a task restarted beside its zombie, a cleared
        task), or another run's claim task."""
        run = self._draw_working(data)

        def submit() -> None:
            BatchSubmitter(self.ledger, endpoint(self.endpoint), self.s3, SETTINGS, run.run_id).submit(run.files)

        tasks: list[tuple[Callable[[], object], int | None]] = [(submit, kill_at)]
        if rival == "submit":
            tasks.append((submit, None))
        elif rival == "claim":
            claimant = data.draw(st.sampled_from([r for r in RUNS if r != run.run_id]), label="claimant")
            prefix = data.draw(st.sampled_from(PREFIXES), label="prefix")
            tasks.append((lambda: self._claim_task(claimant, prefix), None))
        self.ddb.run(tasks, order)

    @precondition(lambda self: any(r.snapshot is not None and r.files for r in self.runs.values()))
    @rule(data=st.data(), kill_at=st.integers(1, 6))
    def submit_after_the_end_read(self, data: st.DataObject, kill_at: int) -> None:
        """A run marked failed by hand while its submit task still runs: the task marks and sends
        between the run's end reading the run's files and writing their end, and is killed at one
        of its status-table calls or after its last (Airflow stops a failed run's running tasks)."""
        ending = sorted(r.run_id for r in self.runs.values() if r.snapshot is not None and r.files)
        run = self.runs[data.draw(st.sampled_from(ending), label="run")]
        submitter = BatchSubmitter(self.ledger, endpoint(self.endpoint), self.s3, SETTINGS, run.run_id)
        self._dies(kill_at, lambda: submitter.submit(run.files))
        event("a submit between a run's end read and its write")

    @precondition(lambda self: self.endpoint.queue)
    @rule(index=st.integers(0, 7), succeed=st.booleans())
    def endpoint_works(self, index: int, succeed: bool) -> None:
        self.endpoint.work(index, succeed)
        event("endpoint worked")

    @precondition(lambda self: self.endpoint.outbox and self._working())
    @rule(data=st.data(), index=st.integers(0, 15), keep=st.booleans(), kill_at=KILL(3))
    def deliver(self, data: st.DataObject, index: int, keep: bool, kill_at: int | None) -> None:
        """A notification reaches a run's watcher (any run's: the queue is shared), in any order;
        ``keep``: it is delivered again later (a duplicate), else it is gone once recorded."""
        run = self._draw_working(data)
        message = self.endpoint.outbox[index % len(self.endpoint.outbox)]
        watcher = self._watcher(run)
        recorded = self._dies(kill_at, lambda: watcher.record_messages([message]))
        if recorded and not keep:
            self.endpoint.outbox.remove(message)

    @precondition(lambda self: self.endpoint.outbox)
    @rule(index=st.integers(0, 15))
    def lose_notification(self, index: int) -> None:
        self.endpoint.outbox.pop(index % len(self.endpoint.outbox))

    @precondition(lambda self: self._working())
    @rule(data=st.data())
    def watcher_looks(self, data: st.DataObject) -> None:
        """A run's sensor: its periodic look in S3 and its deadlines."""
        run = self._draw_working(data)
        watcher = self._watcher(run)
        watcher.refresh()
        watcher.reconcile(list(watcher.pending))
        watcher.expire()

    @rule(index=st.integers(0, len(KEYS) - 1))
    def endpoint_throttles(self, index: int) -> None:
        """The endpoint throttles this file's invocations past the client's retries, or stops doing so."""
        self.endpoint.throttled ^= {f"s3://{IN}/{KEYS[index]}"}

    @precondition(lambda self: self._working())
    @rule(data=st.data(), kill_at=KILL(4))
    def summarise(self, data: st.DataObject, kill_at: int | None) -> None:
        run = self._draw_working(data)
        run_id = run.run_id
        self.summarizer.run_id = run_id
        summarizer = BatchSummarizer(
            self.ledger, self.s3, self.summarizer, run_id=run_id, lease_seconds=WINDOW, concurrency=1
        )
        self._dies(kill_at, lambda: summarizer.run(run.files))

    @precondition(lambda self: any(not r.ended for r in self.runs.values()))
    @rule(data=st.data())
    def run_ends(self, data: st.DataObject) -> None:
        """The run ends (its last task, or marked failed by hand): later runs may adopt what it
        left; its teardown reads the run index now and writes later, other work between."""
        run_id = data.draw(st.sampled_from(sorted(r.run_id for r in self.runs.values() if not r.ended)))
        run = self.runs[run_id]
        run.ended = True
        run.snapshot = list(self.ledger.run_records(run_id))

    @precondition(lambda self: any(r.snapshot is not None for r in self.runs.values()))
    @rule(data=st.data())
    def teardown_writes(self, data: st.DataObject) -> None:
        run_id = data.draw(st.sampled_from(sorted(r.run_id for r in self.runs.values() if r.snapshot is not None)))
        run = self.runs[run_id]
        assert run.snapshot is not None
        before = self.ledger.get(r.uri for r in run.snapshot)
        settle_snapshot(self.ledger, run.snapshot, run_id)
        after = self.ledger.get(r.uri for r in run.snapshot)
        for uri, record in after.items():
            if record.status == Status.FAILED and before[uri].status != Status.FAILED:
                self.failed_by_teardown.append((uri, record.run_id, run_id))
        run.snapshot = None
        list(settle_run(self.ledger, run_id, f"run {run_id} ended"))  # what the rest of the teardown does

    @rule(seconds=st.sampled_from([30, WINDOW // 2, WINDOW + 1]))
    def time_passes(self, seconds: int) -> None:
        self.clock.now += seconds
        self.endpoint.expire()

    @precondition(lambda self: self.endpoint.queue)
    @rule(index=st.integers(0, 3))
    def overwrite(self, index: int) -> None:
        """An object is overwritten while a request for it waits in the endpoint's queue."""
        request = self.endpoint.queue[index % len(self.endpoint.queue)]
        self._put(split_s3_uri(request.uri)[1])
        event("overwritten while queued")

    # ------------------------------------------------------------- invariants

    @invariant()
    def never_two_requests_for_one_version_at_once(self) -> None:
        queued = Counter((r.uri, r.claimed_etag) for r in self.endpoint.queue)
        assert not [v for v, n in queued.items() if n > 1], f"sent twice while the first waits: {queued}"

    @invariant()
    def no_version_transcribed_twice(self) -> None:
        assert not [v for v, n in self.endpoint.transcribed.items() if n > 1], self.endpoint.transcribed

    @invariant()
    def no_version_summarised_twice(self) -> None:
        assert not [t for t, n in self.summarizer.calls.items() if n > 1], self.summarizer.calls

    @invariant()
    def the_waiting_index_holds_exactly_the_transcripts_without_summary(self) -> None:
        """Whatever prefix a later run lists, it finds every ``completed`` file not given up, and only those."""
        records = self.ledger.get(f"s3://{IN}/{k}" for k in KEYS).values()
        completed = sorted(r.uri for r in records if r.status == Status.COMPLETED and not r.summary_given_up)
        assert sorted(r.uri for r in self.ledger.waiting_for_summary()) == completed

    @invariant()
    def a_summary_is_given_up_only_after_enough_runs_were_rejected(self) -> None:
        for record in self.ledger.get(f"s3://{IN}/{k}" for k in KEYS).values():
            if record.summary_given_up:
                event("a summary given up")
                runs = self.summarizer.rejected_for.get(record.uri, set())
                assert len(runs) >= batch_summaries.SUMMARY_ATTEMPTS, (
                    f"{record.uri} given up after rejections by {runs}"
                )

    @invariant()
    def only_the_holder_fails_a_file_at_its_end(self) -> None:
        wrong = [(uri, holder, ender) for uri, holder, ender in self.failed_by_teardown if holder != ender]
        assert not wrong, f"a run's teardown failed files another run held: {wrong}"

    @invariant()
    def results_belong_to_their_version_and_exist(self) -> None:
        records = self.ledger.get(f"s3://{IN}/{k}" for k in KEYS)
        for record in records.values():
            if record.status not in (Status.COMPLETED, Status.SUMMARIZED):
                continue
            event(f"a file {record.status}")
            assert record.output_location, record
            bucket, key = split_s3_uri(record.output_location)
            transcript = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            assert transcript["etag"] == record.etag, (
                f"{record.uri}: transcript of {transcript['etag']} recorded for {record.etag}"
            )
            if record.status == Status.SUMMARIZED:
                bucket, key = split_s3_uri(summary_location(record.output_location))
                self.s3.head_object(Bucket=bucket, Key=key)


def settle_snapshot(ledger: Ledger, snapshot: list[FileRecord], run_id: str) -> None:
    """The teardown's write over the run index as it read it."""
    ledger.fail_leftovers(snapshot, run_id, f"run {run_id} ended before a result was recorded")


LedgerModel.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedgerModel = LedgerModel.TestCase
