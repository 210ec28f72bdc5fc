"""SMPL-22 joint positions → a BVH clip of the SMPL-22 skeleton (composition of ``ik`` and ``bvh``).

The rest pose is fitted to the clip (``ik.clip_rest``) so the BVH offsets carry the clip's own bone
lengths and the written file reproduces the joint positions through forward kinematics.
"""

from __future__ import annotations

import numpy as np

from . import ik
from .bvh import BvhClip, clip_from_rotations
from .skeleton import JOINT_NAMES, PARENTS

END_SITE_LENGTH = 0.1  # metres, along the parent bone, for the leaves (head, wrists, feet)


def joints_to_bvh_clip(joints: np.ndarray, *, fps: float = 20.0) -> BvhClip:
    """(T, 22, 3) metres, Y-up → BvhClip (6 channels on the pelvis, 3 on the others, ZYX order)."""
    joints = np.asarray(joints, dtype=np.float64)
    rest = ik.clip_rest(joints)
    pose = ik.solve(joints, rest=rest)
    parents = np.asarray(PARENTS)
    offsets = np.zeros_like(rest)
    offsets[1:] = rest[1:] - rest[parents[1:]]
    leaves = [j for j in range(len(PARENTS)) if j not in set(PARENTS)]
    end_sites = {}
    for j in leaves:
        bone = offsets[j]
        end_sites[j] = bone / max(np.linalg.norm(bone), 1e-9) * END_SITE_LENGTH
    return clip_from_rotations(list(JOINT_NAMES), parents, offsets, pose.root, pose.rotations, fps,
                               end_sites=end_sites)
