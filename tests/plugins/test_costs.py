"""A file's and a run's estimated cost from the price table a user edits, with its sources named."""

from __future__ import annotations

import json

import pytest

from audio_pipeline.config import UnusableInputError
from audio_pipeline.costs import FileCost, Rates, RunCosts
from audio_pipeline.work import SOURCES, FileWork

from .conftest import CONFIG, PRICES, RATES

HOUR = FileWork(
    audio_seconds=3600, processing_seconds=180, concurrent_requests=1, input_tokens=20000, output_tokens=6000
)


def test_the_shipped_table_prices_the_default_instance_type_and_model():
    assert RATES.instance_type == CONFIG.endpoint_instance_type == "ml.g4dn.xlarge"
    assert RATES.usd_per_hour == 0.736
    assert (RATES.usd_per_1k_input_tokens, RATES.usd_per_1k_output_tokens) == (0.0011, 0.0055)
    assert RATES.table == "prices.json as of 2026-01, us-east-1"


def test_the_endpoint_share_is_the_instance_price_for_the_processing_time_over_the_requests_sharing_it():
    assert RATES.endpoint_usd(HOUR) == pytest.approx(0.736 * 180 / 3600)
    shared = FileWork(processing_seconds=180, concurrent_requests=4)
    assert RATES.endpoint_usd(shared) == pytest.approx(0.736 * 180 / 3600 / 4)
    assert RATES.endpoint_usd(FileWork(audio_seconds=10)) is None, "no processing seconds: not estimated"


def test_the_bedrock_share_is_the_tokens_at_the_models_prices():
    assert RATES.bedrock_usd(HOUR) == pytest.approx(20 * 0.0011 + 6 * 0.0055)
    assert RATES.bedrock_usd(FileWork(audio_seconds=1)) is None, "no summary: no Bedrock share"


def test_a_file_summarised_only_counts_no_endpoint_work_of_its_own():
    cost = FileCost.of(RATES, HOUR, endpoint_counted=False)
    assert cost.endpoint_usd is None and cost.usd == pytest.approx(RATES.bedrock_usd(HOUR))
    entry = cost.report()
    assert entry["endpoint_work_counted_by"].startswith("the run whose claim transcribed it")
    assert "endpoint 180.00 s (earlier run's)" in cost.describe()
    costs = RunCosts(RATES)
    costs.add([cost])
    assert costs.audio_seconds == 0 and costs.input_tokens == 20000


def test_a_file_entry_and_line_name_its_work_and_estimate():
    cost = FileCost.of(RATES, HOUR, endpoint_counted=True)
    total = 0.736 * 180 / 3600 + 20 * 0.0011 + 6 * 0.0055
    assert cost.report() == {
        "work": HOUR.report(),
        "estimated_cost_usd": {"endpoint": 0.0368, "bedrock": 0.055, "total": round(total, 6)},
    }
    assert cost.describe() == f"audio 3600.0 s, endpoint 180.00 s, tokens 20000 in/6000 out, ~${total:.6f} (estimate)"
    assert FileCost.of(RATES, FileWork(), endpoint_counted=True).report() == {}, "a file without work: no entry"


def test_a_runs_totals_lines_and_sources():
    costs = RunCosts(RATES)
    costs.add(
        [FileCost.of(RATES, HOUR, True), FileCost.of(RATES, FileWork(audio_seconds=1800, processing_seconds=90), True)]
    )
    totals = costs.totals()
    assert totals["work"] == {
        "audio_seconds": 5400.0,
        "processing_seconds": 270.0,
        "input_tokens": 20000,
        "output_tokens": 6000,
    }
    usd = 0.736 * 270 / 3600 + 0.055
    assert totals["estimated_cost_usd"]["total"] == pytest.approx(usd, abs=1e-6)
    assert totals["estimated_cost_usd"]["per_audio_hour"] == pytest.approx(usd / 1.5, abs=1e-6)
    estimate = totals["estimate"]
    assert "an estimate, not a bill" in estimate["note"] and estimate["not_priced"] == []
    assert estimate["price_table"] == "prices.json as of 2026-01, us-east-1"
    assert set(SOURCES) <= set(estimate["sources"])
    assert "aws.amazon.com/sagemaker/pricing" in estimate["sources"]["instance_usd_per_hour"]
    assert "aws.amazon.com/bedrock/pricing" in estimate["sources"]["usd_per_1k_tokens"]
    *_, work, total, per_hour = costs.lines()
    assert work.startswith("work: 5400.0 s of audio (1.500 h) and 270.0 s of endpoint processing (the model server's")
    assert "Converse's usage" in work
    assert total.startswith(f"estimated cost (an estimate, not a bill): ${usd:.4f} = endpoint $0.0552 (ml.g4dn.xlarge")
    assert total.endswith("prices from prices.json as of 2026-01, us-east-1")
    assert per_hour == f"estimated cost per audio hour: ${usd / 1.5:.4f} (an estimate)"


def test_a_price_the_table_lacks_is_said_not_guessed(tmp_path):
    rates = Rates.load(PRICES, "ml.p5.48xlarge", "some.other-model")
    costs = RunCosts(rates)
    costs.add([FileCost.of(rates, HOUR, True)])
    assert costs.usd == 0 and costs.totals()["estimate"]["not_priced"] == ["bedrock", "endpoint"]
    lines = costs.lines()
    assert (
        "bedrock share not estimated: prices.json as of 2026-01, us-east-1 has no price for some.other-model"
        in lines[2]
    )
    assert "endpoint share not estimated" in lines[3] and "ml.p5.48xlarge" in lines[3]
    assert RunCosts(RATES).lines()[-1] == "estimated cost per audio hour: unknown (no audio seconds reported)"


def test_an_edited_table_is_read_and_a_broken_one_named(tmp_path):
    doc = json.loads(PRICES.read_text())
    doc["sagemaker_instances"]["usd_per_hour"]["ml.g4dn.xlarge"] = 0.5
    edited = tmp_path / "prices.json"
    edited.write_text(json.dumps(doc))
    assert Rates.load(edited, "ml.g4dn.xlarge", CONFIG.bedrock_model_id).usd_per_hour == 0.5
    del doc["as_of"]
    edited.write_text(json.dumps(doc))
    with pytest.raises(UnusableInputError, match="price table .*prices.json is unusable.*as_of"):
        Rates.load(edited, "ml.g4dn.xlarge", CONFIG.bedrock_model_id)
    with pytest.raises(UnusableInputError, match="unusable"):
        Rates.load(tmp_path / "missing.json", "ml.g4dn.xlarge", CONFIG.bedrock_model_id)
