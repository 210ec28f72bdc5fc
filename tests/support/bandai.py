"""Real Bandai-Namco clips for tests, read straight from the archive (xz is sequential: one pass)."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath


def first_bvh_texts(bandai_dir: Path, count: int, *, archive: str = "dataset-1") -> dict[str, str]:
    """{file name: BVH text} of the first ``count`` clips of an archive (dataset-1 starts with 2–5 s bows)."""
    texts = {}
    with tarfile.open(Path(bandai_dir) / f"{archive}.tar.xz", "r:xz") as tar:
        for member in tar:
            if member.name.endswith(".bvh"):
                texts[PurePosixPath(member.name).name] = tar.extractfile(member).read().decode("utf-8")
                if len(texts) == count:
                    return texts
    raise AssertionError(f"{archive} has fewer than {count} BVH files")
