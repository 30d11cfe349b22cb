"""``make faults`` (``python -m benchmarks.faults``): the fault matrix on the local stack.

Each scenario runs the real DAG in the real Airflow with faults injected by the emulators'
explicit settings, then judges every file version from outside the pipeline
(``benchmarks.verdict``: the emulators' and the model server's witness journals, and the
objects in S3): ``summarized``, ``failed`` with a reason, ``completed`` with a summary
error (transcript kept), **lost** (anything else) and **processed twice** (more than one
model call, or more than one summary Bedrock answered). Lost and processed twice must be 0;
the audio files the endpoint cannot take must be recorded ``skipped`` with their reason.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio_pipeline.config import PipelineConfig
from audio_pipeline.ledger import FileRecord, Ledger
from audio_pipeline.pinning import pin_overhead
from audio_pipeline.submission import GROUP_SIZE
from audio_pipeline.summaries import summary_location
from audio_pipeline.summary_retries import RETRIES, retry_delays
from benchmarks.verdict import FileVerdict, Judge, Tally
from local.stack.airflow_api import AirflowApi
from local.stack.launcher import Stack
from local.stack.services import (
    QUICK_RECONCILE,
    REGION,
    Ports,
    Settings,
    airflow_services,
    runtime_service,
)
from local.witness import Witnesses, text_key
from model_server.backends.audio import MAX_AUDIO_SECONDS_VARIABLE
from tests.model_server.decoding import silent_wav

BUCKET = "audio-transcription-input"
PREFIX = "faults/"
AUDIO = b"RIFF" + b"\0" * 1020
FAIL_MARKER = "MODEL-FAILS-HERE"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _uri(key: str) -> str:
    """The s3:// URI of a row's file."""
    return f"s3://{BUCKET}/{PREFIX}{key}"


@dataclass
class Scenario:
    name: str
    files: dict[str, bytes]
    emulator_flags: tuple[str, ...] = ()
    bedrock_flags: tuple[str, ...] = ()
    runs: int = 1
    during: Callable[[Stack], None] | None = None
    model_backend: str = "benchmark"
    expected_failed: set[str] = field(default_factory=set)
    failure_reasons: dict[str, str] = field(default_factory=dict)
    """Of ``expected_failed``, files whose failure reason must contain the given text."""
    expected_skipped: set[str] = field(default_factory=set)
    """Audio keys the endpoint cannot take, recorded ``skipped`` with their reason: not files in."""
    expected_summary_errors: set[str] = field(default_factory=set)
    expected_run_state: str = "success"
    service_seconds: float = 0.05
    """The benchmark backend's time per file (BENCHMARK_SERVICE_SECONDS)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for the stack's processes (``Settings.extra_env``): the model server's
    settings, for example ``MODEL_MAX_AUDIO_SECONDS``."""
    variables: dict[str, str] = field(default_factory=dict)
    """Settings of the pipeline (the Variable ``audio_pipeline_config``) for this scenario."""
    may_cut_a_submission: bool = False
    """The fault may cut a submission (an InvokeEndpointAsync mid-request, or the submitting task
    mid-group): a file the endpoint never accepted may then fail, with its reason, at the end of
    its result window (use SHORT_WINDOW)."""
    drive: Callable[[Stack, AirflowApi, str], list[str]] | None = None
    """Runs the DAG itself (given the stack, the API and the bucket URI) instead of triggering
    ``runs`` runs at once, and returns every run id it started, in order."""
    check: Callable[[Judge, list[FileVerdict]], list[str]] | None = None
    """What else the witnesses must show for this row's fault (given the judge of the row's stack
    and its verdicts on the files' current versions, once the runs have ended): the problems
    found, empty when none."""
    alone: bool = False
    """The row times its fault closely against the pipeline's progress (a kill between two calls of
    one task): ``Matrix`` gives it the machine to itself, no other row beside it."""

    def short(self, files: int) -> Scenario:
        """The same scenario on its first ``files`` files (and every file it expects to fail), for CI."""
        expected = self.expected_failed | self.expected_summary_errors | self.expected_skipped
        kept = [k for k in self.files if k not in expected][: max(0, files - len(expected))]
        return dataclasses.replace(self, files={k: v for k, v in self.files.items() if k in kept or k in expected})


@dataclass
class Row:
    scenario: str
    files_in: int
    summarized: int
    failed_with_reason: int
    summary_errors: int
    lost: int
    processed_twice: int
    runs: str
    accepted: int = 0
    """InvokeEndpointAsync requests accepted for these files (the emulator's journal)."""
    model_calls: int = 0
    """Calls into the model for these file versions (the model server's journal)."""
    reruns: int = 0
    """Of those, calls repeating one accepted request (the endpoint restarted while the model ran it)."""
    summaries: int = 0
    """Summary requests Bedrock answered for their transcripts (the Bedrock emulator's journal)."""
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)
    failed_unanswered: int = 0
    """Of the failed, those whose InvokeEndpointAsync the endpoint never answered with its 202: never
    accepted, or cut by the endpoint's restart after it journaled the request. The pipeline records
    such a file ``submitted`` without knowing where its result will be; if no notification comes
    (or it is dropped) it fails at the end of its window, with the reason."""
    trigger_errors: int = 0
    """Triggers that fired an error event (failing their sensor's attempt), from the triggerer's logs."""
    failures: list[str] = field(default_factory=list)
    """A few failed files with their reasons and what the witnesses saw."""
    reasons: dict[str, str] = field(default_factory=dict, repr=False)
    """Every failed file's reason, by URI."""
    skip_reasons: dict[str, str | None] = field(default_factory=dict)
    """Each expected-skipped file's recorded skip reason, by URI (None: not recorded ``skipped``)."""
    fault_missed: str | None = None
    """Why the scenario's ``during`` fault did not run to its end (it raised, or still ran after the
    runs had ended, see ``FaultThread.missed``): the row then shows nothing about that fault. None
    when it ran (or there is none)."""
    problems: list[str] = field(default_factory=list)
    """What the scenario's own check of the witnesses found (``Scenario.check``); empty when all is well."""

    @classmethod
    def of(cls, scenario: str, tally: Tally, runs: str, seconds: float, trigger_errors: int) -> Row:
        o = tally.outcomes
        return cls(
            scenario,
            tally.files_in,
            o["summarized"],
            o["failed"],
            o["summary_error"],
            tally.lost,
            tally.twice,
            runs,
            tally.accepted,
            tally.model_calls,
            tally.reruns,
            tally.summaries,
            round(seconds, 1),
            tally.examples,
            tally.failed_unanswered,
            trigger_errors,
            tally.failures,
            tally.reasons,
        )


