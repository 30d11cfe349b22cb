"""scripts/find-python picks the Python the pins are resolved for (3.12), and says how to get it otherwise."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

FIND_PYTHON = Path(__file__).resolve().parents[1] / "scripts" / "find-python"
PYENV = Path.home() / ".pyenv" / "versions"


def find_python(tmp_path: Path, *versions: str) -> subprocess.CompletedProcess:
    """find-python on a PATH holding only the given pyenv interpreters (as python3.X and python3)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for version in versions:
        real = next(PYENV.glob(f"{version}.*/bin/python{version}"), None)
        if real is None:
            pytest.skip(f"no pyenv Python {version} on this machine")
        (bin_dir / f"python{version}").symlink_to(real)
        (bin_dir / "python3").unlink(missing_ok=True)
        (bin_dir / "python3").symlink_to(real)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYENV_ROOT": str(tmp_path / "no-pyenv"), "HOME": str(tmp_path)}
    return subprocess.run([str(FIND_PYTHON)], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.13"])
def test_another_python_alone_is_refused_with_how_to_get_312(tmp_path, version):
    found = find_python(tmp_path, version)
    assert found.returncode == 1 and not found.stdout
    assert "needs Python 3.12" in found.stderr and "pyenv install 3.12" in found.stderr


def test_312_is_chosen_among_others(tmp_path):
    found = find_python(tmp_path, "3.12", "3.11")  # python3 is 3.11
    assert found.returncode == 0
    assert found.stdout.strip().endswith("/python3.12")
