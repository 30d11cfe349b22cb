"""Lost or processed twice, decided per file version (URI + ETag) from outside the pipeline.

The witnesses are the journals of the SageMaker-async emulator, the model server and the
Bedrock emulator (``local.witness``) and the objects in S3; the status table is read only for
the status and reason a file ended with. A file version is

- **summarized**: its transcript and its summary are objects in S3, and its status says
  ``summarized``;
- **failed**: its status says ``failed`` with a reason;
- **summary error**: its transcript is an object in S3, its status says ``completed`` with
  a ``summary_error``;
- **lost**: anything else (in flight, missing, failed without a reason, a status with no
  object behind it, a status about another version, ``skipped``).

A file the endpoint cannot take (empty, a key too long to send) is not judged so: it must be
recorded ``skipped`` with its reason (:meth:`Judge.skip_reasons`).

It was **processed twice** when the model server was called for it on behalf of more than one
accepted InvokeEndpointAsync request, or Bedrock answered more than one request to summarise
its transcript. A model call repeated for one accepted request (the endpoint restarted
while the model worked on it, and ran it again from its journal) is counted apart, as a
re-run: the pipeline asked once. A transcript is known
to Bedrock's journal by the digest of its text, so the files judged together must hold
different recordings (two copies of one recording have one transcript).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from audio_pipeline.config import PipelineConfig
from audio_pipeline.ledger import Ledger, Status
from audio_pipeline.summaries import summary_location
from audio_pipeline.transcripts import TranscriptFormatError, parse_transcript
from local.witness import Witnesses, text_key

OUTCOMES = ("summarized", "failed", "summary_error", "lost")


@dataclass(frozen=True)
class FileVerdict:
    uri: str
    etag: str
    status: str | None
    outcome: str
    """One of OUTCOMES."""
    accepted: int
    """InvokeEndpointAsync requests the endpoint accepted for this URI (any version)."""
    answered: int
    """Of those, the ones whose 202 went out (its caller learned where the result would be)."""
    model_calls: int
    requests: int
    """Accepted requests the model was called for (``model_calls`` minus re-runs of one request)."""
    summaries: int
    """Bedrock requests that succeeded for this version's transcript."""
    reason: str | None = None
    """The failure reason its status gives, when it failed."""

    @property
    def twice(self) -> bool:
        return self.requests > 1 or self.summaries > 1


@dataclass
class Tally:
    files_in: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    twice: int = 0
    accepted: int = 0
    model_calls: int = 0
    reruns: int = 0
    summaries: int = 0
    failed_unanswered: int = 0
    """Failed with a reason, and the endpoint never answered a request for them with its 202 (it
    never accepted one, or a kill cut the request before the answer went out)."""
    examples: list[str] = field(default_factory=list)
    """A few lost or twice file versions, with what the witnesses saw, for the error message."""
    failures: list[str] = field(default_factory=list)
    """A few failed file versions, with their reason and what the witnesses saw."""
    reasons: dict[str, str] = field(default_factory=dict)
    """Every failed file version's reason, by URI."""

    @classmethod
    def of(cls, verdicts: list[FileVerdict]) -> Tally:
        tally = cls(files_in=len(verdicts))
        for v in verdicts:
            tally.outcomes[v.outcome] += 1
            tally.twice += v.twice
            tally.accepted += v.accepted
            tally.model_calls += v.model_calls
            tally.reruns += v.model_calls - v.requests
            tally.summaries += v.summaries
            tally.failed_unanswered += v.outcome == "failed" and not v.answered
            if (v.outcome == "lost" or v.twice) and len(tally.examples) < 5:
                tally.examples.append(
                    f"{v.uri} ({v.outcome}, status {v.status}, {v.model_calls} model calls for {v.requests} requests, "
                    f"{v.summaries} summaries)"
                )
            if v.outcome == "failed":
                tally.reasons[v.uri] = str(v.reason)
            if v.outcome == "failed" and len(tally.failures) < 5:
                tally.failures.append(f"{v.uri} ({v.accepted} accepted, {v.model_calls} model calls): {v.reason}")
        return tally

    @property
    def lost(self) -> int:
        return self.outcomes["lost"]


