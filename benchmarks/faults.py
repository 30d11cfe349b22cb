"""``make faults`` (``python -m benchmarks.faults``): the fault matrix on the local stack.

Each scenario runs the real DAG in the real Airflow with faults injected by the emulators'
explicit settings, then counts per file: ``summarized``, ``failed`` with a reason, lost
(anything else: in flight, missing, failed without a reason) and processed twice (an
input the endpoint accepted more than once). Lost and processed twice must be 0. A file
whose transcript is kept while its summary failed (``completed`` with ``summary_error``) is
counted as such, not as lost.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from audio_pipeline.config import PipelineConfig
from audio_pipeline.status import StatusTable
from local.stack.airflow_api import AirflowApi
from local.stack.launcher import Stack
from local.stack.services import Ports, Settings, runtime_service
from tests.moto_server import free_port

BUCKET = "audio-transcription-input"
PREFIX = "faults/"
AUDIO = b"RIFF" + b"\0" * 1020
FAIL_MARKER = "MODEL-FAILS-HERE"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


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
    expected_skipped: set[str] = field(default_factory=set)
    """Keys the listing skips by design, with the reason logged: not files in."""
    expected_summary_errors: set[str] = field(default_factory=set)
    expected_run_state: str = "success"


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

    def ok(self) -> bool:
        return self.lost == 0 and self.processed_twice == 0


LONGEST_KEY = "l" * (1024 - len(f"s3://{BUCKET}/{PREFIX}.wav")) + ".wav"
"""Its s3:// URI is 1,024 characters, the most InvokeEndpointAsync accepts as InputLocation."""
OVER_LONG_KEY = ("k" * 990) + ".wav"
"""A 1,000-byte key: its URI is over 1,024 characters, so AWS would reject it; listing skips it."""


def _plain(n: int, prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{i:03d}.wav": AUDIO for i in range(n)}


def restart_emulator(stack: Stack) -> None:
    """Kill the SageMaker-async emulator once half the files are accepted, then start it again."""
    health = f"{stack.settings.url(stack.settings.ports.sagemaker_runtime)}/_emulator/health"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        endpoints = json.loads(urllib.request.urlopen(health, timeout=10).read())["endpoints"]
        if endpoints and next(iter(endpoints.values()))["accepted"] >= 10:
            break
        time.sleep(0.2)
    service = runtime_service(stack.settings)
    stack.processes.kill(service.name)
    stack.processes.start(service)
    stack.processes.wait_healthy([service])


def _samples() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(SAMPLES.iterdir()) if p.suffix != ".json"}


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


SCENARIOS = [
    Scenario("duplicated notifications (30%)", _plain(20), emulator_flags=("--fault-duplicate-notifications", "0.3")),
    Scenario(
        "lost notifications (30%), settled from S3", _plain(20), emulator_flags=("--fault-drop-notifications", "0.3")
    ),
    Scenario("unknown inference id and a non-JSON message", _plain(10), during=publish_strangers),
    Scenario(
        "model fails on one file", {**_plain(9), "bad.wav": AUDIO + FAIL_MARKER.encode()}, expected_failed={"bad.wav"}
    ),
    Scenario("SageMaker-async emulator restarted mid-run", _plain(30), during=restart_emulator),
    Scenario("two runs over one prefix at once", _plain(30), runs=2),
    Scenario("Bedrock throttling on 40% of calls", _plain(10), bedrock_flags=("--fault-throttle-rate", "0.4")),
    Scenario(
        "Bedrock rejects one file's summary (real speech recognition)",
        _samples(),
        model_backend="whisper",
        bedrock_flags=("--fault-fail-marker", "photosynthesis"),
        expected_summary_errors={"lecture-photosynthesis.ogg"},
        expected_run_state="failed",
    ),
    Scenario(
        "keys with spaces, unicode and 1,000 bytes; a zero-byte object",
        {
            "with space.wav": AUDIO,
            "ünïcödé-日本.wav": AUDIO,
            LONGEST_KEY: AUDIO,
            OVER_LONG_KEY: AUDIO,
            "empty.wav": b"",
        },
        expected_skipped={OVER_LONG_KEY, "empty.wav"},
    ),
]


def run(scenario: Scenario) -> Row:
    settings = Settings(
        state_dir=Path(tempfile.mkdtemp(prefix="faults-")),
        ports=Ports(*(free_port() for _ in range(5))),
        model_backend=scenario.model_backend,
        emulator_flags=scenario.emulator_flags,
        bedrock_flags=scenario.bedrock_flags,
        extra_env={"BENCHMARK_SERVICE_SECONDS": "0.05", "MODEL_FAULT_FAIL_MARKER": FAIL_MARKER},
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
        run_ids = [api.trigger({"bucket_uri": f"s3://{BUCKET}/{PREFIX}"}) for _ in range(scenario.runs)]
        if scenario.during:
            threading.Thread(target=scenario.during, args=(stack,), daemon=True).start()
        states = [api.wait_for_run(r, timeout=900) for r in run_ids]
        table = StatusTable(session.client("dynamodb"), PipelineConfig().status_table)
        audio = [k for k in scenario.files if k not in scenario.expected_skipped]
        items = table.get_many(f"s3://{BUCKET}/{PREFIX}{k}" for k in audio)
        summarized = sum(1 for i in items.values() if i["status"] == "summarized")
        failed = sum(1 for i in items.values() if i["status"] == "failed" and i.get("failure_reason"))
        summary_errors = sum(1 for i in items.values() if i["status"] == "completed" and i.get("summary_error"))
        health = f"{settings.url(settings.ports.sagemaker_runtime)}/_emulator/health"
        endpoints = json.loads(urllib.request.urlopen(health, timeout=10).read())["endpoints"]
        twice = sum(e["duplicate_inputs"] for e in endpoints.values())
        lost = len(audio) - summarized - failed - summary_errors
        return Row(scenario.name, len(audio), summarized, failed, summary_errors, lost, twice, "/".join(states))
    finally:
        stack.down()


def markdown(rows: list[Row]) -> str:
    out = [
        "| scenario | files in | summarized | failed with reason | completed, summary error | lost | processed twice "
        "| run states |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r.scenario} | {r.files_in} | {r.summarized} | {r.failed_with_reason} | {r.summary_errors} | {r.lost} | "
        f"{r.processed_twice} | {r.runs} |"
        for r in rows
    ]
    return "\n".join(out)


def main() -> None:
    rows = []
    for scenario in SCENARIOS:
        row = run(scenario)
        rows.append(row)
        print(row, flush=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