LONGEST_KEY = "l" * (1024 - pin_overhead(PipelineConfig().inputs_path) - len(_uri(".wav"))) + ".wav"
"""The longest key that can be sent: the pinned copy's s3:// URI (this URI and its copy's longer
name, :mod:`audio_pipeline.pinning`) is 1,024 characters, the most InvokeEndpointAsync accepts as
InputLocation."""
OVER_LONG_KEY = "k" + LONGEST_KEY
"""One byte longer: its copy's name would be over 1,024 characters, so AWS would reject it; listing skips it."""


SUBMITTING_AT_ONCE = 2
"""Submitting tasks of one run in flight at once (the DAG's ``max_active_tis_per_dagrun``)."""


def explained_failures(scenario: Scenario, row: Row) -> int:
    """Failures the scenario's fault explains beyond the injected ones: files whose InvokeEndpointAsync
    the endpoint never answered (``Row.failed_unanswered``), where the fault may cut a submission;
    at most the groups that can be mid-submission when it falls, so that failing every file a fault
    left unsent still fails the row."""
    if not scenario.may_cut_a_submission:
        return 0
    return min(row.failed_unanswered, GROUP_SIZE * SUBMITTING_AT_ONCE * scenario.runs)


def broken(scenario: Scenario, row: Row) -> list[str]:
    """What the row shows that must not be: its fault did not happen; a file lost or processed
    twice; failures other than the injected ones (and those the fault explains), or one of those
    without its reason; summary errors other than the injected ones; fewer model calls than the
    files that were transcribed; a trigger that fired an error event. Empty when all is well."""
    out = []
    if row.fault_missed:
        out.append(f"the fault did not happen: {row.fault_missed}")
    if row.lost or row.processed_twice:
        out.append(f"{row.lost} lost and {row.processed_twice} processed twice, e.g. {row.examples}")
    failed = len(scenario.expected_failed) + explained_failures(scenario, row)
    if row.failed_with_reason != failed:
        out.append(f"{row.failed_with_reason} failed with a reason, {failed} expected, e.g. {row.failures}")
    if wrong := wrong_reasons(scenario, row):
        out.append(f"injected failures that did not fail with their reason: {wrong}")
    if unskipped := not_skipped(scenario, row):
        out.append(f"files the endpoint cannot take not recorded skipped with a reason: {unskipped}")
    if row.summary_errors != len(scenario.expected_summary_errors):
        out.append(f"{row.summary_errors} summary errors, {len(scenario.expected_summary_errors)} injected")
    if row.model_calls < row.files_in - failed:
        out.append(f"{row.model_calls} model calls for {row.files_in - failed} files transcribed")
    if row.trigger_errors:
        out.append(f"{row.trigger_errors} triggers fired an error event")
    out += row.problems
    return out


def wrong_reasons(scenario: Scenario, row: Row) -> list[str]:
    """Injected failures that did not fail with a reason (holding the text ``Scenario.failure_reasons``
    gives, if any), with the reason they have: so that no other file's failure stands in for one."""
    wrong = []
    for key in sorted(scenario.expected_failed | scenario.failure_reasons.keys()):
        reason = row.reasons.get(_uri(key))
        if reason is None or scenario.failure_reasons.get(key, "") not in reason:
            wrong.append(f"{key}: {reason}")
    return wrong


def not_skipped(scenario: Scenario, row: Row) -> list[str]:
    """Keys the scenario expects skipped (the endpoint cannot take them) that the status table does
    not record ``skipped`` with a reason."""
    return sorted(key for key in scenario.expected_skipped if not row.skip_reasons.get(_uri(key)))


def _plain(n: int, prefix: str = "") -> dict[str, bytes]:
    """``n`` distinct recordings (the witnesses tell files apart by their bytes and transcripts)."""
    return {f"{prefix}{i:03d}.wav": AUDIO + f"{prefix}{i:03d}".encode() for i in range(n)}


def restart_emulator(stack: Stack, after_accepted: int = 10) -> None:
    """Kill the SageMaker-async emulator once it accepted ``after_accepted`` requests, then start it again."""
    health = f"{stack.settings.url(stack.settings.ports.sagemaker_runtime)}/_emulator/health"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        endpoints = json.loads(urllib.request.urlopen(health, timeout=10).read())["endpoints"]
        if endpoints and next(iter(endpoints.values()))["accepted"] >= after_accepted:
            break
        time.sleep(0.2)
    service = runtime_service(stack.settings)
    stack.processes.kill(service.name)
    stack.processes.start(service)
    stack.processes.wait_healthy([service])


def _samples() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(SAMPLES.iterdir()) if p.suffix != ".json"}


SHORT_CAP = {MAX_AUDIO_SECONDS_VARIABLE: "30"}
"""The model server's cap on decoded audio for the real-ASR row: over its longest clip (20.3 s),
under the silence it carries (45 s), so the cap is met without hours of audio."""


def publish_strangers(stack: Stack) -> None:
    """A notification for an inference id nobody knows, and a message that is not JSON."""
    session = stack.aws_session()
    sns = session.client("sns")
    topic = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith("-success"))
    stranger = {
        "inferenceId": "nobody-knows-me",
        "invocationStatus": "Completed",
        "requestParameters": {"inputLocation": "s3://elsewhere/x.wav"},
        "responseParameters": {"outputLocation": "s3://elsewhere/x.out"},
    }
    sns.publish(TopicArn=topic, Message=json.dumps(stranger))
    sqs = session.client("sqs")
    url = sqs.get_queue_url(QueueName=PipelineConfig().notification_queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="this is not JSON")


