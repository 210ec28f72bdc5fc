"""Build a HumanML3D-style dataset from a folder of your own BVH files and a captions CSV.

The CSV has a header with the columns ``file`` and ``caption`` (any order, other columns ignored) and
optionally ``start`` and ``end`` (seconds). ``file`` is the BVH path relative to the folder. A file can
have many rows: rows without start/end caption the whole file; rows with a range caption that part of it,
which becomes its own clip (``<file id>_s<k>``) since the layout stores whole-clip captions only. An empty
start means the file's start, an empty end its end.

Any rig that ``motion.rig_map`` can map works (units and up axis are detected). Splits are by file.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator

from .build import BuildError, BuildSettings, Job, Segment, Skip, run_build

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _seconds(value: str | None, column: str, where: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise BuildError(f"{where}: {column} {value!r} is not a number of seconds") from None
    if not seconds >= 0:
        raise BuildError(f"{where}: {column} must be a number of seconds >= 0, got {value!r}")
    return seconds


def read_captions_csv(path: str | Path) -> dict[str, list[tuple[str, float | None, float | None]]]:
    """{file: [(caption, start, end), ...]} in file order; errors name the CSV line."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"captions file {path} not found")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = {name.strip().lower(): name for name in reader.fieldnames or [] if name}
        missing = [c for c in ("file", "caption") if c not in header]
        if missing:
            raise BuildError(f"{path}: missing column(s) {', '.join(missing)} in the header "
                             f"(found: {', '.join(reader.fieldnames or []) or 'nothing'}); "
                             "expected file,caption[,start,end]")
        rows: dict[str, list[tuple[str, float | None, float | None]]] = {}
        for row in reader:
            where = f"{path}:{reader.line_num}"
            file = (row.get(header["file"]) or "").strip()
            caption = " ".join((row.get(header["caption"]) or "").split())
            if not file and not caption:
                continue
            if not file:
                raise BuildError(f"{where}: empty file name")
            if not caption:
                raise BuildError(f"{where}: empty caption for {file}")
            if "#" in caption:
                raise BuildError(f"{where}: captions must not contain '#'")
            start = _seconds(row.get(header.get("start", "")), "start", where)
            end = _seconds(row.get(header.get("end", "")), "end", where)
            if start is not None and end is not None and end <= start:
                raise BuildError(f"{where}: end ({end}) must be after start ({start})")
            rows.setdefault(Path(file).as_posix(), []).append((caption, start, end))
    if not rows:
        raise BuildError(f"{path} has no caption rows")
    return rows


def clip_id(relative: str) -> str:
    """A file-name-safe id for a BVH path relative to the folder: ``run/fast.bvh`` -> ``run__fast``."""
    stem = relative[:-4] if relative.lower().endswith(".bvh") else relative
    return _UNSAFE.sub("_", stem.replace("/", "__"))


def _segments(rows: list[tuple[str, float | None, float | None]]) -> list[Segment]:
    ranges: dict[tuple[float | None, float | None], list[str]] = {}
    for caption, start, end in rows:
        texts = ranges.setdefault((start, end), [])
        if caption not in texts:
            texts.append(caption)
    whole = ranges.pop((None, None), None)
    segments = [Segment(captions=tuple(whole))] if whole else []
    ordered = sorted(ranges.items(), key=lambda item: (item[0][0] or 0.0, item[0][1] or float("inf")))
    segments += [Segment(captions=tuple(texts), start=start, end=end, suffix=f"_s{k}")
                 for k, ((start, end), texts) in enumerate(ordered)]
    return segments


def iter_folder(folder: Path, captions: dict[str, list]) -> Iterator[Job | Skip]:
    """Jobs for the captioned BVH files of ``folder`` (sorted), Skips for the others."""
    on_disk = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.suffix.lower() == ".bvh"}
    ids: dict[str, str] = {}
    for relative in sorted(set(on_disk) | set(captions)):
        if relative not in on_disk:
            yield Skip(str(folder / relative), "listed in the captions CSV but not found in the folder")
            continue
        if relative not in captions:
            yield Skip(str(on_disk[relative]), "no caption rows in the captions CSV")
            continue
        cid = clip_id(relative)
        if cid in ids:
            raise BuildError(f"{relative} and {ids[cid]} map to the same clip id {cid!r}; rename one")
        ids[cid] = relative
        path = on_disk[relative]
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError as exc:
            yield Skip(str(path), f"cannot read file: {exc}")
            continue
        yield Job(clip=cid, source=str(path), text=text, segments=_segments(captions[relative]), group="bvh",
                  meta={"file": relative})


def build_bvh_folder(folder: str | Path, captions_csv: str | Path, out: str | Path, *, workers: int = 2,
                     settings: BuildSettings = BuildSettings(), progress: bool = False) -> dict:
    """Build ``out`` from the BVH files of ``folder`` captioned in ``captions_csv``; returns the report."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BuildError(f"BVH folder {folder} does not exist")
    captions = read_captions_csv(captions_csv)
    out = Path(out)
    if out.resolve() == folder.resolve():
        raise BuildError("--out must be a different folder from the BVH folder")
    extra = {"dataset": "bvh-folder", "folder": str(folder), "captions_csv": str(captions_csv)}
    return run_build(iter_folder(folder, captions), out, settings=settings, workers=workers, progress=progress,
                     extra_report=extra)
