"""SMPL-22 joint positions → a BVH clip of the SMPL-22 skeleton (composition of ``ik`` and ``bvh``).

The rest pose is fitted to the clip (``ik.clip_rest``) so the BVH offsets carry the clip's own bone
lengths. The children of the joints with several children (hips and spine1 below the pelvis, neck and
collars below spine3: ``SPREAD_JOINTS``) also get position channels holding the clip's own offset on each
frame (``ik.Pose.offsets``): one rotation of the pelvis or spine3 cannot point all of their children where
generated joints put them (the angles between those bones change from frame to frame), so with fixed
offsets those bones would point up to about 11 degrees away from the joints. With the channels every bone
points where the joints do, and the root path is exact.
"""

from __future__ import annotations

import numpy as np

from . import ik
from .bvh import POSITION_CHANNELS, BvhClip, BvhJoint, BvhSkeleton, clip_from_rotations
from .skeleton import JOINT_NAMES, PARENTS

END_SITE_LENGTH = 0.1  # metres, along the parent bone, for the leaves (head, wrists, feet)
SPREAD_JOINTS = tuple(JOINT_NAMES[c] for c, p in enumerate(PARENTS)
                      if p >= 0 and sum(q == p for q in PARENTS) > 1)  # children of several-children joints


def joints_to_bvh_clip(joints: np.ndarray, *, fps: float = 20.0) -> BvhClip:
    """(T, 22, 3) metres, Y-up → BvhClip (6 channels on the pelvis and on ``SPREAD_JOINTS``, 3 on the others,
    ZYX order)."""
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
    clip = clip_from_rotations(list(JOINT_NAMES), parents, offsets, pose.root, pose.rotations, fps,
                               end_sites=end_sites)
    spread = [JOINT_NAMES.index(name) for name in SPREAD_JOINTS]
    return _with_positions(clip, {JOINT_NAMES[j]: offsets[j] + pose.offsets[:, j] for j in spread})


def _with_positions(clip: BvhClip, translations: dict[str, np.ndarray]) -> BvhClip:
    """The clip with position channels (before the rotation channels) on the named joints, holding their
    local translation ``(F, 3)`` on each frame."""
    starts = clip.skeleton.channel_starts
    joints, columns = [], []
    for j, joint in enumerate(clip.skeleton.joints):
        own = clip.motion[:, starts[j]: starts[j] + len(joint.channels)]
        if joint.name in translations and POSITION_CHANNELS[0] not in joint.channels:
            joint = BvhJoint(name=joint.name, parent=joint.parent, offset=joint.offset.copy(),
                             channels=POSITION_CHANNELS + joint.channels, end_site=joint.end_site)
            own = np.concatenate([translations[joint.name], own], axis=1)
        joints.append(joint)
        columns.append(own)
    return BvhClip(skeleton=BvhSkeleton(joints), frame_time=clip.frame_time, motion=np.concatenate(columns, axis=1),
                   source=clip.source)
