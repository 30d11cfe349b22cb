"""``make soak`` (``python -m benchmarks.soak``): many files, faults drawn at random, invariants checked.

One fresh local stack, ``--files`` recordings (1,000 by default) and the real DAG in the real
Airflow, with faults drawn from the fault matrix's settings by a seeded generator (the
seed is printed; ``--seed`` repeats a soak): duplicated and dropped notifications, Bedrock
throttling, the model failing on some files, Bedrock rejecting one file's summary, the
SageMaker-async emulator killed and restarted mid-run, strangers on the queue, two runs
over the prefix at once, the six kinds of wrong-typed notification, SQS answering 5xx for
10 to 30 s, the triggerer killed (SIGKILL) and restarted; each event is the matrix row's own
function. The runs get ``--minutes`` to finish. Then every file version is judged from the
witnesses (``benchmarks.verdict``): nothing lost, nothing processed twice, the files the
model fails on ``failed`` with a reason, the rejected summary recorded as a summary error.
Exits non-zero when an invariant does not hold.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from benchmarks.faults import (
    FAIL_MARKER,
    SHORT_WINDOW,
    Row,
    Scenario,
    _plain,
    broken,
    publish_strangers,
    publish_wrong_field_types,
    restart_emulator,
    restart_triggerer,
    run,
    sqs_outage,
)
from local.stack.launcher import Stack


@dataclass
class Draw:
    seed: int
    scenario: Scenario
    faults: list[str]
    """What was drawn, in words, for the printout."""


def draw(files: int, seed: int, service_seconds: float = 0.05) -> Draw:
    """The soak's scenario: which faults, at what rates, on which files; the same for the same seed."""
    rng = random.Random(seed)
    bodies = _plain(files, "soak-")
    names = sorted(bodies)
    faults: list[str] = []
    failing = set(rng.sample(names, k=rng.randint(0, max(1, files // 50))))
    for name in failing:
        bodies[name] += FAIL_MARKER.encode()
    faults.append(f"model fails on {len(failing)} files")
    rates = {flag: rng.choice([0.0, 0.1, 0.3]) for flag in ("duplicate", "drop", "throttle")}
    emulator_flags = (
        *("--fault-duplicate-notifications", str(rates["duplicate"])),
        *("--fault-drop-notifications", str(rates["drop"])),
    )
    bedrock_flags: tuple[str, ...] = ("--fault-throttle-rate", str(rates["throttle"]))
    faults += [
        f"{rates['duplicate']:.0%} of notifications duplicated",
        f"{rates['drop']:.0%} dropped",
        f"{rates['throttle']:.0%} of Bedrock requests throttled",
    ]
    rejected: set[str] = set()
    if rng.random() < 0.5:  # Bedrock rejects one transcript: the benchmark model names its input's digest
        name = rng.choice([n for n in names if n not in failing])
        rejected.add(name)
        bedrock_flags += ("--fault-fail-marker", hashlib.sha256(bodies[name]).hexdigest()[:16])
        faults.append(f"Bedrock rejects the summary of {name}")
    events: list[Callable[[Stack], None]] = []
    variables: dict[str, str] = {}
    cut = False
    if rng.random() < 0.5:
        events.append(publish_strangers)
        faults.append("an unknown inference id and a non-JSON message on the queue")
    if rng.random() < 0.5:
        after = rng.randint(1, max(1, files // 2))
        events.append(partial(restart_emulator, after_accepted=after))
        faults.append(f"SageMaker-async emulator killed and restarted after {after} accepted")
        # a kill during an accept leaves a file `submitted` that was perhaps never sent: it fails
        # at the end of its result window (6 h by default), and its batch waits for it
        variables, cut = SHORT_WINDOW, True
    runs = rng.choice([1, 2])
    faults.append(f"{runs} run(s) over the prefix at once")
    # drawn after the faults above, so that a seed draws those as it did before these were added
    if rng.random() < 0.4:
        events.insert(0, publish_wrong_field_types)  # at the start, as the row publishes them
        faults.append("the six kinds of wrong-typed notification, three of each, on the success topic")
    kill_triggerer, outage = rng.random() < 0.4, rng.random() < 0.4
    if outage:
        seconds = rng.randint(10, 30)
        # over before the triggerer is killed: a new triggerer takes the triggers over some 20 s
        # after the kill, so an outage begun with the kill could end before any trigger met it
        events += [sqs_outage(seconds), partial(_pause, seconds)]
        faults.append(f"SQS answering 5xx for {seconds} s once the triggers poll")
    if kill_triggerer:
        events.append(restart_triggerer)
        faults.append(f"the triggerer killed (SIGKILL) and restarted{' after the outage' if outage else ''}")
    scenario = Scenario(
        f"soak (seed {seed})",
        bodies,
        emulator_flags=emulator_flags,
        bedrock_flags=bedrock_flags,
        runs=runs,
        during=partial(_in_turn, events) if events else None,
        expected_failed=failing,
        expected_summary_errors=rejected,
        service_seconds=service_seconds,
        variables=variables,
        may_cut_a_submission=cut,
    )
    return Draw(seed, scenario, faults)


def _in_turn(events: list[Callable[[Stack], None]], stack: Stack) -> None:
    for event in events:
        event(stack)


def _pause(seconds: float, stack: Stack) -> None:
    """Between two events: until the one before has run its course."""
    time.sleep(seconds)


def soak(
    files: int, seed: int, minutes: float, service_seconds: float = 0.05, state_dir: Path | None = None
) -> tuple[Row, list[str]]:
    drawn = draw(files, seed, service_seconds)
    print(f"soak: seed {seed}, {files} files; faults: {'; '.join(drawn.faults)}", flush=True)
    row = run(drawn.scenario, timeout=minutes * 60, state_dir=state_dir)
    print(
        f"soak: seed {seed}: {row.files_in} files in {row.seconds:.0f}s (runs {row.runs}): "
        f"{row.summarized} summarized, {row.failed_with_reason} failed with a reason, "
        f"{row.summary_errors} summary errors; witnesses: {row.accepted} accepted, "
        f"{row.model_calls} model calls ({row.reruns} re-runs), {row.summaries} summaries; "
        f"lost {row.lost}, processed twice {row.processed_twice}",
        flush=True,
    )
    return row, broken(drawn.scenario, row)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="repeat a soak (default: a new random seed)")
    parser.add_argument("--minutes", type=float, default=30, help="how long the runs may take")
    parser.add_argument("--service-seconds", type=float, default=0.05, help="the benchmark model's time per file")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    _, broken = soak(args.files, seed, args.minutes, args.service_seconds)
    for line in broken:
        print(f"soak: seed {seed}: INVARIANT BROKEN: {line}", flush=True)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
