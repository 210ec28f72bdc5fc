"""Writing the HumanML3D-style dataset folder safely.

Every file is written under a temporary name in its final folder and moved into place with
``os.replace``, so a reader never sees a half-written file. A source clip is committed by its record
``records/<clip>.json``, written after all of its window files; split files, Mean/Std and meta.jsonl are
removed when a build starts and written only when it ends. So after a crash no id is listed in a split
file, and a re-run rebuilds exactly the clips without a valid record.

A build writes only into a new or empty folder, or one an earlier build wrote (its ``bamm_build.json``
manifest, or its ``records/``): any other folder (a HumanML3D download, a user's files) is refused before
anything is touched. Pruning removes only windows the manifest or a record says this builder wrote.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

WINDOW_DIRS = ("new_joint_vecs", "new_joints", "texts")
RECORDS = "records"
SPLITS = ("train", "val", "test")
MANIFEST = "bamm_build.json"  # {"writer": WRITER, "ids": [window ids of the last finished build]}
WRITER = "bamm data build"
FINAL_FILES = ("Mean.npy", "Std.npy", "meta.jsonl", "build_report.json") + tuple(f"{s}.txt" for s in SPLITS)
_TMP = ".tmp-"


class FolderInUse(FileExistsError):
    """``--out`` is a file, or a folder with files this builder did not write: the user's to fix (``bamm`` reports
    it in one line and exits 2, like any file in the way)."""


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{_TMP}{os.getpid()}-{path.name}")


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a temporary file, then move it to ``path``."""
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, '\\n' line ends) to a temporary file, then move it to ``path``."""
    tmp = _tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def claim(out: Path) -> None:
    """Make ``out`` this builder's folder: a new or empty folder gets a manifest; a folder with a manifest or
    ``records/`` (an earlier build) is accepted; anything else -> FolderInUse, and nothing is changed."""
    if out.exists() and not out.is_dir():
        raise FolderInUse(f"--out '{out}' is a file: build into a new or empty folder")
    manifest = out / MANIFEST
    if manifest.is_file() or (out / RECORDS).is_dir():
        return
    if out.is_dir() and any(out.iterdir()):
        raise FolderInUse(f"--out '{out}' holds files that bamm data build did not write (no {MANIFEST}): build into "
                          "a new or empty folder; nothing was changed")
    out.mkdir(parents=True, exist_ok=True)
    write_json(manifest, {"writer": WRITER, "ids": []})


def owned_ids(out: Path) -> set[str]:
    """Window ids this builder wrote into ``out``: the manifest's (last finished build) and every record's."""
    ids: set[str] = set()
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and manifest.get("writer") == WRITER:
            ids |= {i for i in manifest.get("ids", []) if isinstance(i, str)}
    except (OSError, ValueError):
        pass
    for path in (out / RECORDS).glob("*.json"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            ids |= {w["id"] for w in record.get("windows", []) if isinstance(w.get("id"), str)}
        except (OSError, ValueError, AttributeError, TypeError, KeyError):
            continue
    return ids


def prepare(out: Path) -> None:
    """Claim the folder, create its folders and remove what a finished build writes last (so nothing looks
    valid until then)."""
    claim(out)
    for name in WINDOW_DIRS + (RECORDS,):
        (out / name).mkdir(parents=True, exist_ok=True)
    for name in FINAL_FILES:
        (out / name).unlink(missing_ok=True)
    for folder in (out,) + tuple(out / name for name in WINDOW_DIRS + (RECORDS,)):
        for stale in folder.glob(f"{_TMP}*"):  # temporaries of an interrupted build
            stale.unlink(missing_ok=True)


def window_paths(out: Path, window_id: str) -> tuple[Path, Path, Path]:
    return (out / "new_joint_vecs" / f"{window_id}.npy", out / "new_joints" / f"{window_id}.npy",
            out / "texts" / f"{window_id}.txt")


def write_window(out: Path, window_id: str, features: np.ndarray, joints: np.ndarray, text_lines: list[str]) -> None:
    vec_path, joints_path, text_path = window_paths(out, window_id)
    save_npy(vec_path, features.astype(np.float32))
    save_npy(joints_path, joints.astype(np.float32))
    write_text(text_path, "".join(line + "\n" for line in text_lines))


def record_path(out: Path, clip: str) -> Path:
    return out / RECORDS / f"{clip}.json"


def read_record(out: Path, clip: str, key: str) -> dict | None:
    """The clip's record when it was written for the same input ``key`` and all its files exist, else None."""
    path = record_path(out, clip)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    for window in record.get("windows", []):
        if not all(p.is_file() for p in window_paths(out, window["id"])):
            return None
    return record


def prune(out: Path, keep_clips: set[str], keep_ids: set[str], owned: set[str]) -> int:
    """Remove the windows this builder wrote earlier (``owned``, from `owned_ids`) that this build does not
    keep, and the records of clips it no longer has; other files are never touched. Returns how many went."""
    removed = 0
    for window_id in sorted(owned - keep_ids):
        for path in window_paths(out, window_id):
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed += 1
    for path in (out / RECORDS).glob("*.json"):
        if path.stem not in keep_clips:
            path.unlink()
            removed += 1
    return removed


def write_final(out: Path, *, splits: dict[str, list[str]], meta: list[dict], mean: np.ndarray, std: np.ndarray,
                report: dict) -> None:
    """Meta, statistics, report, and last the split files (their presence marks a finished build)."""
    write_text(out / "meta.jsonl", "".join(json.dumps(m, sort_keys=True) + "\n" for m in meta))
    save_npy(out / "Mean.npy", mean.astype(np.float32))
    save_npy(out / "Std.npy", std.astype(np.float32))
    write_json(out / "build_report.json", report)
    write_json(out / MANIFEST, {"writer": WRITER, "ids": sorted(m["id"] for m in meta)})
    for split in SPLITS:
        write_text(out / f"{split}.txt", "".join(i + "\n" for i in splits.get(split, [])))
