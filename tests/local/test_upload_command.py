"""``python -m local.stack upload``: README's upload step reaches only a local stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_without_the_stacks_environment_it_refuses_and_says_what_to_source(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO / "plugins")
    (tmp_path / "call.wav").write_bytes(b"RIFF")
    result = subprocess.run(
        [sys.executable, "-m", "local.stack", "upload", "--audio-dir", str(tmp_path), "--to", "s3://bucket/calls/"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "source .local/stack.env" in result.stderr, result.stderr[-2000:]
