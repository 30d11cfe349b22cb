"""A run's report, written as its files are settled: one line per file for the task log, and
the run manifest's JSON, so that a run of any size holds one chunk of its files at a time, each
file with its work and estimated cost (:mod:`audio_pipeline.costs`); and the wording of files
counted by status, which the batch wait's logs share."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import IO

from audio_pipeline.costs import FileCost, Rates, RunCosts
from audio_pipeline.ledger import FileRecord, Status, inference_id_for, utcnow
from audio_pipeline.work import FileWork


def describe_counts(counts: Mapping[str, int]) -> str:
    """``{"completed": 2, "failed": 1}`` -> ``"2 completed, 1 failed"`` (empty for no counts)."""
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def file_line(f: FileRecord) -> str:
    """One file of the run on one line: status, where its transcript and summary are, the
    summary's first sentence, or why it has none."""
    parts = [f"{f.status:<10} {f.uri}"]
    if f.status in (Status.COMPLETED, Status.SUMMARIZED) and f.output_location:
        parts.append(f"transcript {f.output_location}")  # a failed file's output location holds nothing
    if f.summary_location:
        parts.append(f"summary {f.summary_location}")
    if f.failure_reason:
        parts.append(f"reason: {f.failure_reason}")
    elif f.skip_reason:
        parts.append(f"reason: {f.skip_reason}")
    elif f.summary_error:
        parts.append(f"summary error: {f.summary_error}")
    if f.summary_opening:
        parts.append(f'"{f.summary_opening}"')
    return "  ".join(parts)


def transcribed_by(f: FileRecord, run_id: str) -> bool:
    """Whether ``run_id``'s own claim sent the file to the endpoint (a file it took only for its summary
    was transcribed under an earlier run's claim, whose report counts the endpoint's work)."""
    return bool(f.etag and f.inference_id == inference_id_for(f.uri, f.etag, run_id))


class RunReport:
    """Counts a run's files and sums their work and estimated cost as they come, and writes the run
    manifest to ``out`` as it goes.

    The manifest is one JSON object: ``run_id``, ``bucket_uri``, ``files`` (one object per file,
    :meth:`FileRecord.report` with :meth:`FileCost.report`, in the order added), then ``counts`` (files
    by status), ``abandoned``, the run's ``work``, ``estimated_cost_usd`` and the ``estimate``'s prices
    and sources (:meth:`RunCosts.totals`), and ``written_at``.

    :param out: a binary file the manifest is written to; :meth:`close` ends the JSON
    :param rates: the prices of the run's instance type and model
    """

    def __init__(self, run_id: str, bucket_uri: str | None, out: IO[bytes], rates: Rates) -> None:
        self.run_id, self.bucket_uri, self.out = run_id, bucket_uri, out
        self.counts: Counter[str] = Counter()
        self.abandoned = 0
        self.costs = RunCosts(rates)
        head = json.dumps({"run_id": run_id, "bucket_uri": bucket_uri})
        self._write(head[:-1] + ', "files": [')

    def add(
        self, files: Sequence[FileRecord], abandoned: int = 0, read: Mapping[str, FileWork] | None = None
    ) -> list[str]:
        """Add settled files (``abandoned`` of them failed as still in flight at the run's end), with the
        figures ``read`` from their transcripts where none were recorded; returns their log lines."""
        lines = []
        costs = []
        for f in files:
            work = f.work.combined(read.get(f.uri, FileWork())) if read else f.work
            cost = FileCost.of(self.costs.rates, work, transcribed_by(f, self.run_id))
            self._write(("\n" if not self.counts.total() else ",\n") + json.dumps({**f.report(), **cost.report()}))
            self.counts[f.status.value] += 1
            described = cost.describe()
            lines.append(file_line(f) + (f"  [{described}]" if described else ""))
            costs.append(cost)
        self.costs.add(costs)
        self.abandoned += abandoned
        return lines

    def close(self) -> list[str]:
        """End the manifest; returns the run's summary lines (its counts, what was abandoned).
        :meth:`RunCosts.lines` of :attr:`costs` are its work and estimated cost."""
        tail = {"counts": dict(self.counts), "abandoned": self.abandoned, **self.costs.totals(), "written_at": utcnow()}
        self._write("\n], " + json.dumps(tail)[1:] + "\n")
        counts = describe_counts(self.counts) or "no files"
        lines = [f"run {self.run_id} over {self.bucket_uri or '(no bucket URI)'}: {counts}"]
        if self.abandoned:
            lines.append(f"{self.abandoned} files were still in flight when the run ended and are now failed")
        return lines

    def _write(self, text: str) -> None:
        self.out.write(text.encode())
