"""The summary prompts as the project ships them: the templates in the top-level include/prompts/."""

from __future__ import annotations

from pathlib import Path

from audio_pipeline.prompt_templates import load_prompts

INCLUDE = Path(__file__).resolve().parents[1] / "include"
PROMPTS = load_prompts(INCLUDE / "prompts")
