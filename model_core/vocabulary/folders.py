"""Folders: the vocabulary of a weights or runtime folder (``for_folder``, ``check``), whether it is an open
(CLIP) one (``is_open``), and writing its ``vocab.json`` (``write_vocabulary``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .model import FILE, OPEN_NOTE, Check, Vocabulary


def _encoder_of(folder: Path) -> str:
    for name in ("bamm.json", "runtime.json"):
        path = folder / name
        if path.is_file():
            try:
                return str(json.loads(path.read_text(encoding="utf-8")).get("text_encoder") or "")
            except (OSError, ValueError):
                return ""
    return ""


def is_open(folder) -> bool:
    """Whether ``folder`` (weights or runtime) reads prompts with CLIP: an imported published model, trained
    on HumanML3D's open-ended captions."""
    return _encoder_of(Path(folder)).split(":")[0] == "clip"


_CACHE: dict[tuple, Vocabulary] = {}


def for_folder(folder) -> Vocabulary:
    """The vocabulary of a weights or runtime folder: its ``vocab.json``; without one, open (not checked) for
    a CLIP model, else the Bandai-Namco training captions' (``from_lexicon``). Cached by file and time."""
    folder = Path(folder)
    path = folder / FILE
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (str(folder.resolve()), stamp)
    if key not in _CACHE:
        if stamp is not None:
            vocab = Vocabulary.load(path)
        elif is_open(folder):
            vocab = Vocabulary(open=True, note=OPEN_NOTE, source="HumanML3D captions (not stored here)")
        else:
            vocab = _lexicon()
        _CACHE[key] = vocab
    return _CACHE[key]


def _lexicon() -> Vocabulary:
    key = ("lexicon",)
    if key not in _CACHE:
        _CACHE[key] = Vocabulary.from_lexicon()
    return _CACHE[key]


def check(prompt: str, folder) -> Check:
    """``for_folder(folder).check(prompt)``."""
    return for_folder(folder).check(prompt)


def write_vocabulary(out_dir, weights_dir=None, *, data=None) -> Path | None:
    """Write ``out_dir/vocab.json`` and return its path: from a dataset folder's training captions (``data``,
    see ``Vocabulary.from_dataset``), else a copy of ``weights_dir``'s (a runtime folder exported from it),
    else the Bandai-Namco captions' vocabulary; nothing (None) for a CLIP model without one (its vocabulary is
    HumanML3D's: give ``data``)."""
    out = Path(out_dir)
    target = out / FILE
    if data is not None and Path(data, "texts").is_dir():
        return Vocabulary.from_dataset(data).save(target)
    source = Path(weights_dir) / FILE if weights_dir is not None else None
    if source is not None and source.is_file() and source.resolve() != target.resolve():
        shutil.copyfile(source, target)
        return target
    if weights_dir is not None and is_open(weights_dir):
        return None
    return _lexicon().save(target)
