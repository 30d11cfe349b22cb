from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from infra.plugins_zip import build

REPO = Path(__file__).resolve().parents[2]


def test_dockerfile_runs_the_model_server_with_the_parakeet_backend():
    lines = [line.strip() for line in (REPO / "infra/container/Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    base = next(line for line in instructions if line.startswith("FROM "))
    image, _, tag = base.split()[1].partition(":")
    assert "nemo" in image and tag and tag != "latest", "a NeMo GPU base image pinned by tag"
    assert "EXPOSE 8080" in instructions
    assert 'ENTRYPOINT ["python", "-m", "model_server"]' in instructions and 'CMD ["serve"]' in instructions
    assert any(line.startswith("COPY model_server/") for line in instructions)
    assert any("MODEL_BACKEND=parakeet" in line for line in lines)


def test_plugins_zip_holds_the_package_at_its_root(tmp_path):
    names = build(tmp_path / "plugins.zip")
    assert "audio_pipeline/__init__.py" in names and "audio_pipeline/prompts/summarize_system.txt" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    build(tmp_path / "again.zip")
    assert (tmp_path / "plugins.zip").read_bytes() == (tmp_path / "again.zip").read_bytes(), "reproducible"


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
