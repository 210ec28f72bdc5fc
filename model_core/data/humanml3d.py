"""HumanML3D / KIT-ML dataset folders: the caption text format and a fast split loader.

A folder as distributed (and as written by ``bamm data build``)::

    new_joint_vecs/<id>.npy   (T, D) features: D = 263 (HumanML3D, 22 joints) or 251 (KIT-ML, 21 joints)
    texts/<id>.txt            one caption per line: ``caption#lemma/POS tokens#start#end``
    Mean.npy, Std.npy         (D,)
    train.txt val.txt test.txt  one id per line
    meta.jsonl                optional, one JSON object per id (written by ``bamm data build``)

Caption ranges: ``start``/``end`` are seconds. ``0.0#0.0`` (or NaN) means the whole clip; otherwise the
caption describes frames ``[int(start * fps), int(end * fps))`` of the clip (HumanML3D's convention).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .pos_tags import tokens_string

FPS = 20.0  # seconds -> frames for caption ranges; the reference loaders use 20 for HumanML3D and KIT-ML alike


class DatasetError(ValueError):
    """A dataset folder, split file or clip file is missing or malformed; the message names it."""


@dataclass(frozen=True, kw_only=True)
class Caption:
    text: str
    start_frame: int  # half-open frame range of the clip that the caption describes
    end_frame: int
    tokens: str = ""  # the ``lemma/POS`` field, as stored


@dataclass(kw_only=True)
class Clip:
    id: str
    features: np.ndarray  # (T, D) float32, not normalised
    captions: list[Caption]
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------- text format

def format_text_line(caption: str, start: float = 0.0, end: float = 0.0) -> str:
    """One line of a ``texts/<id>.txt`` file (no newline): ``caption#tokens#start#end``."""
    caption = " ".join(caption.split())
    if not caption:
        raise ValueError("caption is empty")
    if "#" in caption:
        raise ValueError(f"caption must not contain '#': {caption!r}")
    return f"{caption}#{tokens_string(caption)}#{float(start)}#{float(end)}"


def _seconds(value: str, what: str, where: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise DatasetError(f"{where}: {what} time {value!r} is not a number") from None
    return 0.0 if math.isnan(seconds) else seconds


def parse_text_file(path: str | Path, n_frames: int, *, fps: float = FPS) -> list[Caption]:
    """Captions of one clip with ``n_frames`` frames; sub-range captions are clipped to the clip.

    A line without ``#`` is a plain whole-clip caption. A sub-range caption whose range is empty after
    clipping to the clip is dropped (HumanML3D's own loader drops those too).
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read caption file {path}: {exc}") from None
    captions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("#")
        text = parts[0].strip()
        if not text:
            raise DatasetError(f"{path}:{number}: empty caption")
        tokens = parts[1].strip() if len(parts) > 1 else ""
        if len(parts) in (2, 3) or len(parts) > 4:
            raise DatasetError(f"{path}:{number}: expected 'caption#tokens#start#end', found {len(parts)} fields")
        start = _seconds(parts[2], "start", f"{path}:{number}") if len(parts) == 4 else 0.0
        end = _seconds(parts[3], "end", f"{path}:{number}") if len(parts) == 4 else 0.0
        if start == 0.0 and end == 0.0:
            captions.append(Caption(text=text, start_frame=0, end_frame=n_frames, tokens=tokens))
            continue
        first, last = max(0, int(start * fps)), min(n_frames, int(end * fps))
        if last > first:
            captions.append(Caption(text=text, start_frame=first, end_frame=last, tokens=tokens))
    return captions


# ------------------------------------------------------------------------------------------- loading

def _folder(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    return root


def read_split_ids(root: str | Path, split: str) -> list[str]:
    """Ids listed in ``<root>/<split>.txt`` in file order."""
    path = _folder(root) / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise DatasetError(f"split file {path} not found (split files there: {', '.join(found) or 'none'})")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_meta(root: str | Path) -> dict[str, dict]:
    """``meta.jsonl`` as {id: object}; empty when the folder has none (the official datasets)."""
    path = _folder(root) / "meta.jsonl"
    if not path.is_file():
        return {}
    meta = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
                meta[record["id"]] = record
            except (ValueError, KeyError, TypeError):
                raise DatasetError(f"{path}:{number}: not a JSON object with an 'id'") from None
    return meta


def load_split(root: str | Path, split: str, *, skip_missing: bool = False, fps: float = FPS) -> list[Clip]:
    """Every clip of a split: features ``(T, D)`` float32, parsed captions and meta (if any).

    A listed id without its ``new_joint_vecs`` or ``texts`` file is an error, unless ``skip_missing``
    (the official HumanML3D split files list a few ids some copies lack). All clips must share D.
    """
    root = _folder(root)
    vec_dir, text_dir = root / "new_joint_vecs", root / "texts"
    for folder in (vec_dir, text_dir):
        if not folder.is_dir():
            raise DatasetError(f"dataset folder {root} has no {folder.name}/ folder")
    meta = read_meta(root)
    clips: list[Clip] = []
    dim = None
    for clip_id in read_split_ids(root, split):
        vec_path, text_path = vec_dir / f"{clip_id}.npy", text_dir / f"{clip_id}.txt"
        try:
            features = np.load(vec_path)
        except FileNotFoundError:
            features = None
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {vec_path}: {exc}") from None
        if features is None or not text_path.is_file():
            if skip_missing:
                continue
            missing = vec_path if features is None else text_path
            raise DatasetError(f"{split}.txt lists {clip_id!r} but {missing} does not exist")
        if features.ndim != 2 or features.shape[0] < 1:
            raise DatasetError(f"{vec_path}: features must have shape (T, D), got {features.shape}")
        if dim is None:
            dim = features.shape[1]
        elif features.shape[1] != dim:
            raise DatasetError(f"{vec_path}: feature size {features.shape[1]} differs from the split's {dim}")
        captions = parse_text_file(text_path, features.shape[0], fps=fps)
        clips.append(Clip(id=clip_id, features=features.astype(np.float32, copy=False), captions=captions,
                          meta=meta.get(clip_id, {})))
    return clips


def load_stats(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(Mean, Std) float32 ``(D,)`` from ``Mean.npy`` / ``Std.npy``; Std must be positive and finite."""
    root = _folder(root)
    stats = []
    for name in ("Mean.npy", "Std.npy"):
        path = root / name
        if not path.is_file():
            raise DatasetError(f"{path} not found")
        array = np.load(path)
        if array.ndim != 1 or not np.isfinite(array).all():
            raise DatasetError(f"{path}: expected a finite vector (D,), got shape {array.shape}")
        stats.append(array.astype(np.float32, copy=False))
    mean, std = stats
    if mean.shape != std.shape:
        raise DatasetError(f"{root}: Mean.npy {mean.shape} and Std.npy {std.shape} differ in shape")
    if (std <= 0).any():
        raise DatasetError(f"{root / 'Std.npy'}: Std has zero or negative entries")
    return mean, std
