"""The 22-joint SMPL skeleton used by HumanML3D (joint order, parents, chains, offsets).

Joint positions follow the project convention: metres, Y-up, the character faces +Z at frame 0.
Bone offsets are indexed by the child joint: ``TARGET_OFFSETS[j]`` is the vector from ``PARENTS[j]`` to ``j``
in the rest pose, ``TARGET_OFFSETS[0]`` is zero.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle", "spine3",
    "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}
# The joint each joint becomes in the mirror image (left <-> right, the spine stays).
MIRRORED_JOINTS: tuple[int, ...] = tuple(
    JOINT_INDEX[("r_" + n[2:]) if n.startswith("l_") else ("l_" + n[2:]) if n.startswith("r_") else n]
    for n in JOINT_NAMES)

# HumanML3D ``t2m_kinematic_chain``: right leg, left leg, spine + head, right arm, left arm.
# Every chain starts at a joint already placed by an earlier chain.
KINEMATIC_CHAIN: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)


def _parents_from_chains(chains: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    parents = [-1] * NUM_JOINTS
    for chain in chains:
        for parent, child in zip(chain[:-1], chain[1:]):
            parents[child] = parent
    return tuple(parents)


PARENTS: tuple[int, ...] = _parents_from_chains(KINEMATIC_CHAIN)

# HumanML3D ``t2m_raw_offsets``: the rest direction (unit axis) of the bone ending at each joint.
# Arms hang down (-Y); feet and head point forward (+Z).
RAW_OFFSETS = np.array(
    [
        [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
        [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
        [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
    ],
    dtype=np.float32,
)

# HumanML3D target skeleton: RAW_OFFSETS scaled by the bone lengths of frame 0 of the reference clip
# 000021 (its first 22 joints), computed in float32 as HumanML3D does. Exact float32 values.
TARGET_OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.10307396948337555, 0.0, 0.0],
        [-0.1098833680152893, 0.0, 0.0],
        [0.0, 0.13156823813915253, 0.0],
        [0.0, -0.3936232626438141, 0.0],
        [0.0, -0.39018821716308594, 0.0],
        [0.0, 0.14319021999835968, 0.0],
        [0.0, -0.43243300914764404, 0.0],
        [0.0, -0.42564335465431213, 0.0],
        [0.0, 0.05736473575234413, 0.0],
        [0.0, 0.0, 0.14338181912899017],
        [0.0, 0.0, 0.14941906929016113],
        [0.0, 0.21936005353927612, 0.0],
        [0.1374867707490921, 0.0, 0.0],
        [-0.14338283240795135, 0.0, 0.0],
        [0.0, 0.0, 0.1030392050743103],
        [0.0, -0.13161404430866241, 0.0],
        [0.0, -0.122984379529953, 0.0],
        [0.0, -0.2568399906158447, 0.0],
        [0.0, -0.2630918622016907, 0.0],
        [0.0, -0.26601171493530273, 0.0],
        [0.0, -0.2698764204978943, 0.0],
    ],
    dtype=np.float32,
)

# Feet (ankle, foot) used for contacts; lower-leg joints used for the skeleton scale ratio.
FID_L: tuple[int, int] = (7, 10)
FID_R: tuple[int, int] = (8, 11)
LEG_SCALE_JOINTS: tuple[int, int] = (5, 8)  # r_knee, r_ankle: the bones hip->knee and knee->ankle
# Facing direction joints, in HumanML3D order: right hip, left hip, right shoulder, left shoulder.
FACE_JOINT_INDX: tuple[int, int, int, int] = (2, 1, 17, 16)


def _check_joints(joints: np.ndarray, name: str = "joints") -> np.ndarray:
    joints = np.asarray(joints)
    if joints.ndim < 2 or joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"{name} must have shape (..., {NUM_JOINTS}, 3), got {joints.shape}")
    return joints


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Length of the bone ending at each joint, ``(..., 22, 3) -> (..., 22)``; entry 0 (pelvis) is 0."""
    joints = _check_joints(joints)
    parents = np.array(PARENTS)
    parents[0] = 0
    return np.linalg.norm(joints - joints[..., parents, :], axis=-1)


def offsets_from_joints(joints: np.ndarray) -> np.ndarray:
    """HumanML3D skeleton offsets of one pose ``(22, 3) -> (22, 3)``: each RAW_OFFSETS axis times the bone length.

    Computed in float32 like the reference (``Skeleton.get_offsets_joints``).
    """
    joints = _check_joints(joints)
    if joints.ndim != 2:
        raise ValueError(f"joints must be one pose of shape ({NUM_JOINTS}, 3), got {joints.shape}")
    lengths = bone_lengths(joints.astype(np.float64)).astype(np.float32)
    return RAW_OFFSETS * lengths[:, None]


def forward_offsets(offsets: np.ndarray, root: np.ndarray | None = None) -> np.ndarray:
    """Joint positions of a rest pose: each joint = its parent + its offset. ``(22, 3) -> (22, 3)``."""
    offsets = _check_joints(offsets, "offsets")
    joints = np.zeros_like(offsets)
    joints[..., 0, :] = 0.0 if root is None else root
    for chain in KINEMATIC_CHAIN:
        for parent, child in zip(chain[:-1], chain[1:]):
            joints[..., child, :] = joints[..., parent, :] + offsets[..., child, :]
    return joints


def rest_joints() -> np.ndarray:
    """Rest pose of the HumanML3D target skeleton, pelvis at the origin, float32 ``(22, 3)``.

    Legs and spine are straight, arms hang down, feet and head point +Z (HumanML3D's rest axes).
    """
    return forward_offsets(TARGET_OFFSETS).astype(np.float32)


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """Joint positions ``(..., 22, 3)`` of the motion's mirror image in the X = 0 plane: left and right joints
    swap and X changes sign (HumanML3D's mirrored copies, its "M" files)."""
    joints = np.asarray(joints)
    if joints.ndim < 2 or joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (..., {NUM_JOINTS}, 3), got {joints.shape}")
    out = joints[..., list(MIRRORED_JOINTS), :].copy()
    out[..., 0] *= -1
    return out