def _wait_for_triggers(stack: Stack, timeout: float = 300) -> None:
    """Until a trigger has long-polled the notification queue (Airflow's SQS calls, counted by moto)."""
    calls = f"{stack.settings.url(stack.settings.ports.moto)}/_emulator/calls"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if json.loads(urllib.request.urlopen(calls, timeout=10).read()).get("airflow", {}).get("sqs:ReceiveMessage"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no trigger polled the queue within {timeout:.0f}s")


def wrong_field_types(notification: dict) -> list:
    """The strangers of issue 9: the SageMaker event shape is right, the field types are not."""

    def replaced(**fields: object) -> dict:
        doc = json.loads(json.dumps(notification))
        for path, value in fields.items():
            parent, _, name = path.rpartition("__")
            (doc[parent] if parent else doc)[name] = value
        return doc

    location = notification["requestParameters"]["inputLocation"]
    return [
        replaced(requestParameters=location),
        replaced(requestParameters__inputLocation={"uri": location}),
        replaced(requestParameters__inputLocation=42),
        replaced(responseParameters=notification["responseParameters"]["outputLocation"]),
        replaced(inferenceId={"id": notification["inferenceId"]}),
        [notification],
    ]


def publish_wrong_field_types(stack: Stack, copies: int = 3) -> None:
    """Each wrong-typed notification ``copies`` times on the endpoint's success topic (posing as
    the run's first file), at the start of the run: the triggers' first receives hold them."""
    session = stack.aws_session()
    sns = session.client("sns")
    topic = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith("-success"))
    posing_as = {
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-29T09:00:00.000Z",
        "receivedTime": "2026-11-29T08:59:59.000Z",
        "invocationStatus": "Completed",
        "requestParameters": {"contentType": "audio/wav", "inputLocation": _uri("000.wav")},
        "responseParameters": {"contentType": "application/json", "outputLocation": "s3://elsewhere/000.out"},
        "inferenceId": "posing-as-000",
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    for doc in wrong_field_types(posing_as) * copies:
        sns.publish(TopicArn=topic, Message=json.dumps(doc))


def sqs_outage(seconds: float) -> Callable[[Stack], None]:
    """SQS answers 500 to every request for ``seconds``, from when the triggers are polling."""

    def during(stack: Stack) -> None:
        _wait_for_triggers(stack)
        switch = f"{stack.settings.url(stack.settings.ports.moto)}/_emulator/faults/sqs-5xx?seconds={seconds}"
        urllib.request.urlopen(urllib.request.Request(switch, method="POST"), timeout=10).close()

    return during


def keep_the_queue_busy(stack: Stack, every: float = 0.5) -> None:
    """Another endpoint's notifications (unknown inference ids) on the success topic every
    ``every`` seconds, from the start of the run until no run of the DAG is queued or running:
    the queue is never quiet for a whole reconcile interval."""
    sns = stack.aws_session().client("sns")
    topic = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith("-success"))
    api = AirflowApi(stack.settings.url(stack.settings.ports.airflow))
    n = 0
    while n % 20 or any(r["state"] in ("queued", "running") for r in api.dag_runs()):
        n += 1
        stranger = {
            "inferenceId": f"another-endpoint-{n}",
            "invocationStatus": "Completed",
            "requestParameters": {"inputLocation": f"s3://elsewhere/{n}.wav"},
            "responseParameters": {"outputLocation": f"s3://elsewhere/{n}.out"},
        }
        sns.publish(TopicArn=topic, Message=json.dumps(stranger))
        time.sleep(every)


def restart_triggerer(stack: Stack) -> None:
    """SIGKILL the triggerer once its triggers are polling, then start it again."""
    _wait_for_triggers(stack)
    (triggerer,) = [s for s in airflow_services(stack.settings) if s.name == "triggerer"]
    stack.processes.kill(triggerer.name)
    stack.processes.start(triggerer)


SHORT_WINDOW = {"request_ttl_seconds": "60", "invocation_timeout_seconds": "10", "result_grace_seconds": "5"}
"""A 75 s result window (and lease): a file that was perhaps never sent fails within minutes, not hours."""


def _records(stack: Stack) -> list[FileRecord]:
    """The status table's records of the prefix's files (to time a fault, not to judge)."""
    session = stack.aws_session()
    pages = session.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX)
    uris = [f"s3://{BUCKET}/{o['Key']}" for page in pages for o in page.get("Contents", [])]
    return list(Ledger(session.client("dynamodb"), PipelineConfig().status_table).get(uris).values())


def _status_counts(stack: Stack) -> Counter[str]:
    """How many files of the prefix the status table has in each status."""
    return Counter(r.status.value for r in _records(stack))


def _held_by(stack: Stack, run_id: str) -> int:
    """How many files of the prefix the run ``run_id`` holds (claimed, or taken for their summary)."""
    return sum(1 for r in _records(stack) if r.run_id == run_id)


def _accepted(stack: Stack) -> int:
    health = f"{stack.settings.url(stack.settings.ports.sagemaker_runtime)}/_emulator/health"
    endpoints = json.loads(urllib.request.urlopen(health, timeout=10).read())["endpoints"]
    return sum(e["accepted"] for e in endpoints.values())


