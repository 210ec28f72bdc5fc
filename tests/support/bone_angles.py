"""How far the bones of an SMPL-22 BVH clip point from the joints it was written from (for tests and
bench/smpl_bvh.py)."""

from __future__ import annotations

import numpy as np

from model_core.motion.bvh import forward_kinematics
from model_core.motion.skeleton import JOINT_NAMES, PARENTS
from model_core.motion.smpl_bvh import SPREAD_JOINTS


def bone_angles(clip, joints) -> dict[str, float]:
    """Worst angle (degrees, over frames) between each bone of the clip (parent joint -> joint, through forward
    kinematics) and the same bone of ``joints``."""
    positions = forward_kinematics(clip)[:, [clip.skeleton.names.index(n) for n in JOINT_NAMES]]
    out = {}
    for j, p in enumerate(PARENTS):
        if p >= 0:
            a, b = positions[:, j] - positions[:, p], joints[:, j] - joints[:, p]
            cos = np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
            out[JOINT_NAMES[j]] = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).max())
    return out


def freeze_spread_joints(clip):
    """The clip (changed in place) with the SPREAD_JOINTS' position channels held at their rest OFFSET (fixed
    offsets)."""
    for name in SPREAD_JOINTS:
        j = clip.skeleton.names.index(name)
        start = clip.skeleton.channel_starts[j]
        clip.motion[:, start:start + 3] = clip.skeleton.joints[j].offset
    return clip
