"""The request contract's limits and field checks: what one set of weights accepts (`Limits`), the error for
input the user can fix (`InputError`), and the checks of single fields that the request, the plan and the words
about length (`request.py`, `plan.py`, `amounts.py`) share. Pure Python: it imports nothing of model_core.

    from model_core.contract.limits import InputError, Limits

    limits = Limits.from_folder("weights/")   # bamm.json (weights) or runtime.json (runtime); cheap, no model
    limits = Limits.from_json(ready["limits"])  # as the worker sends it in its "ready" line
    check_prompt("  a person waves ", limits, required=True)  # "a person waves"

`InputError` (a ``ValueError``) carries a one-line message that says what is wrong and what is allowed; the
worker reports it as ``{"type": "error", "kind": "input", ...}``, the add-on shows it as the user's mistake
(``BammInputError``), the command line exits with code 2 without a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("bamm", "official")  # decoding profiles (decoding/loop.py)
MAX_PROMPT_CHARS = 1000  # a prompt is a sentence or two; the text encoders read far fewer tokens anyway
MAX_N = 32  # variations of one request (one batch)
SOURCE_WINDOWS = 20  # a source motion (edit, extend) may be this many model windows long


class InputError(ValueError):
    """Bad input from the user (request field, file, option): the message is one line saying what is wrong and
    what is allowed. Raised by model_core for input the user can fix; anything else is a failure."""

    kind = "input"


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one set of weights accepts. max_frames: longest generated motion (and edited span), 20-fps frames;
    frames_per_token: frames of one motion token (lengths are whole tokens)."""

    fps: float = 20.0
    frames_per_token: int = 4
    max_frames: int = 196
    max_prompt_chars: int = MAX_PROMPT_CHARS
    max_n: int = MAX_N

    def __post_init__(self):
        for name in ("frames_per_token", "max_frames", "max_prompt_chars", "max_n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**6:
                raise InputError(f"limits: {name} must be an integer in [1, 1000000], got {value!r}")
        if not _finite(self.fps) or not 0 < self.fps <= 1000:
            raise InputError(f"limits: fps must be a number in (0, 1000], got {self.fps!r}")
        if self.max_frames < self.frames_per_token:
            raise InputError(f"limits: max_frames {self.max_frames} is shorter than one token")

    @property
    def max_seconds(self) -> float:
        return self.max_frames / self.fps

    @property
    def max_source_frames(self) -> int:
        return SOURCE_WINDOWS * self.max_frames

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data) -> "Limits":
        if not isinstance(data, dict):
            raise InputError(f"limits must be an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_nets(cls, config) -> "Limits":
        """From a `nets.NetsConfig` (a loaded model)."""
        return cls(fps=float(config.fps), frames_per_token=int(config.frames_per_token),
                   max_frames=int(config.motion_tokens) * int(config.frames_per_token))

    @classmethod
    def from_folder(cls, folder) -> "Limits":
        """From a weights folder (``bamm.json``) or a runtime folder (``runtime.json``), without loading a model.
        A missing or malformed file -> InputError naming it."""
        folder = Path(folder)
        runtime, weights = folder / "runtime.json", folder / "bamm.json"
        path = runtime if runtime.is_file() else weights
        if not path.is_file():
            raise InputError(f"no BAMM weights or runtime in '{folder}' (bamm.json / runtime.json not found)")
        try:
            if path.stat().st_size > 1_000_000:
                raise InputError(f"{path} is {path.stat().st_size} bytes: not a BAMM config")
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path} cannot be read as JSON: {e}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
        try:
            if path == runtime:
                nets = data.get("nets")
                if not isinstance(nets, dict):
                    raise InputError(f"{path}: no 'nets' object")
                fpt = _int_field(nets, "frames_per_token")
                return cls(fps=_float_field(nets, "fps"), frames_per_token=fpt,
                           max_frames=(_int_field(nets, "max_tokens") - 1) * fpt)
            return cls(fps=_float_field(data, "fps", 20.0),
                       frames_per_token=_int_field(data, "frames_per_token", 4),
                       max_frames=_int_field(data, "max_frames", 196))
        except InputError as e:
            raise InputError(f"{path}: {e}") from None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_field(data: dict, name: str, default=None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer, got {value!r}")
    return value


def _float_field(data: dict, name: str, default=None) -> float:
    value = data.get(name, default)
    if not _finite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _int(value, name: str, lo: int, hi: int) -> int:
    try:  # numpy integers count as integers; bools, floats and strings do not
        ok = not isinstance(value, bool) and not isinstance(value, float) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or not lo <= int(value) <= hi:
        raise InputError(f"{name} must be an integer in [{lo}, {hi}], got {_show(value)}")
    return int(value)


def _number(value, name: str, lo: float, hi: float) -> float:
    ok = not isinstance(value, (bool, str)) and _finite_float(value)
    if not ok or not lo <= float(value) <= hi:
        raise InputError(f"{name} must be a finite number in [{lo:g}, {hi:g}], got {_show(value)}")
    return float(value)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_profile(profile) -> str:
    """The decoding profile of a generate request ("bamm" or "official"), or InputError."""
    if profile not in PROFILES:
        raise InputError(f"profile must be one of {', '.join(PROFILES)}, got {_show(profile)}")
    return profile


def check_texts(texts) -> None:
    """Raises TypeError unless `texts` is a list (or tuple) of strings."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    wrong = sorted({type(t).__name__ for t in texts if not isinstance(t, str)})
    if wrong:
        raise TypeError(f"texts must be a list of strings, it holds {', '.join(wrong)}")


def check_prompt(prompt, limits: Limits, *, required: bool) -> str | None:
    """A prompt stripped of surrounding space; None allowed unless ``required`` (an empty string never)."""
    if prompt is None:
        if required:
            raise InputError("the prompt is empty: describe the motion, e.g. 'a person jumps forward'")
        return None
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be text, got {type(prompt).__name__}")
    prompt = prompt.strip()
    if not prompt:
        raise InputError("the prompt is empty: describe the motion, e.g. 'a person jumps forward'")
    if len(prompt) > limits.max_prompt_chars:
        raise InputError(f"the prompt has {len(prompt)} characters; at most {limits.max_prompt_chars} are allowed")
    if any(ord(c) < 32 and c not in "\t\n" for c in prompt):
        raise InputError("the prompt contains control characters")
    return prompt


def _finite_float(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False
