"""Write a tiny synthetic dataset in the layout of ``bamm data build`` (see docs/ARCHITECTURE.md).

Features are smooth random curves (sums of a few sinusoids per channel plus a slow drift), not real motion:
enough to train a tokenizer and the transformers for a few steps in unit tests.

    from support.tiny_dataset import write_tiny_dataset
    root = write_tiny_dataset(tmp_path / "data")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FEATURE_DIM = 263
N_JOINTS = 22
VERBS = ["walks", "runs", "jumps", "waves", "kicks", "turns", "dances", "crouches"]
MANNERS = ["slowly", "quickly", "happily", "angrily", "carefully", "tiredly"]


def smooth_curves(rng: np.random.Generator, frames: int, channels: int) -> np.ndarray:
    """(frames, channels) float32: three sinusoids per channel with random periods and phases, plus a drift."""
    t = np.arange(frames, dtype=np.float64)[:, None] / 20.0  # seconds at 20 fps
    out = np.zeros((frames, channels))
    for _ in range(3):
        freq = rng.uniform(0.2, 2.0, channels)
        phase = rng.uniform(0, 2 * np.pi, channels)
        amp = rng.uniform(0.1, 1.0, channels)
        out += amp * np.sin(2 * np.pi * freq * t + phase)
    out += rng.normal(0, 0.3, channels) * t
    return out.astype(np.float32)


def caption_lines(rng: np.random.Generator, frames: int, n_captions: int, with_range: bool) -> list[str]:
    """HumanML3D caption lines ``caption#tokens#start#end`` (start/end in seconds; 0#0 = the whole clip)."""
    lines = []
    for i in range(n_captions):
        verb, manner = VERBS[rng.integers(len(VERBS))], MANNERS[rng.integers(len(MANNERS))]
        text = f"a person {verb} {manner}"
        tokens = f"a/DET person/NOUN {verb[:-1]}/VERB {manner}/ADV"
        start, end = 0.0, 0.0
        if with_range and i == n_captions - 1:  # one caption on a sub-range of the clip
            start, end = 0.5, round(min(frames / 20.0, 0.5 + 3.0), 1)
        lines.append(f"{text}#{tokens}#{start}#{end}")
    return lines


def write_tiny_dataset(root: str | Path, *, n_train: int = 16, n_val: int = 4, n_test: int = 4,
                       min_frames: int = 72, max_frames: int = 160, seed: int = 0) -> Path:
    """Write the dataset under `root` and return it. Clip lengths are drawn in [min_frames, max_frames]."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    splits = {"train": n_train, "val": n_val, "test": n_test}
    ids_by_split, all_features, meta = {}, [], []
    for split, count in splits.items():
        ids_by_split[split] = []
        for _ in range(count):
            clip_id = f"{len(meta):06d}"
            frames = int(rng.integers(min_frames, max_frames + 1))
            features = smooth_curves(rng, frames, FEATURE_DIM)
            joints = smooth_curves(rng, frames, N_JOINTS * 3).reshape(frames, N_JOINTS, 3)
            np.save(root / "new_joint_vecs" / f"{clip_id}.npy", features)
            np.save(root / "new_joints" / f"{clip_id}.npy", joints)
            lines = caption_lines(rng, frames, n_captions=int(rng.integers(1, 4)), with_range=len(meta) % 3 == 0)
            (root / "texts" / f"{clip_id}.txt").write_text("\n".join(lines) + "\n")
            ids_by_split[split].append(clip_id)
            all_features.append(features)
            meta.append({"id": clip_id, "source": f"synthetic_{clip_id}.bvh", "content": VERBS[len(meta) % 4],
                         "style": MANNERS[len(meta) % 3], "start": 0, "frames": frames})
    for split, ids in ids_by_split.items():
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
    stacked = np.concatenate(all_features)
    np.save(root / "Mean.npy", stacked.mean(0).astype(np.float32))
    np.save(root / "Std.npy", np.maximum(stacked.std(0), 1e-3).astype(np.float32))
    (root / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return root
