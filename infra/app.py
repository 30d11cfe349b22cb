"""``cdk synth`` / ``cdk deploy`` entry point (run from infra/, see docs/deploy.md)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "plugins"):  # one definition of names and schema: the DAG's own package
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.settings import InfraSettings  # noqa: E402
from infra.stacks.pipeline import AudioPipelineStack  # noqa: E402


def build(app: cdk.App) -> AudioPipelineStack:
    stack = AudioPipelineStack(app, "AudioTranscriptionPipeline", settings=InfraSettings.from_context(app))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
