"""The summary prompts: a user's templates deployed with the DAGs, else the packaged defaults.

The DAG folder's ``include/prompts/`` holds what a user edits without a code release: MWAA
syncs the DAG folder within seconds, while a new plugins.zip needs an environment update.
A template missing there falls back to the package's own (``audio_pipeline/prompts/``).
"""

from __future__ import annotations

import logging
import string
from importlib.resources import files
from pathlib import Path

from audio_pipeline.config import UnusableInputError

log = logging.getLogger(__name__)

PLACEHOLDERS = {"summarize_system": set(), "summarize_chunk": {"text", "part"}, "combine": {"text"}}
"""Each template's name and the ``{placeholders}`` it is filled with (``{text}`` is required:
without it the transcript never reaches the model). The system prompt is sent as written."""


def packaged(name: str) -> str:
    return files("audio_pipeline").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


def load_prompts(directory: Path | None = None) -> dict[str, str]:
    """Every template, from ``directory/<name>.txt`` when that file exists, else the packaged default.

    Raises :class:`UnusableInputError` naming the file when a user's template cannot be filled.
    """
    prompts = {}
    for name, allowed in PLACEHOLDERS.items():
        path = directory / f"{name}.txt" if directory else None
        if path is None or not path.is_file():
            prompts[name] = packaged(name)
            continue
        text = path.read_text(encoding="utf-8")
        if allowed:
            _check(path, text, allowed)
        log.info("prompt template %s from %s", name, path)
        prompts[name] = text
    return prompts


def _check(path: Path, text: str, allowed: set[str]) -> None:
    hint = f"placeholders are {', '.join('{' + p + '}' for p in sorted(allowed))}; write literal braces as {{{{ }}}}"
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as err:
        raise UnusableInputError(f"prompt template {path}: {err} ({hint})") from None
    if used - allowed:
        raise UnusableInputError(f"prompt template {path}: unknown placeholders {sorted(used - allowed)} ({hint})")
    if "text" not in used:
        raise UnusableInputError(f"prompt template {path}: no {{text}} placeholder, so no transcript ({hint})")
