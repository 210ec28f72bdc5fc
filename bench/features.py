"""Timing of HumanML3D feature extraction and recovery on the example clips.

    python bench/features.py [--data DIR] [--repeat N]

Prints milliseconds per clip for ``extract_features`` and ``recover_from_ric`` (numpy and torch, with a
backward pass), plus the frames per second they reach.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_core.motion import features as F  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("BAMM_SHARED_DATA", ROOT.parent / "shared" / "data")) / "humanml3d-format"


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="HumanML3D-format folder")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    files = sorted((args.data / "new_joints").glob("*.npy"))
    if not files:
        sys.exit(f"no new_joints/*.npy under {args.data}")
    torch.set_num_threads(1)
    print(f"{'clip':>10} {'frames':>6} {'extract ms':>10} {'recover np ms':>13} {'recover+grad ms':>15}")
    total_frames, total = 0, np.zeros(3)
    for path in files:
        joints = np.load(path)
        vecs = np.load(args.data / "new_joint_vecs" / path.name).astype(np.float32)
        tensor = torch.from_numpy(vecs).requires_grad_(True)
        times = np.array([
            _time(lambda: F.extract_features(joints), args.repeat),
            _time(lambda: F.recover_from_ric(vecs), args.repeat),
            _time(lambda: F.recover_from_ric(tensor).sum().backward(), args.repeat),
        ])
        total_frames, total = total_frames + len(joints), total + times
        ms = times * 1e3
        print(f"{path.stem:>10} {len(joints):>6} {ms[0]:>10.2f} {ms[1]:>13.2f} {ms[2]:>15.2f}")
    fps = total_frames / total
    print(f"frames/s: extract {fps[0]:,.0f}  recover numpy {fps[1]:,.0f}  recover torch+backward {fps[2]:,.0f}")


if __name__ == "__main__":
    main()
