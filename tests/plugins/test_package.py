"""Importing the package changes nothing outside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPORT_ALL = """
import json, logging, pkgutil, importlib, warnings
# the dependencies' own import-time settings (urllib3's and requests' warning filters), first
import airflow.sdk, boto3, requests, airflow.providers.amazon.aws.hooks.base_aws
before = (list(warnings.filters), logging.getLogger().level, list(logging.getLogger().handlers))
import audio_pipeline
modules = [m.name for m in pkgutil.walk_packages(audio_pipeline.__path__, "audio_pipeline.")]
for name in modules:
    importlib.import_module(name)
after = (list(warnings.filters), logging.getLogger().level, list(logging.getLogger().handlers))
added = [repr(f) for f in after[0] if f not in before[0]]
print(json.dumps({"modules": len(modules), "same": before == after, "added": added}))
"""


def test_importing_every_module_leaves_warning_filters_and_logging_alone():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    run = subprocess.run([sys.executable, "-c", IMPORT_ALL], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["modules"] > 20
    assert result["same"], result["added"]
