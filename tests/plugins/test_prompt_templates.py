"""Prompt templates: the user's copies in the DAG folder's include/prompts/, else the packaged defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_pipeline.config import UnusableInputError
from audio_pipeline.prompt_templates import PLACEHOLDERS, load_prompts, packaged
from audio_pipeline.summaries import Summarizer

DAGS = Path(__file__).resolve().parents[2] / "dags"
INCLUDE = DAGS / "include" / "prompts"


def test_without_a_users_templates_the_packaged_defaults_are_used(tmp_path):
    assert load_prompts() == load_prompts(tmp_path / "absent") == {name: packaged(name) for name in PLACEHOLDERS}


def test_a_users_template_wins_and_the_others_fall_back(tmp_path):
    (tmp_path / "summarize_chunk.txt").write_text("Résumé en français{part} :\n{text}\n", encoding="utf-8")
    prompts = load_prompts(tmp_path)
    assert prompts["summarize_chunk"] == "Résumé en français{part} :\n{text}\n"
    assert prompts["combine"] == packaged("combine") and prompts["summarize_system"] == packaged("summarize_system")


def test_the_summarizer_sends_the_users_template(tmp_path):
    import boto3
    from botocore.stub import ANY, Stubber

    (tmp_path / "summarize_system.txt").write_text("Answer like a pirate, in JSON.")
    (tmp_path / "summarize_chunk.txt").write_text("Summarise this{part}:\n{text}")
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": '{"summary": "Arr.", "key_points": []}'}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
    expected = {
        "modelId": "m",
        "system": [{"text": "Answer like a pirate, in JSON."}],
        "messages": [{"role": "user", "content": [{"text": "Summarise this:\nHello there."}]}],
        "inferenceConfig": ANY,
    }
    with Stubber(client) as stub:
        stub.add_response("converse", answer, expected)
        assert Summarizer(client, "m", prompts=load_prompts(tmp_path)).summarize("Hello there.").summary == "Arr."


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('Answer as {"summary": ...}\n{text}', "unknown placeholders"),
        ("Summarise this{part}.", "no {text} placeholder"),
        ("Summarise {text", "expected '}'"),
    ],
)
def test_a_template_that_cannot_be_filled_is_named(tmp_path, template, message):
    (tmp_path / "summarize_chunk.txt").write_text(template)
    with pytest.raises(UnusableInputError, match=f"prompt template {tmp_path}/summarize_chunk.txt: .*{message}"):
        load_prompts(tmp_path)


def test_the_dag_folder_ships_every_template_and_the_dag_processor_skips_them():
    from airflow.utils.file import find_path_from_directory

    assert load_prompts(INCLUDE) == {name: (INCLUDE / f"{name}.txt").read_text() for name in PLACEHOLDERS}
    seen = [Path(p) for p in find_path_from_directory(DAGS, ".airflowignore")]
    assert DAGS / "audio_transcription.py" in seen
    assert not [p for p in seen if INCLUDE in p.parents], "the DAG processor would read include/"


def test_the_dag_reads_the_templates_beside_it():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dag_module", DAGS / "audio_transcription.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PROMPTS == INCLUDE