class Judge:
    """Reads the witnesses of one stack and judges file versions."""

    def __init__(self, session: Any, witness_dir: Path) -> None:
        self.s3 = session.client("s3")
        self.ledger = Ledger(session.client("dynamodb"), PipelineConfig().status_table)
        self.witnesses = Witnesses.load(witness_dir)
        self.succeeded = self.witnesses.summaries_succeeded()
        self._texts: dict[str, tuple[str, str] | None] = {}
        self.sharers = self._versions_per_text()

    def judge(self, uris: list[str]) -> list[FileVerdict]:
        return [self._one(uri) for uri in uris]

    def skip_reasons(self, uris: list[str]) -> dict[str, str | None]:
        """For each of ``uris`` (files the pipeline must not send), the reason its record gives for
        skipping this version of it; None when it is not recorded ``skipped`` with a reason."""
        records = self.ledger.get(uris)
        out: dict[str, str | None] = {}
        for uri in uris:
            bucket, key = _split(uri)
            etag = self.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
            record = records.get(uri)
            if record is None or record.status != Status.SKIPPED or (record.etag or "").strip('"') != etag:
                out[uri] = None
            else:
                out[uri] = record.skip_reason
        return out

    def _one(self, uri: str) -> FileVerdict:
        bucket, key = _split(uri)
        etag = self.s3.head_object(Bucket=bucket, Key=key)["ETag"]
        calls = self.witnesses.calls_of(uri, etag)
        locations = self.witnesses.output_locations({c["inference_id"] for c in calls})
        transcripts = [t for t in map(self._transcript, sorted(locations)) if t is not None]
        summary_stored = any(self._exists(summary_location(location)) for location, _ in transcripts)
        # Bedrock sees text, not files: versions with one transcript (the same clip under two
        # keys) share its successful requests, and only requests beyond one each are extra
        summaries = sum(
            max(0, self.succeeded[key] - self.sharers[key] + 1) for key in {text_key(text) for _, text in transcripts}
        )
        record = self.ledger.get([uri]).get(uri)
        if record is not None and (record.etag or "").strip('"') != etag.strip('"'):
            record = None  # a status about another version of the file says nothing about this one
        status = record.status.value if record else None
        if record and record.status == Status.SUMMARIZED and transcripts and summary_stored:
            outcome = "summarized"
        elif record and record.status == Status.FAILED and record.failure_reason:
            outcome = "failed"
        elif record and record.status == Status.COMPLETED and record.summary_error and transcripts:
            outcome = "summary_error"
        else:
            outcome = "lost"
        ids = [a["request_id"] for a in self.witnesses.accepted if a["input_location"] == uri]
        answered = sum(1 for i in ids if i in self.witnesses.answered)
        requests = len({c["request_id"] or c["call_id"] for c in calls})
        reason = record.failure_reason if record and outcome == "failed" else None
        return FileVerdict(uri, etag, status, outcome, len(ids), answered, len(calls), requests, summaries, reason)

    def _versions_per_text(self) -> Counter[str]:
        """How many witnessed file versions (input location, ETag) have each transcript text."""
        texts: dict[str, set[tuple[str, str | None]]] = {}
        for call in self.witnesses.model_calls:
            version = (call["input_location"], str(call["input_etag"] or "").strip('"'))
            for location in self.witnesses.output_locations({call["inference_id"]}):
                found = self._transcript(location)
                if found is not None:
                    texts.setdefault(text_key(found[1]), set()).add(version)
        return Counter({key: len(versions) for key, versions in texts.items()})

    def _transcript(self, location: str) -> tuple[str, str] | None:
        """(location, transcript text) of an output object in S3, or None when there is none."""
        if location not in self._texts:
            self._texts[location] = self._read_transcript(location)
        return self._texts[location]

    def _read_transcript(self, location: str) -> tuple[str, str] | None:
        bucket, key = _split(location)
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError:
            return None
        try:
            return location, parse_transcript(body)
        except TranscriptFormatError:
            return location, ""

    def _exists(self, location: str) -> bool:
        bucket, key = _split(location)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError:
            return False
        return True


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key
