"""A file's and a run's estimated cost, from the price table a user edits without a code release
(``include/prices.json``, deployed with the DAGs like the prompt templates).

An **estimate**, not a bill: the endpoint's share of a file is its instance's price per hour times
the seconds the model server spent on it, divided by the requests it serves at once (which share
the instance); Bedrock's share is the model's price per 1,000 input and output tokens times the
tokens Converse reported. Neither counts an instance's idle or start-up time, S3, DynamoDB, SQS
or MWAA (docs/deploy.md, "What a first deploy costs", prices those).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio_pipeline.config import UnusableInputError
from audio_pipeline.work import SOURCES, FileWork

PRICES_FILE = "prices.json"
ESTIMATE = "an estimate, not a bill"


@dataclass(frozen=True)
class Rates:
    """The prices that apply to one run: its endpoint's instance type and its Bedrock model, as the
    price table gives them (None: the table has no price for it, and that share is not estimated)."""

    instance_type: str
    usd_per_hour: float | None
    model_id: str
    usd_per_1k_input_tokens: float | None
    usd_per_1k_output_tokens: float | None
    table: str
    """Where the prices come from: the file, its date and region."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """The price pages the table names, by ``sagemaker_instances`` and ``bedrock_models``."""

    @classmethod
    def load(cls, path: Path, instance_type: str, model_id: str) -> Rates:
        """The rates of ``instance_type`` and ``model_id`` in the price table at ``path``."""
        try:
            doc = json.loads(path.read_text())
            instances, models = doc["sagemaker_instances"], doc["bedrock_models"]
            hourly = instances["usd_per_hour"].get(instance_type)
            tokens = models["usd_per_1k_tokens"].get(model_id) or {}
            table = f"{path.name} as of {doc['as_of']}, {doc['region']}"
            return cls(
                instance_type,
                None if hourly is None else float(hourly),
                model_id,
                None if tokens.get("input") is None else float(tokens["input"]),
                None if tokens.get("output") is None else float(tokens["output"]),
                table,
                {"sagemaker_instances": str(instances["source"]), "bedrock_models": str(models["source"])},
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise UnusableInputError(
                f"the price table {path} is unusable ({type(err).__name__}: {err}): it needs as_of, region, "
                "sagemaker_instances {source, usd_per_hour {type: $}} and bedrock_models {source, "
                "usd_per_1k_tokens {model: {input, output}}}"
            ) from err

    @classmethod
    def unpriced(cls, instance_type: str, model_id: str, why: str) -> Rates:
        """No prices (``why``: the table could not be read): work is counted, no share is estimated."""
        return cls(instance_type, None, model_id, None, None, f"no price table ({why})")

    def endpoint_usd(self, work: FileWork) -> float | None:
        """Instance $/h x processing seconds / 3600 / concurrent requests (1 when not reported)."""
        if self.usd_per_hour is None or work.processing_seconds is None:
            return None
        return self.usd_per_hour * work.processing_seconds / 3600 / (work.concurrent_requests or 1)

    def bedrock_usd(self, work: FileWork) -> float | None:
        """Input tokens / 1000 x $ per 1k input + output tokens / 1000 x $ per 1k output."""
        if work.input_tokens is None and work.output_tokens is None:
            return None
        if self.usd_per_1k_input_tokens is None or self.usd_per_1k_output_tokens is None:
            return None
        return (
            (work.input_tokens or 0) * self.usd_per_1k_input_tokens
            + (work.output_tokens or 0) * self.usd_per_1k_output_tokens
        ) / 1000

    def describe(self) -> dict[str, Any]:
        """The prices used and where each comes from, for the run manifest and its Asset event."""
        return {
            "note": f"estimated costs are {ESTIMATE}: endpoint = instance $/hour x processing_seconds / 3600 / "
            "concurrent_requests; Bedrock = input_tokens / 1000 x $ per 1k input + output_tokens / 1000 x $ per "
            "1k output; instance idle and start-up time, S3, DynamoDB, SQS and MWAA are not counted",
            "price_table": self.table,
            "instance_type": self.instance_type,
            "instance_usd_per_hour": self.usd_per_hour,
            "model_id": self.model_id,
            "usd_per_1k_input_tokens": self.usd_per_1k_input_tokens,
            "usd_per_1k_output_tokens": self.usd_per_1k_output_tokens,
            "sources": {
                **SOURCES,
                "instance_usd_per_hour": f"{self.table} ({self.sources.get('sagemaker_instances', '?')})",
                "usd_per_1k_tokens": f"{self.table} ({self.sources.get('bedrock_models', '?')})",
            },
        }


def _add(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b


@dataclass(frozen=True)
class FileCost:
    """One file's work and estimated cost. ``endpoint_counted`` says whether the endpoint's work is
    this run's: a file this run only summarised was transcribed, and counted, by an earlier run."""

    work: FileWork
    endpoint_counted: bool
    endpoint_usd: float | None
    bedrock_usd: float | None

    @classmethod
    def of(cls, rates: Rates, work: FileWork, endpoint_counted: bool) -> FileCost:
        return cls(
            work, endpoint_counted, rates.endpoint_usd(work) if endpoint_counted else None, rates.bedrock_usd(work)
        )

    @property
    def usd(self) -> float | None:
        return _add(self.endpoint_usd, self.bedrock_usd)

    def report(self) -> dict[str, Any]:
        """The file's ``work`` and ``estimated_cost_usd`` for its manifest entry (empty for no figures)."""
        if not self.work.report():
            return {}
        entry: dict[str, Any] = {"work": self.work.report()}
        if not self.endpoint_counted and self.work.transcribed:
            entry["endpoint_work_counted_by"] = "the run whose claim transcribed it (this run summarised it)"
        cost = {"endpoint": self.endpoint_usd, "bedrock": self.bedrock_usd, "total": self.usd}
        entry["estimated_cost_usd"] = {k: round(v, 6) for k, v in cost.items() if v is not None}
        return entry

    def describe(self) -> str:
        """The file's figures on its report line ("" for none)."""
        w, parts = self.work, []
        if w.audio_seconds is not None:
            parts.append(f"audio {w.audio_seconds:.1f} s")
        if w.processing_seconds is not None:
            parts.append(
                f"endpoint {w.processing_seconds:.2f} s" + ("" if self.endpoint_counted else " (earlier run's)")
            )
        if w.input_tokens is not None or w.output_tokens is not None:
            parts.append(f"tokens {w.input_tokens or 0} in/{w.output_tokens or 0} out")
        if self.usd is not None:
            parts.append(f"~${self.usd:.6f} (estimate)")
        return ", ".join(parts)


