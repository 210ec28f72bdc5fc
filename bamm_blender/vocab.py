"""The vocabulary check of a prompt against the model the add-on uses (``model_core.vocabulary``): the line the
panel shows under the prompt while the user types, and the note a result made from such a prompt keeps.

Pure Python reading the model folder's ``vocab.json`` (no model is loaded), cached by folder and prompt text,
so drawing the panel stays cheap.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .core import RUNTIME_DIR, WEIGHTS_DIR, has_runtime, model_module

vocabulary = model_module(".vocabulary")

MAX_CACHED = 256
_LINES: dict[tuple[str, str], str] = {}


def model_folder(context=None) -> Path | None:
    """The runtime or weights folder of the model the add-on generates with (``headless.spec_of``); when the
    preferences name none that exists, the bundled runtime or the shipped weights; None without any."""
    from . import headless  # late: headless imports the modules that import this one
    from .errors import BammInputError

    try:
        spec = headless.spec_of(context or bpy.context)
    except BammInputError:
        spec = {}
    folder = spec.get("runtime") or spec.get("weights")
    if folder:
        return Path(folder)
    if "random" in spec:  # a test model: no vocabulary
        return None
    if has_runtime(RUNTIME_DIR):
        return RUNTIME_DIR
    return WEIGHTS_DIR if (WEIGHTS_DIR / "bamm.json").is_file() else None


def line(prompt: str, context=None) -> str:
    """One line naming what ``prompt`` asks for outside the model's vocabulary, and the closest things it
    knows; empty when nothing is, for an empty prompt, or when no model folder is found."""
    if not isinstance(prompt, str) or not prompt.strip():
        return ""
    folder = model_folder(context)
    if folder is None:
        return ""
    key = (str(folder), prompt)
    found = _LINES.get(key)
    if found is None:
        try:
            found = vocabulary.check(prompt, folder).line()
        except (OSError, ValueError):  # an unreadable vocab.json: say nothing rather than break the panel
            found = ""
        if len(_LINES) >= MAX_CACHED:
            _LINES.clear()
        _LINES[key] = found
    return found
