"""Build a HumanML3D-style dataset from the Bandai-Namco Research Motion Dataset archives.

Reads ``dataset-1.tar.xz`` / ``dataset-2.tar.xz`` directly and in one pass each (xz is sequential):
``cfg/content_label.txt`` and ``cfg/style_label.txt`` name the label ids (line k = id k, written
``dataset-N_<label>``), and every ``data/<stem>.bvh`` has a ``data/<stem>.json`` with
``{"content": i, "style": j}``. Clip ids are the file stems (``dataset-1_walk_old_001``); captions come
from ``captions.training_captions``; clips are stratified into splits by archive and content label.

The data is CC BY-NC 4.0 (Bandai Namco Research Inc.): anything trained on it is non-commercial.
"""

from __future__ import annotations

import json
import lzma
import tarfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from .build import BuildError, BuildSettings, Job, Segment, Skip, run_build
from .captions import CaptionError, training_captions

ARCHIVES = ("dataset-1", "dataset-2")
LICENSE = "CC BY-NC 4.0, Bandai Namco Research Inc. (Bandai-Namco-Research-Motiondataset)"


def _labels(text: str) -> list[str]:
    """Label file lines without the ``dataset-N_`` prefix."""
    return [line.strip().split("_", 1)[-1] for line in text.splitlines() if line.strip()]


def iter_archive(path: Path, *, limit: int | None = None, captions_per_clip: int = 6) -> Iterator[Job | Skip]:
    """Jobs (or Skips with a reason) for the clips of one archive, in archive order; ``limit`` clips at most."""
    archive = path.name.removesuffix(".tar.xz")
    labels: dict[str, list[str]] = {}
    bvh_texts: dict[str, tuple[str, str]] = {}  # stem -> (member name, text), waiting for the .json
    waiting: list[tuple[str, dict]] = []  # (stem, json) pairs seen before the label files
    count = 0

    def make(stem: str, info: dict) -> Job | Skip:
        member, text = bvh_texts.pop(stem)
        source = f"{path.name}:{member}"
        try:
            content = labels["content"][int(info["content"])]
            style = labels["style"][int(info["style"])]
        except (KeyError, IndexError, ValueError, TypeError):
            return Skip(source, f"bad label ids {info!r} (labels: {len(labels['content'])} contents, "
                                f"{len(labels['style'])} styles)")
        try:
            captions = training_captions(content, style, stem, n=captions_per_clip)
        except CaptionError as exc:
            return Skip(source, f"no captions: {exc}")
        meta = {"archive": archive, "content": content, "style": style}
        return Job(clip=stem, source=source, text=text, segments=[Segment(captions=tuple(captions))],
                   group=f"{archive}:{content}", meta=meta)

    try:
        with tarfile.open(path, "r:xz") as tar:
            for member in tar:
                if limit is not None and count >= limit:
                    return
                if not member.isfile():
                    continue
                name = PurePosixPath(member.name)
                if name.parent.name == "cfg" and name.name in ("content_label.txt", "style_label.txt"):
                    labels[name.name.split("_")[0]] = _labels(tar.extractfile(member).read().decode("utf-8"))
                    if len(labels) == 2:
                        for stem, info in waiting:
                            count += 1
                            yield make(stem, info)
                        waiting.clear()
                elif name.parent.name == "data" and name.suffix == ".bvh":
                    bvh_texts[name.stem] = (member.name, tar.extractfile(member).read().decode("utf-8", "replace"))
                elif name.parent.name == "data" and name.suffix == ".json" and name.stem in bvh_texts:
                    try:
                        info = json.loads(tar.extractfile(member).read().decode("utf-8"))
                    except ValueError as exc:
                        count += 1
                        yield Skip(f"{path.name}:{member.name}", f"bad label file: {exc}")
                        bvh_texts.pop(name.stem)
                        continue
                    if len(labels) < 2:
                        waiting.append((name.stem, info))
                    else:
                        count += 1
                        yield make(name.stem, info)
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as exc:
        raise BuildError(f"cannot read archive {path}: {exc}") from None
    if len(labels) < 2:
        raise BuildError(f"{path} has no cfg/content_label.txt and cfg/style_label.txt")
    for stem in sorted(bvh_texts):
        if limit is None or count < limit:
            count += 1
            yield Skip(f"{path.name}:{bvh_texts[stem][0]}", "no .json label file next to it")


def build_bandai(root: str | Path, out: str | Path, *, workers: int = 2, limit: int | None = None,
                 archives: tuple[str, ...] = ARCHIVES, captions_per_clip: int = 6,
                 settings: BuildSettings = BuildSettings(), progress: bool = False) -> dict:
    """Build ``out`` from the archives in ``root``; ``limit`` caps the clips read from each archive.

    Returns the build report (also written to ``<out>/build_report.json``).
    """
    root = Path(root)
    if not root.is_dir():
        raise BuildError(f"Bandai-Namco folder {root} does not exist")
    paths = [root / f"{name}.tar.xz" for name in archives]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        found = sorted(p.name for p in root.glob("*.tar.xz"))
        raise BuildError(f"{root}: missing {', '.join(missing)} (found: {', '.join(found) or 'no .tar.xz files'})")
    if limit is not None and limit < 1:
        raise BuildError(f"limit must be at least 1, got {limit}")

    def jobs() -> Iterator[Job | Skip]:
        for path in paths:
            yield from iter_archive(path, limit=limit, captions_per_clip=captions_per_clip)

    extra = {"dataset": "bandai-namco", "archives": list(archives), "limit_per_archive": limit, "license": LICENSE}
    return run_build(jobs(), out, settings=settings, workers=workers, progress=progress, extra_report=extra)