@dataclass
class RunCosts:
    """A run's work and estimated cost, summed as its files are reported."""

    rates: Rates
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    endpoint_usd: float = 0.0
    bedrock_usd: float = 0.0
    unpriced: set[str] = field(default_factory=set)
    """Shares with figures but no price in the table (``endpoint``, ``bedrock``)."""

    def add(self, costs: Iterable[FileCost]) -> None:
        for c in costs:
            w = c.work
            if c.endpoint_counted:
                self.audio_seconds += w.audio_seconds or 0.0
                self.processing_seconds += w.processing_seconds or 0.0
                if w.processing_seconds is not None and c.endpoint_usd is None:
                    self.unpriced.add("endpoint")
            self.input_tokens += w.input_tokens or 0
            self.output_tokens += w.output_tokens or 0
            if (w.input_tokens or w.output_tokens) and c.bedrock_usd is None:
                self.unpriced.add("bedrock")
            self.endpoint_usd += c.endpoint_usd or 0.0
            self.bedrock_usd += c.bedrock_usd or 0.0

    @property
    def usd(self) -> float:
        return self.endpoint_usd + self.bedrock_usd

    @property
    def usd_per_audio_hour(self) -> float | None:
        return self.usd / (self.audio_seconds / 3600) if self.audio_seconds else None

    def totals(self) -> dict[str, Any]:
        """The run's ``work`` and ``estimated_cost_usd`` (manifest, Asset event), and the ``estimate``'s
        prices and sources."""
        per_hour = self.usd_per_audio_hour
        return {
            "work": {
                "audio_seconds": round(self.audio_seconds, 3),
                "processing_seconds": round(self.processing_seconds, 3),
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
            },
            "estimated_cost_usd": {
                "endpoint": round(self.endpoint_usd, 6),
                "bedrock": round(self.bedrock_usd, 6),
                "total": round(self.usd, 6),
                "per_audio_hour": None if per_hour is None else round(per_hour, 6),
            },
            "estimate": {**self.rates.describe(), "not_priced": sorted(self.unpriced)},
        }

    def lines(self) -> list[str]:
        """The run's work, its estimated total and the estimated cost of an audio hour, naming the sources."""
        r = self.rates
        hourly = "no price" if r.usd_per_hour is None else f"${r.usd_per_hour:g}/h"
        tokens = (
            "no price"
            if r.usd_per_1k_input_tokens is None or r.usd_per_1k_output_tokens is None
            else f"${r.usd_per_1k_input_tokens:g} per 1k input, ${r.usd_per_1k_output_tokens:g} per 1k output tokens"
        )
        lines = [
            f"work: {self.audio_seconds:.1f} s of audio ({self.audio_seconds / 3600:.3f} h) and "
            f"{self.processing_seconds:.1f} s of endpoint processing (the model server's output), "
            f"{self.input_tokens} input and {self.output_tokens} output Bedrock tokens (Converse's usage)",
            f"estimated cost ({ESTIMATE}): ${self.usd:.4f} = endpoint ${self.endpoint_usd:.4f} ({r.instance_type} at "
            f"{hourly} x processing seconds / concurrent requests) + Bedrock ${self.bedrock_usd:.4f} ({r.model_id} at "
            f"{tokens}); prices from {r.table}",
        ]
        for share in sorted(self.unpriced):
            what = r.instance_type if share == "endpoint" else r.model_id
            lines.append(
                f"{share} share not estimated: {r.table} has no price for {what}; add one to include/{PRICES_FILE}"
            )
        per_hour = self.usd_per_audio_hour
        lines.append(
            "estimated cost per audio hour: "
            + ("unknown (no audio seconds reported)" if per_hour is None else f"${per_hour:.4f} (an estimate)")
        )
        return lines