def _until(what: str, ready: Callable[[], bool], timeout: float = 300, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(every)


def _files(stack: Stack) -> int:
    return len(stack.aws_session().client("s3").list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"])


def _past_the_window() -> None:
    """Until the result window of every file submitted so far has passed (its lease with it)."""
    time.sleep(sum(int(v) for v in SHORT_WINDOW.values()) + 5)


def kill_scheduler_before_report(stack: Stack, api: AirflowApi, bucket_uri: str) -> list[str]:
    """Run 1 until every file is transcribed, then SIGKILL the scheduler (and the task processes it
    runs) before its summaries and ``report_run``; mark run 1 failed and its ``report_run``
    skipped, so that nothing of it runs again. Once its lease has passed, run 2 must summarise
    the transcripts without transcribing anything again."""
    first = api.trigger({"bucket_uri": bucket_uri})
    files = _files(stack)
    _until("every file transcribed", lambda: _status_counts(stack).get("completed", 0) >= files, every=0.1)
    (scheduler,) = [s for s in airflow_services(stack.settings) if s.name == "scheduler"]
    stack.processes.kill(scheduler.name)
    api.mark_run(first, "failed")
    api.mark_task(first, "report_run", "skipped")  # a teardown outlives a run marked failed: not this one
    stack.processes.start(scheduler)
    _past_the_window()
    return [api.trigger({"bucket_uri": bucket_uri})]


def kill_submit_task_midway(stack: Stack, api: AirflowApi, bucket_uri: str, after_accepted: int = 30) -> list[str]:
    """SIGKILL the process of the submitting task once the endpoint has accepted ``after_accepted``
    files (in the middle of a group of 25); Airflow retries the task a minute later."""
    import psutil

    run_id = api.trigger({"bucket_uri": bucket_uri})
    _until(f"{after_accepted} files accepted", lambda: _accepted(stack) >= after_accepted, every=0.01)
    (ti,) = [t for t in api.task_instances(run_id) if t["task_id"] == "transcribe.submit" and t["state"] == "running"]
    title = f"airflow worker -- {ti['id']}"
    (task,) = [p for p in psutil.process_iter(["cmdline"]) if title in " ".join(p.info["cmdline"] or [])]
    task.kill()
    return [run_id]


def mark_failed_mid_flight(stack: Stack, api: AirflowApi, bucket_uri: str) -> list[str]:
    """Mark run 1 failed by hand once half its files are accepted (its teardown fails what it left in
    flight, while the endpoint still works on them); once their results are in, a new run over the
    prefix with reprocess_failed keeps every transcript that came and transcribes only the rest."""
    first = api.trigger({"bucket_uri": bucket_uri})
    _until("half the files accepted", lambda: _accepted(stack) >= _files(stack) // 2, every=0.02)
    api.mark_run(first, "failed")
    api.wait_for_run(first, timeout=300)
    _past_the_window()
    return [first, api.trigger({"bucket_uri": bucket_uri, "reprocess_failed": True})]


def bedrock_fault(stack: Stack, fault: str, seconds: float) -> None:
    """Set one of the Bedrock emulator's switches (``throttle``, ``hold``) for ``seconds`` (0 ends it)."""
    base = stack.settings.url(stack.settings.ports.bedrock_runtime)
    switch = urllib.request.Request(f"{base}/_emulator/faults/{fault}?seconds={seconds}", method="POST")
    urllib.request.urlopen(switch, timeout=10).close()


ONE_RETRY = {
    "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
        {
            "conn_type": "aws",
            "extra": {
                "region_name": REGION,
                "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 1}, "read_timeout": 300},
            },
        }
    )
}
"""The connection's botocore settings (``config_kwargs``, which the hooks' adaptive retries yield
to): one retry, so throttled summaries fail their task in seconds, not after a minute of backoff;
and the long read timeout AWS advises for Bedrock, so a slow answer is awaited."""


def _bedrock_held(stack: Stack) -> int:
    """Requests the Bedrock emulator holds now (its hold switch)."""
    health = f"{stack.settings.url(stack.settings.ports.bedrock_runtime)}/_emulator/health"
    return int(json.loads(urllib.request.urlopen(health, timeout=10).read())["requests"].get("held", 0))


def _summarise_task(api: AirflowApi, run_id: str) -> dict[str, Any]:
    (ti,) = [t for t in api.task_instances(run_id) if t["task_id"] == "transcribe.summarise"]
    return ti


TAKEOVER_RETRY_SECONDS = 7200
"""``summary_retry_seconds`` of the takeover row: a first pause of 2 minutes (a sixtieth), time
enough for run 2 to take the files on a busy machine."""


def take_over_a_throttled_summary(stack: Stack, api: AirflowApi, bucket_uri: str) -> list[str]:
    """Bedrock throttles every request until run 2 holds the files: run 1 transcribes them, its
    summarising task fails past the client's retries (recording the summary errors) and waits
    for its first retry (:data:`TAKEOVER_RETRY_SECONDS`' first pause, 2 minutes). Meanwhile run 2
    over the prefix takes the files for their summary (10 s before run 1's retry can start at the
    latest, or the row has not reached the case: TimeoutError).
    Then Bedrock answers, but slowly: run 2's requests must be in flight when run 1's retry
    starts (RuntimeError if none is), so a retry that took the files back would have Bedrock
    summarise each twice. The answers come once run 1's retry has ended, or when the hold's
    3 minutes are up (a retry that took the files back waits for its own answers)."""
    bedrock_fault(stack, "throttle", 900)
    first = api.trigger({"bucket_uri": bucket_uri})
    _until(
        "run 1's summaries throttled, its task waiting for its retry",
        lambda: _summarise_task(api, first)["state"] == "up_for_retry",
        every=0.5,
    )
    second = api.trigger({"bucket_uri": bucket_uri})
    files = _files(stack)
    first_pause = retry_delays(PipelineConfig.from_mapping(stack.settings.variables).summary_retry_seconds)[0]

    def took() -> bool:
        return _held_by(stack, second) >= files

    _until("run 2 took every file for its summary", took, timeout=first_pause - 10, every=0.2)
    bedrock_fault(stack, "hold", 180)
    bedrock_fault(stack, "throttle", 0)

    _until("run 1's summarising task retrying", lambda: _summarise_task(api, first)["try_number"] >= 2, every=0.2)
    if not _bedrock_held(stack):
        raise RuntimeError("no request of run 2 was in flight when run 1's retry started: the row missed its case")

    def retried() -> bool:
        return _summarise_task(api, first)["state"] in ("success", "failed", "up_for_retry")

    _until("run 1's summarising task retried", retried, timeout=240, every=0.5)
    bedrock_fault(stack, "hold", 0)
    return [first, second]


@contextlib.contextmanager
def _endpoint_held(stack: Stack) -> Iterator[None]:
    """The SageMaker emulator held (SIGSTOP: no request read, none answered) for the block's time."""
    pid = stack.processes.running()[runtime_service(stack.settings).name]
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


def _health(stack: Stack) -> dict[str, Any]:
    """The SageMaker-async emulator's endpoint (its queue and concurrency, what it accepted)."""
    health = f"{stack.settings.url(stack.settings.ports.sagemaker_runtime)}/_emulator/health"
    return next(iter(json.loads(urllib.request.urlopen(health, timeout=10).read())["endpoints"].values()))


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass
class Overwritten:
    """One file overwritten while its request waited, unread, in the endpoint's queue."""

    uri: str
    claimed_etag: str
    claimed_sha: str
    new_etag: str
    new_sha: str
    at: float
    """When the new version was written (time.time())."""


class OverwriteWhileQueued:
    """Run 1 submits every file; the endpoint is slow (5 s a file), so most wait in its queue. Once
    every file is submitted, the emulator is held (SIGSTOP: no request read, none worked) and the
    files still unread in its queue (past what its workers can have taken: the model calls so far
    plus two per model slot) get new audio, up to half the files; then it is released (SIGCONT).
    Run 2 over the prefix starts once run 1 has ended."""

    def __init__(self) -> None:
        self.overwritten: dict[str, Overwritten] = {}
        self.first_ended_at = 0.0
        self.after_first: dict[str, tuple[str, str]] = {}

    def drive(self, stack: Stack, api: AirflowApi, bucket_uri: str) -> list[str]:
        self.overwritten, self.after_first = {}, {}
        first = api.trigger({"bucket_uri": bucket_uri})
        files = _files(stack)

        def all_submitted() -> bool:
            counts = _status_counts(stack)
            return sum(counts.values()) >= files and not counts.get("processing")

        _until("every file submitted", all_submitted, every=0.1)
        concurrency = int(_health(stack)["concurrency"])
        with _endpoint_held(stack):
            seen = Witnesses.load(stack.settings.witness_dir)
            taken = len({c["request_id"] for c in seen.model_calls}) + 2 * concurrency
            unread = [a["input_location"] for a in seen.accepted[taken:]][: files // 2]
            s3 = stack.aws_session().client("s3")
            for uri in unread:
                key = uri.removeprefix(f"s3://{BUCKET}/")
                old = s3.get_object(Bucket=BUCKET, Key=key)
                claimed = old["Body"].read()
                body = AUDIO + f"overwritten {key}".encode()
                put = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
                self.overwritten[uri] = Overwritten(
                    uri, old["ETag"].strip('"'), _sha(claimed), put["ETag"].strip('"'), _sha(body), time.time()
                )
        api.wait_for_run(first, timeout=600)
        self.first_ended_at = time.time()
        records = Ledger(stack.aws_session().client("dynamodb"), PipelineConfig().status_table).get(self.overwritten)
        self.after_first = {u: (r.status.value, (r.etag or "").strip('"')) for u, r in records.items()}
        return [first, api.trigger({"bucket_uri": bucket_uri})]

    def check(self, judge: Judge, verdicts: list[FileVerdict]) -> list[str]:
        """For each overwritten file, from the witnesses: run 1's one model call read the claimed
        version (its ETag and its bytes) after the overwrite, its transcript (of those bytes) and
        summary are in S3, Bedrock summarised it once, and run 1 recorded it summarized under the
        claimed ETag; no model call of the new version before run 1 ended. (Run 2's new versions
        are the verdicts: each transcribed and summarised once.)"""
        if not self.overwritten:
            return ["the fault did not happen: no file was still unread in the endpoint's queue when it was held"]
        seen = judge.witnesses
        problems = []
        for o in self.overwritten.values():
            name = o.uri.removeprefix(_uri(""))
            calls = seen.calls_of(o.uri, o.claimed_etag)
            requests = {c["request_id"] for c in calls}
            if len(requests) != 1:
                problems.append(f"{name}: {len(requests)} accepted requests of the claimed version were worked")
            if any(c["sha256"] != o.claimed_sha for c in calls):
                problems.append(f"{name}: a model call under the claimed ETag read other bytes")
            if any(c["time"] < o.at for c in calls):
                problems.append(f"the fault did not happen: {name} was worked before it was overwritten")
            early = [
                c
                for c in seen.model_calls
                if c["input_location"] == o.uri
                and (str(c["input_etag"]).strip('"') == o.new_etag or c["sha256"] == o.new_sha)
                and c["time"] < self.first_ended_at
            ]
            if early:
                problems.append(f"{name}: {len(early)} model calls of the new version during run 1")
            locations = sorted(seen.output_locations({c["inference_id"] for c in calls}))
            texts = [found[1] if (found := judge._transcript(location)) else None for location in locations]
            if not any(t and o.claimed_sha[:16] in t and o.new_sha[:16] not in t for t in texts):
                problems.append(f"{name}: no transcript of the claimed version in S3 ({texts})")
            for location, text in zip(locations, texts, strict=True):
                if text is not None and not judge._exists(summary_location(location)):
                    problems.append(f"{name}: the claimed version's transcript has no summary")
                if text and judge.succeeded[text_key(text)] != 1:
                    problems.append(f"{name}: {judge.succeeded[text_key(text)]} summaries of the claimed version")
            if self.after_first.get(o.uri) != ("summarized", o.claimed_etag):
                problems.append(f"{name}: after run 1 its record was {self.after_first.get(o.uri)}, not summarized")
        return problems


SUBMIT_AGAIN = """
import json, sys, time
from pathlib import Path
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
go, out = Path(sys.argv[1]), Path(sys.argv[2])
(go.parent / "ready").touch()
while not go.exists():
    time.sleep(0.01)
task = json.loads(go.read_text())
started = time.time()
done = SubmitTranscriptionBatchOperator(task_id="submit", aws_conn_id="aws_default", **task["operator"]).execute(
    {"run_id": task["run_id"]}
)
out.write_text(json.dumps({**done, "started": started, "ended": time.time()}))
"""
"""The second submitter: the DAG's submit operator run by hand (its ``execute``) in a process of its
own, on a batch and run named in the file ``argv[1]`` once that file exists; its result to ``argv[2]``.
It touches ``ready`` beside ``argv[1]`` once its imports are done."""


class TwoSubmitters:
    """Run 1's submitting task and a second copy of it (the operator's ``execute`` on the same batch
    manifest and run id, in a process of its own, its imports done before run 1 starts) submit one
    batch at once. Once the endpoint has accepted run 1's first file it is held, so run 1 waits
    within its first group of files; the second is let go and, finding that group marked, marks a
    group of the rest; then the endpoint is released and both invoke side by side, while every moto
    call takes 100 ms longer (its latency switch: the submitters overlap)."""

    LATENCY_MS = 100

    def __init__(self) -> None:
        self.report: dict[str, Any] | None = None
        self.accepted_at_start = 0

    def drive(self, stack: Stack, api: AirflowApi, bucket_uri: str) -> list[str]:
        self.report = None
        work = Path(tempfile.mkdtemp(prefix="second-submitter-", dir=stack.settings.state_dir))
        go, out = work / "go.json", work / "report.json"
        latency = f"{stack.settings.url(stack.settings.ports.moto)}/_emulator/latency?ms="
        with open(stack.processes.logs / "second-submitter.log", "ab") as log:
            second = subprocess.Popen(
                [sys.executable, "-c", SUBMIT_AGAIN, str(go), str(out)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=stack.processes.env,
                cwd=Path(__file__).resolve().parents[1],
            )
        urllib.request.urlopen(urllib.request.Request(latency + str(self.LATENCY_MS), method="POST"), timeout=10)
        try:
            _until("the second submitter ready", lambda: (work / "ready").exists() or second.poll() is not None)
            run_id = api.trigger({"bucket_uri": bucket_uri})
            _until("run 1's first file accepted", lambda: _accepted(stack) >= 1, every=0.01)
            with _endpoint_held(stack):
                self.accepted_at_start = len(Witnesses.load(stack.settings.witness_dir).accepted)
                config = PipelineConfig.from_mapping(stack.settings.variables)
                s3 = stack.aws_session().client("s3")
                prefix = config.run_prefix(run_id).removeprefix(f"s3://{config.output_bucket}/") + "batches/"
                (manifest,) = s3.list_objects_v2(Bucket=config.output_bucket, Prefix=prefix)["Contents"]
                batch = {"label": "batch 1 of 1", "manifest": f"s3://{config.output_bucket}/{manifest['Key']}"}
                operator = {
                    "batch": {**batch, "files": _files(stack)},
                    "endpoint_name": config.endpoint_name,
                    "status_table": config.status_table,
                    "request_ttl_seconds": config.request_ttl_seconds,
                    "invocation_timeout_seconds": config.invocation_timeout_seconds,
                    "result_window_seconds": config.result_window_seconds,
                    "inputs_path": config.inputs_path,
                }
                (work / "go.tmp").write_text(json.dumps({"run_id": run_id, "operator": operator}))
                (work / "go.tmp").rename(go)  # whole, never half written
                # run 1 marks a group at a time and, held, cannot pass its first: more files marked
                # than one group means the second submitter marked a group of its own
                _until(
                    "the second submitter's marks",
                    lambda: (
                        sum(1 for r in _records(stack) if r.invoking_since) > GROUP_SIZE or second.poll() is not None
                    ),
                    every=0.1,
                )
            second.wait(timeout=300)
        finally:
            if second.poll() is None:
                second.kill()
            urllib.request.urlopen(urllib.request.Request(latency + "0", method="POST"), timeout=10)
        self.report = json.loads(out.read_text()) if out.exists() else None
        return [run_id]

    def check(self, judge: Judge, verdicts: list[FileVerdict]) -> list[str]:
        """The second submitter ran, and invoked files while run 1's task did (the endpoint accepted
        more requests in its time than it sent); each file version was accepted exactly once."""
        if self.report is None:
            return ["the fault did not happen: the second submitter did not report (see logs/second-submitter.log)"]
        problems = []
        files = len(verdicts)
        meanwhile = sum(
            1 for a in judge.witnesses.accepted if self.report["started"] <= a["time"] <= self.report["ended"]
        )
        if not 0 < self.accepted_at_start < files:
            problems.append(f"the fault did not happen: {self.accepted_at_start} of {files} accepted at its start")
        if not self.report["submitted"] or meanwhile <= self.report["submitted"]:
            problems.append(
                f"the fault did not happen: the second submitter invoked {self.report['submitted']} files, "
                f"{meanwhile} were accepted meanwhile"
            )
        if twice := [f"{v.uri} ({v.accepted})" for v in verdicts if v.accepted != 1]:
            problems.append(f"files not accepted exactly once: {twice[:5]}")
        return problems


OUTAGE_SECONDS = 7
"""The row's ``summary_retry_seconds``: the hour of retries compressed to 7 s of pauses (the
least the setting takes), the same 7 retries with the same shape."""
ELSEWHERE = "faults-elsewhere/"
"""The prefix the later run lists: none of the row's files are under it."""


class BedrockOutage:
    """Bedrock throttles every request for the whole of run 1: its summarising task tries, backs
    off and retries (the connection's one botocore attempt, so each try fails in a moment) until
    its retries are spent, and run 1 ends with its transcripts waiting. Then Bedrock answers again
    and run 2, over a prefix that holds none of the row's files (one other file), summarises them."""

    def __init__(self) -> None:
        self.first_ended = 0.0
        self.summaries_after_first: list[str] = []
        self.tries: dict[str, Any] = {}
        self.listed = ""

    def drive(self, stack: Stack, api: AirflowApi, bucket_uri: str) -> list[str]:
        bedrock_fault(stack, "throttle", 900)
        first = api.trigger({"bucket_uri": bucket_uri})
        api.wait_for_run(first, timeout=300)
        self.first_ended = time.time()
        self.tries = _summarise_task(api, first)
        s3 = stack.aws_session().client("s3")
        listed = s3.list_objects_v2(Bucket=PipelineConfig().output_bucket).get("Contents", [])
        self.summaries_after_first = [o["Key"] for o in listed if o["Key"].endswith(".summary.json")]
        bedrock_fault(stack, "throttle", 0)
        s3.put_object(Bucket=BUCKET, Key=f"{ELSEWHERE}other.wav", Body=AUDIO + b"elsewhere")
        self.listed = f"s3://{BUCKET}/{ELSEWHERE}"
        return [first, api.trigger({"bucket_uri": self.listed})]

    def check(self, judge: Judge, verdicts: list[FileVerdict]) -> list[str]:
        """Run 1's summarising task spent its 7 retries (8 tries) and was skipped, not failed; Bedrock
        throttled its requests for at least the setting's pauses and answered none; no summary was in
        S3 when run 1 ended; run 2, listing another prefix, had each transcript summarised once
        (``broken`` counts twice and lost)."""
        problems = []
        if (self.tries.get("try_number"), self.tries.get("state")) != (RETRIES + 1, "skipped"):
            problems.append(f"run 1's summarising task: try {self.tries.get('try_number')}, {self.tries.get('state')}")
        during = [r for r in judge.witnesses.bedrock_requests if r["time"] <= self.first_ended]
        throttled = [r["time"] for r in during if r["outcome"] == "ThrottlingException"]
        if [r for r in during if r["outcome"] == "success"] or not throttled:
            problems.append(f"the fault did not happen: Bedrock's answers during run 1: {during[:3]}")
        elif max(throttled) - min(throttled) < OUTAGE_SECONDS:
            problems.append(f"run 1 retried for {max(throttled) - min(throttled):.1f} s, under {OUTAGE_SECONDS} s")
        if self.summaries_after_first:
            problems.append(f"summaries in S3 when run 1 ended: {self.summaries_after_first[:3]}")
        if any(v.uri.startswith(self.listed) for v in verdicts) or not self.listed:
            problems.append(f"run 2 listed {self.listed!r}, a prefix of the row's own files")
        return problems


def _driven(fault: OverwriteWhileQueued | TwoSubmitters | BedrockOutage) -> dict[str, Any]:
    """A row's ``drive`` and ``check`` from one object, which keeps what the first saw for the second."""
    return {"drive": fault.drive, "check": fault.check}


SCENARIOS = [
    Scenario("duplicated notifications (30%)", _plain(20), emulator_flags=("--fault-duplicate-notifications", "0.3")),
    Scenario(
        "lost notifications (30%), settled from S3", _plain(20), emulator_flags=("--fault-drop-notifications", "0.3")
    ),
    Scenario("unknown inference id and a non-JSON message", _plain(10), during=publish_strangers),
    Scenario(
        "model fails on one file", {**_plain(9), "bad.wav": AUDIO + FAIL_MARKER.encode()}, expected_failed={"bad.wav"}
    ),
    Scenario(
        "lost notifications (30%) on a busy shared queue, settled from S3",
        _plain(20),
        emulator_flags=("--fault-drop-notifications", "0.3"),
        during=keep_the_queue_busy,
    ),
    Scenario(
        "SageMaker-async emulator restarted mid-run",
        _plain(30),
        during=restart_emulator,
        variables=SHORT_WINDOW,
        may_cut_a_submission=True,
    ),
    Scenario(
        "six kinds of wrong-typed notification, three of each, on the success topic",
        _plain(10),
        during=publish_wrong_field_types,
    ),
    Scenario("SQS answering 5xx for 30 s", _plain(20), during=sqs_outage(30), service_seconds=3.0),
    Scenario(
        "the triggerer killed (SIGKILL) and restarted mid-run",
        _plain(20),
        during=restart_triggerer,
        service_seconds=3.0,
    ),
    Scenario(
        "two runs over one prefix at once, Bedrock throttling 40% of calls",
        _plain(30),
        runs=2,
        bedrock_flags=("--fault-throttle-rate", "0.4"),
    ),
    Scenario(
        "the scheduler killed between the last transcription and report_run, then a new run",
        _plain(20),
        variables=SHORT_WINDOW,
        drive=kill_scheduler_before_report,
    ),
    Scenario(
        "a task process killed halfway through submitting",
        _plain(60),
        variables=SHORT_WINDOW,
        drive=kill_submit_task_midway,
        service_seconds=0.2,
        may_cut_a_submission=True,
        alone=True,
    ),
    Scenario(
        "a run marked failed by hand mid-flight, then a new run over the prefix",
        _plain(30),
        variables=SHORT_WINDOW,
        drive=mark_failed_mid_flight,
        service_seconds=0.5,
    ),
    Scenario("Bedrock throttling on 40% of calls", _plain(10), bedrock_flags=("--fault-throttle-rate", "0.4")),
    Scenario(
        "summaries throttled past their retries; a second run takes the files during the first's retry delay",
        _plain(20),
        drive=take_over_a_throttled_summary,
        extra_env=ONE_RETRY,
        variables={"summary_retry_seconds": str(TAKEOVER_RETRY_SECONDS)},
    ),
    Scenario(
        "Bedrock rejects one file's summary, one file over the model's duration cap (real speech recognition)",
        {**_samples(), "silence-over-the-cap.wav": silent_wav(45, rate=4000)},
        model_backend="whisper",
        bedrock_flags=("--fault-fail-marker", "photosynthesis"),
        expected_summary_errors={"lecture-photosynthesis.ogg"},
        expected_failed={"silence-over-the-cap.wav"},
        failure_reasons={"silence-over-the-cap.wav": f"{MAX_AUDIO_SECONDS_VARIABLE}=30"},
        extra_env=SHORT_CAP,
        expected_run_state="failed",
    ),
    Scenario(
        "keys with spaces, unicode and the longest that can be sent; a zero-byte object",
        {
            "with space.wav": AUDIO + b"1",
            "ünïcödé-日本.wav": AUDIO + b"2",
            LONGEST_KEY: AUDIO + b"3",
            OVER_LONG_KEY: AUDIO + b"4",
            "empty.wav": b"",
        },
        expected_skipped={OVER_LONG_KEY, "empty.wav"},
    ),
    Scenario(
        "an object overwritten while queued at the endpoint, then a new run over the prefix",
        _plain(24),
        **_driven(OverwriteWhileQueued()),
        service_seconds=5.0,
    ),
    Scenario(
        "two submit tasks over one claim at once",
        _plain(60),
        **_driven(TwoSubmitters()),
        service_seconds=0.2,
    ),
    Scenario(
        "Bedrock throttling through all of run 1's summary retries (an hour compressed to 7 s), then a run "
        "over another prefix",
        _plain(4),
        **_driven(BedrockOutage()),
        variables={"summary_retry_seconds": str(OUTAGE_SECONDS)},
        extra_env=ONE_RETRY,
    ),
]


class Matrix:
    """Rows running in the background, each on a fresh stack of its own under ``state_root``: first
    those marked ``alone``, one at a time, then the others ``parallel`` at a time (a row mostly
    waits on its pipeline, so several share two cores well)."""

    def __init__(self, scenarios: list[Scenario], parallel: int, state_root: Path) -> None:
        self.rows: dict[str, Future[Row]] = {s.name: Future() for s in scenarios}
        self._thread = threading.Thread(
            target=self._run, args=(scenarios, parallel, state_root), name="fault-matrix", daemon=True
        )
        self._thread.start()

    def row(self, name: str) -> Row:
        """The row of the scenario ``name`` once it has run (its error if it could not)."""
        return self.rows[name].result()

    def close(self) -> None:
        """Cancel the rows not started yet, and wait for those running (their stacks go down)."""
        for future in self.rows.values():
            future.cancel()
        self._thread.join()

    def _run(self, scenarios: list[Scenario], parallel: int, state_root: Path) -> None:
        numbered = list(enumerate(scenarios))
        for index, scenario in numbered:
            if scenario.alone:
                self._settle(scenario, state_root / f"row-{index:02d}")
        with ThreadPoolExecutor(parallel, thread_name_prefix="fault-row") as pool:
            for index, scenario in numbered:
                if not scenario.alone:
                    pool.submit(self._settle, scenario, state_root / f"row-{index:02d}")

    def _settle(self, scenario: Scenario, state_dir: Path) -> None:
        future = self.rows[scenario.name]
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(run(scenario, state_dir=state_dir))
            except BaseException as err:  # handed to whoever waits on the row
                future.set_exception(err)


def run(scenario: Scenario, timeout: float = 900, state_dir: Path | None = None) -> Row:
    """Run one scenario on a fresh stack; a run still going after ``timeout`` seconds counts as ``timeout``.
    The stack's state (logs, journals) stays in ``state_dir``, a new temporary directory if none is given."""
    started = time.monotonic()
    settings = Settings(
        state_dir=state_dir or Path(tempfile.mkdtemp(prefix="faults-")),
        ports=Ports.free(),
        nightly=False,  # the row triggers its own runs
        variables={**Settings().variables, **QUICK_RECONCILE, **scenario.variables},
        model_backend=scenario.model_backend,
        emulator_flags=scenario.emulator_flags,
        bedrock_flags=scenario.bedrock_flags,
        extra_env={
            "BENCHMARK_SERVICE_SECONDS": str(scenario.service_seconds),
            "MODEL_FAULT_FAIL_MARKER": FAIL_MARKER,
            **scenario.extra_env,
        },
    )
    stack = Stack(settings)
    try:
        stack.up()
        session = stack.aws_session()
        s3 = session.client("s3")
        for key, body in scenario.files.items():
            s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=body)
        api = AirflowApi(settings.url(settings.ports.airflow))
        api.wait_for_dag()
        bucket_uri = _uri("")
        if scenario.drive:
            run_ids = scenario.drive(stack, api, bucket_uri)
        else:
            run_ids = [api.trigger({"bucket_uri": bucket_uri}) for _ in range(scenario.runs)]
        fault = FaultThread(scenario.during, stack) if scenario.during else None
        ends = time.monotonic() + timeout
        states = [_wait(api, r, ends) for r in run_ids]
        fault_missed = fault.missed() if fault else None  # before the stack goes down: it may start a process
        audio = [k for k in scenario.files if k not in scenario.expected_skipped]
        judge = Judge(session, settings.witness_dir)
        verdicts = judge.judge([_uri(k) for k in audio])
        seconds = time.monotonic() - started
        row = Row.of(scenario.name, Tally.of(verdicts), "/".join(states), seconds, trigger_errors(settings))
        row.fault_missed = fault_missed
        row.skip_reasons = judge.skip_reasons([_uri(k) for k in sorted(scenario.expected_skipped)])
        row.problems = scenario.check(judge, verdicts) if scenario.check else []
        return row
    finally:
        stack.down()


class FaultThread(threading.Thread):
    """Runs a scenario's ``during`` fault beside the runs, keeping what became of it."""

    def __init__(self, during: Callable[[Stack], None], stack: Stack) -> None:
        super().__init__(name="fault", daemon=True)
        self.during, self.stack = during, stack
        self.error: str | None = None
        self.start()

    def run(self) -> None:
        try:
            self.during(self.stack)
        except Exception as err:  # reported by missed(): the row did not get its fault
            self.error = f"{type(err).__name__}: {err}"

    def missed(self, timeout: float = 120) -> str | None:
        """Once the runs have ended: why the fault did not run to its end, or None when it did."""
        self.join(timeout)
        if self.is_alive():
            return f"still running {timeout:g} s after the runs ended"
        return self.error


def trigger_errors(settings: Settings) -> int:
    """Error events fired by triggers, as the triggerer logged them for each task instance."""
    logs = (settings.airflow_home / "logs").rglob("*.log.trigger.*.log")
    return sum(
        1
        for path in logs
        for line in path.read_text(errors="replace").splitlines()
        if "Trigger fired event" in line and "'status': 'error'" in line
    )


def _wait(api: AirflowApi, run_id: str, ends: float) -> str:
    try:
        return api.wait_for_run(run_id, timeout=max(0.0, ends - time.monotonic()))
    except TimeoutError:
        return "timeout"


def markdown(rows: list[Row]) -> str:
    out = [
        "| scenario | files in | summarized | failed with reason | completed, summary error | accepted | model calls "
        "(re-runs) | summaries | lost | processed twice | run states | trigger errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r.scenario} | {r.files_in} | {r.summarized} | {r.failed_with_reason} | {r.summary_errors} | "
        f"{r.accepted} | {r.model_calls} ({r.reruns}) | {r.summaries} | {r.lost} | {r.processed_twice} | {r.runs} | "
        f"{r.trigger_errors} |"
        for r in rows
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", metavar="TEXT", help="run the scenarios whose name contains TEXT")
    parser.add_argument(
        "--parallel", type=int, default=1, help="rows at once, each on its own stack (those marked alone run alone)"
    )
    args = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if not args.only or any(text in s.name for text in args.only)]
    matrix = Matrix(chosen, args.parallel, Path(tempfile.mkdtemp(prefix="faults-")))
    rows: list[Row] = []
    failures: list[str] = []
    try:
        for scenario in chosen:
            row = matrix.row(scenario.name)
            rows.append(row)
            print(row, flush=True)
            failures += [f"{scenario.name}: {problem}" for problem in broken(scenario, row)]
    finally:
        matrix.close()
    print(markdown(rows))
    print("\n".join(failures) or "every row as expected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
