"""Write a tiny synthetic dataset in the layout of ``bamm data build`` (see docs/ARCHITECTURE.md).

Features are extracted from synthetic joints (the rest pose wobbling by a few centimetres while it walks along
a gentle curve), not real motion: enough to train a tokenizer and the transformers for a few steps in tests.

    from support.tiny_dataset import write_tiny_dataset
    root = write_tiny_dataset(tmp_path / "data")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model_core.motion.features import compute_mean_std, extract_features, recover_from_ric
from model_core.motion.skeleton import rest_joints

N_JOINTS = 22
VERBS = ["walks", "runs", "jumps", "waves", "kicks", "turns", "dances", "crouches"]
MANNERS = ["slowly", "quickly", "happily", "angrily", "carefully", "tiredly"]


def smooth_curves(rng: np.random.Generator, frames: int, channels: int) -> np.ndarray:
    """(frames, channels) float64: three sinusoids per channel with random periods and phases, amplitude <= 1."""
    t = np.arange(frames, dtype=np.float64)[:, None] / 20.0  # seconds at 20 fps
    out = np.zeros((frames, channels))
    for _ in range(3):
        freq = rng.uniform(0.3, 2.0, channels)
        phase = rng.uniform(0, 2 * np.pi, channels)
        out += rng.uniform(0.1, 1.0, channels) / 3 * np.sin(2 * np.pi * freq * t + phase)
    return out


def synthetic_joints(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames, 22, 3) metres: the rest pose with joints wobbling by a few centimetres, walking along a curve."""
    joints = rest_joints()[None] + 0.06 * smooth_curves(rng, frames, N_JOINTS * 3).reshape(frames, N_JOINTS, 3)
    yaw = np.cumsum(np.full(frames, rng.uniform(-0.03, 0.03)))  # gentle turn, radians per frame
    speed = rng.uniform(0.0, 0.07)  # metres per frame
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x, z = joints[..., 0].copy(), joints[..., 2].copy()
    joints[..., 0], joints[..., 2] = c * x + s * z, -s * x + c * z
    joints[..., 0] += np.cumsum(speed * np.sin(yaw))[:, None]
    joints[..., 2] += np.cumsum(speed * np.cos(yaw))[:, None]
    joints[..., 1] -= joints[..., 1].min() - 0.02  # on the floor
    return joints.astype(np.float32)


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
            features = extract_features(synthetic_joints(rng, frames + 1))  # one frame fewer than the joints
            joints = recover_from_ric(features).astype(np.float32)
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
    mean, std = compute_mean_std(all_features)
    np.save(root / "Mean.npy", mean)
    np.save(root / "Std.npy", np.maximum(std, 1e-3))
    (root / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return root
