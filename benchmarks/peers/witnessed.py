"""What the witnesses say about one design's files: the endpoint's time, the calls, lost and processed twice.

Every design runs on its own prefix of the same bucket, so the journals of the SageMaker-async
emulator, the model server and the Bedrock emulator (``local.witness``) and the objects in S3
tell its files apart; no design's own status table is read. A file is

- **done** when a summary object stands next to one of its transcripts in S3 and Bedrock
  answered a summary request for its transcript's text;
- **lost** otherwise;
- **processed twice** when the model was called for it on behalf of more than one accepted
  request, or Bedrock answered more than one summary request for its transcript.

The fixed-latency model's transcript names its input's bytes, and the benchmark's files each
hold their own key (``distinct`` fill), so each file has a transcript of its own.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from audio_pipeline.summaries import summary_location
from local.witness import MODEL_SERVER, Witnesses, read_journal, text_key


def endpoint_time(witness_dir: Path, prefix_uri: str, concurrency: int) -> dict[str, float]:
    """The endpoint's work for the prefix: from its first accepted request to its last model answer,
    the model's busy seconds in that time and the utilisation (busy / (concurrency x wall))."""
    witnesses = Witnesses.load(witness_dir)  # input locations of copies named by the files copied
    accepted = [a["time"] for a in witnesses.accepted if _of(a, prefix_uri)]
    started = {c["call_id"]: c["time"] for c in witnesses.model_calls if _of(c, prefix_uri)}
    events = read_journal(witness_dir / MODEL_SERVER)
    ended = {e["call_id"]: e["time"] for e in events if e["event"] == "outcome" and e["call_id"] in started}
    if not accepted or not ended:
        return {"wall_s": 0.0, "busy_s": 0.0, "utilisation": 0.0}
    wall = max(ended.values()) - min(accepted)
    busy = sum(ended[c] - started[c] for c in ended)
    return {"wall_s": round(wall, 1), "busy_s": round(busy, 1), "utilisation": round(busy / (concurrency * wall), 3)}


def _of(event: dict[str, Any], prefix_uri: str) -> bool:
    return (event.get("input_location") or "").startswith(prefix_uri)


def judge(witness_dir: Path, s3: Any, uris: list[str]) -> dict[str, Any]:
    """Files done, lost and processed twice, and the emulators' calls for them by operation."""
    witnesses = Witnesses.load(witness_dir)
    wanted = set(uris)
    outputs: dict[str, list[str]] = defaultdict(list)
    for a in witnesses.accepted:
        if a.get("input_location") in wanted:
            outputs[a["input_location"]].append(a["output_location"])
    requests: dict[str, set[str]] = defaultdict(set)
    for call in witnesses.model_calls:
        if call["input_location"] in wanted:
            requests[call["input_location"]].add(call["request_id"])
    answered = witnesses.summaries_succeeded()
    keys: dict[str, str | None] = {uri: _transcript_key(s3, outputs[uri]) for uri in uris}
    mine = {k for k in keys.values() if k}
    lost, twice, examples = 0, 0, []
    for uri in uris:
        summaries = answered.get(keys[uri] or "", 0)
        done = bool(summaries) and any(_exists(s3, summary_location(out)) for out in outputs[uri])
        doubled = len(requests[uri]) > 1 or summaries > 1
        lost += not done
        twice += doubled
        if (not done or doubled) and len(examples) < 3:
            examples.append(f"{uri}: {len(requests[uri])} requests, {summaries} summaries, done={done}")
    bedrock = Counter(
        f"bedrock-runtime:{r['action'].capitalize()}" for r in witnesses.bedrock_requests if r["text_key"] in mine
    )
    return {
        "files": len(uris),
        "lost": lost,
        "processed_twice": twice,
        "examples": examples,
        "emulator_calls": {
            "sagemaker-runtime:InvokeEndpointAsync": sum(len(o) for o in outputs.values()),
            **dict(bedrock),
        },
    }


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _transcript_key(s3: Any, outputs: list[str]) -> str | None:
    """The Bedrock journal's name for the file's transcript (read from its first result in S3)."""
    for out in outputs:
        try:
            body = s3.get_object(Bucket=_split(out)[0], Key=_split(out)[1])["Body"].read()
        except ClientError:
            continue
        return text_key(json.loads(body)["text"])
    return None


def _exists(s3: Any, uri: str) -> bool:
    try:
        s3.head_object(Bucket=_split(uri)[0], Key=_split(uri)[1])
    except ClientError:
        return False
    return True
