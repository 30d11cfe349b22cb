"""Prompt templates: once, in the project's top-level include/prompts/, read from one directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from audio_pipeline.config import UnusableInputError
from audio_pipeline.prompt_templates import PLACEHOLDERS, load_prompts
from audio_pipeline.summaries import Summarizer
from tests.plugins.conftest import bedrock_hook
from tests.prompts import INCLUDE

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
SHIPPED = INCLUDE / "prompts"


@pytest.fixture
def templates(tmp_path):
    """A copy of the shipped templates, for a test to edit."""
    return Path(shutil.copytree(SHIPPED, tmp_path / "prompts"))


def test_every_template_is_read_from_the_directory_and_each_is_fillable():
    prompts = load_prompts(SHIPPED)
    assert prompts == {name: (SHIPPED / f"{name}.txt").read_text(encoding="utf-8") for name in PLACEHOLDERS}
    assert "{text}" in prompts["summarize_chunk"] and "{part}" in prompts["summarize_chunk"]
    assert "{text}" in prompts["combine"]


def test_the_templates_exist_once_in_the_project():
    """No packaged copy to drift from the one users edit: the package ships no .txt at all."""
    names = {f"{name}.txt" for name in PLACEHOLDERS}
    copies = []
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in ("cdk.out", "dist")]
        copies += [Path(folder, f).relative_to(REPO).as_posix() for f in files if f in names]
    assert sorted(copies) == sorted(f"include/prompts/{name}" for name in names)
    assert not list((REPO / "plugins").rglob("*.txt"))


@pytest.mark.parametrize("name", list(PLACEHOLDERS))
def test_a_missing_template_is_an_error_naming_the_file(templates, name):
    (templates / f"{name}.txt").unlink()
    with pytest.raises(UnusableInputError, match=f"prompt template {templates}/{name}.txt is missing"):
        load_prompts(templates)


def test_an_absent_directory_is_an_error_naming_where_the_templates_were_looked_for(tmp_path):
    with pytest.raises(UnusableInputError, match=f"prompt template {tmp_path}/absent/summarize_system.txt is missing"):
        load_prompts(tmp_path / "absent")


def test_a_users_edit_is_what_is_read(templates):
    (templates / "summarize_chunk.txt").write_text("Résumé en français{part} :\n{text}\n", encoding="utf-8")
    prompts = load_prompts(templates)
    assert prompts["summarize_chunk"] == "Résumé en français{part} :\n{text}\n"
    assert prompts["combine"] == (SHIPPED / "combine.txt").read_text(encoding="utf-8")


def test_the_summarizer_sends_the_users_template(templates):
    import boto3
    from botocore.stub import ANY, Stubber

    (templates / "summarize_system.txt").write_text("Answer like a pirate, in JSON.")
    (templates / "summarize_chunk.txt").write_text("Summarise this{part}:\n{text}")
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
        assert (
            Summarizer(bedrock_hook(client), "m", prompts=load_prompts(templates)).summarize("Hello there.").summary
            == "Arr."
        )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('Answer as {"summary": ...}\n{text}', "unknown placeholders"),
        ("Summarise this{part}.", "no {text} placeholder"),
        ("Summarise {text", "expected '}'"),
    ],
)
def test_a_template_that_cannot_be_filled_is_named(templates, template, message):
    (templates / "summarize_chunk.txt").write_text(template)
    with pytest.raises(UnusableInputError, match=f"prompt template {templates}/summarize_chunk.txt: .*{message}"):
        load_prompts(templates)


def test_the_dag_processor_skips_include_in_the_dag_folder(tmp_path):
    """On MWAA include/ is deployed inside the DAG folder: .airflowignore keeps the DAG processor out."""
    from airflow.utils.file import find_path_from_directory

    deployed = tmp_path / "dags"
    shutil.copytree(DAGS, deployed, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(INCLUDE, deployed / "include")
    seen = [Path(p) for p in find_path_from_directory(deployed, ".airflowignore")]
    assert deployed / "audio_transcription.py" in seen
    assert not [p for p in seen if deployed / "include" in p.parents], "the DAG processor would read include/"


def load_dag_module(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("dag_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dag_reads_the_templates_beside_its_folder_in_a_checkout():
    """The local stack and docker compose: dags/ and include/ side by side, as in the repository."""
    assert not (DAGS / "include").exists()
    assert load_dag_module(DAGS / "audio_transcription.py").PROMPTS == SHIPPED


def test_the_dag_reads_the_templates_inside_its_folder_as_deployed_to_mwaa(tmp_path):
    deployed = tmp_path / "dags"
    shutil.copytree(DAGS, deployed, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(INCLUDE, deployed / "include")
    prompts = load_dag_module(deployed / "audio_transcription.py").PROMPTS
    assert prompts == deployed / "include" / "prompts"
    assert load_prompts(prompts) == load_prompts(SHIPPED)
