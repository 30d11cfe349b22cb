"""The summary prompts: templates a user edits without a code release, read from one directory.

The templates live once, in the project's top-level ``include/prompts/``: on MWAA it is
deployed into the DAG folder (``dags/include/prompts/``, synced within seconds, where a new
plugins.zip needs an environment update); the local stack and docker compose read it
beside the DAG folder. The package holds no copy of them: a missing template is an error
that names the file.
"""

from __future__ import annotations

import logging
import string
from pathlib import Path

from audio_pipeline.config import UnusableInputError

log = logging.getLogger(__name__)

PLACEHOLDERS = {"summarize_system": set(), "summarize_chunk": {"text", "part"}, "combine": {"text"}}
"""Each template's name and the ``{placeholders}`` it is filled with (``{text}`` is required:
without it the transcript never reaches the model). The system prompt is sent as written."""


def load_prompts(directory: Path) -> dict[str, str]:
    """Every template, from ``directory/<name>.txt``.

    Raises :class:`UnusableInputError` naming the file when a template is missing or cannot be filled.
    """
    prompts = {}
    for name, allowed in PLACEHOLDERS.items():
        path = directory / f"{name}.txt"
        if not path.is_file():
            raise UnusableInputError(
                f"prompt template {path} is missing: the summary prompts ({', '.join(PLACEHOLDERS)}) are "
                "deployed with the DAGs, from the project's include/prompts/"
            )
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
