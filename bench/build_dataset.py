"""Time the Bandai-Namco dataset build with 1 and 2 worker processes and print dataset statistics.

    python bench/build_dataset.py [--root ../shared/data/bandai-namco] [--workers 1,2] [--limit N] [--keep DIR]

Each run builds into a fresh temporary folder (so nothing is reused); ``--keep`` keeps the last one there.
Also times ``load_split`` on the result (what the trainers call).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_core.data.build_bandai import build_bandai  # noqa: E402
from model_core.data.humanml3d import load_split  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "bandai-namco"))
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to time (default 1,2)")
    parser.add_argument("--limit", type=int, default=None, help="clips per archive (default: all)")
    parser.add_argument("--keep", default=None, help="move the last build to this folder")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    print(f"machine: {os.cpu_count()} CPU cores; archives: {args.root}; limit per archive: {args.limit}")

    report, last = None, None
    for workers in counts:
        out = Path(tempfile.mkdtemp(prefix="bamm-bench-"))
        t0 = time.perf_counter()
        report = build_bandai(args.root, out, workers=workers, limit=args.limit)
        seconds = time.perf_counter() - t0
        attempted = report["clips"] + len(report["skipped"])
        print(f"workers={workers}: {seconds:7.1f} s total, {attempted / seconds:6.1f} clips/s "
              f"({report['clips']} built, {len(report['skipped'])} skipped)")
        if last is not None:
            shutil.rmtree(last)
        last = out

    print(f"\ndataset: {report['clips']} clips -> {report['windows']} windows, {report['frames']} frames, "
          f"{report['minutes']} min at 20 fps")
    for split, counts_ in report["splits"].items():
        print(f"  {split:<5}: {counts_['clips']:5d} clips {counts_['windows']:5d} windows")
    reasons: dict[str, int] = {}
    for skip in report["skipped"]:
        reason = skip["reason"].split(":")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    print(f"  skipped: {len(report['skipped'])} {reasons}")
    if report["warnings"]:
        print(f"  clips with conversion warnings: {len(report['warnings'])}")

    for split in ("train", "val", "test"):
        t0 = time.perf_counter()
        clips = load_split(last, split)
        print(f"load_split({split}): {len(clips)} clips in {time.perf_counter() - t0:.2f} s")

    if args.keep:
        keep = Path(args.keep)
        if keep.exists():
            shutil.rmtree(keep)
        shutil.move(str(last), keep)
        print(f"kept the last build in {keep}")
    else:
        shutil.rmtree(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
