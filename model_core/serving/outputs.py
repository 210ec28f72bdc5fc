"""Safe output files: nothing written is lost, nothing existing is overwritten unless asked.

* `check_folder(folder)` before any long work: the folder is created if needed and must be writable
  (InputError otherwise), so a bad ``--out`` is found before a model is loaded.
* `claim(folder, stem, suffixes, overwrite=False)` picks the name of one result's files: ``stem`` when none
  of ``stem + suffix`` exists, else ``stem-2``, ``stem-3``, ... (the first file is created empty at once, so two
  processes writing into one folder never pick the same name). ``overwrite=True`` keeps ``stem``.
* `write(path, writer)` calls ``writer(tmp)`` on a temporary file in the target folder (same suffix), then
  renames it into place: a failed or interrupted write leaves the old file (or no file) behind, never half a
  file. The rename replaces a symbolic link itself, never the file it points to.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..contract.limits import InputError

MAX_NUMBERED = 10_000


def check_folder(folder) -> Path:
    """Create ``folder`` if needed and check a file can be written there; InputError when it cannot."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"the output folder '{folder}' is an existing file: pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".bamm-write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"cannot write into the output folder '{folder}': {e.strerror or e}") from None
    return folder


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def claim(folder, stem: str, suffixes, *, overwrite: bool = False) -> str:
    """A free stem for files ``folder / (stem + suffix)`` (see the module docstring). The first suffix's file
    is created empty as the claim; `release` removes it if the result is abandoned."""
    folder = Path(folder)
    suffixes = list(suffixes)
    if overwrite:
        for suffix in suffixes:
            if (folder / f"{stem}{suffix}").is_dir():
                raise InputError(f"'{folder / (stem + suffix)}' is a folder: it cannot be overwritten by a file")
        return stem
    for k in range(1, MAX_NUMBERED):
        candidate = stem if k == 1 else f"{stem}-{k}"
        if any(_exists(folder / f"{candidate}{s}") for s in suffixes):
            continue
        try:
            fd = os.open(folder / f"{candidate}{suffixes[0]}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise InputError(f"'{folder}' already holds {MAX_NUMBERED} results named {stem}: choose another folder")


def release(folder, stem: str, suffixes) -> None:
    """Remove the empty claim file of an abandoned result."""
    path = Path(folder) / f"{stem}{list(suffixes)[0]}"
    try:
        if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def temporary(path) -> Path:
    """A fresh temporary name next to ``path`` with the same suffix (writers that pick a format by suffix)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")


def write(path, writer) -> Path:
    """``writer(tmp_path)`` then rename into ``path`` (replacing it: choose the name with `claim` first)."""
    path = Path(path)
    tmp = temporary(path)
    try:
        writer(tmp)
        if not tmp.is_file():
            raise OSError(f"the writer made no file for {path}")
        os.replace(tmp, path)
    finally:
        if _exists(tmp):
            tmp.unlink()
    return path


def save_npy(path, array) -> Path:
    import numpy as np

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    return write(path, writer)


def write_text(path, text: str) -> Path:
    return write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
