"""HumanML3D 263-d motion features: extraction from joint positions, recovery, mirroring, Mean/Std normalisation.

Layout of one feature frame (22 joints), see ``FEATURE_SLICES``::

    0       root yaw velocity (half the yaw change to the next frame, radians)
    1:3     root XZ velocity in the root's facing frame (metres / frame)
    3       root height
    4:67    ric: joints 1..21 relative to the root, XZ-centred and turned to face +Z
    67:193  rot: continuous 6D local rotations of joints 1..21 (first two matrix columns)
    193:259 vel: all 22 joint velocities in the root's facing frame
    259:263 foot contacts (l_ankle, l_foot, r_ankle, r_foot), 1.0 or 0.0

The extraction follows HumanML3D's ``process_file`` step for step (uniform skeleton, floor, XZ origin,
face +Z, yaw from hips and shoulders smoothed over time, first frame's root rotation set to identity,
per-chain bone inverse kinematics) so that features match the published dataset.
"""

from __future__ import annotations

import numpy as np

try:  # optional: torch inputs get differentiable torch outputs; numpy inputs never need it
    import torch
except ImportError:  # pragma: no cover - exercised inside Blender's own Python
    torch = None

from .rotations import gaussian_filter1d, quat_between, quat_from_rotvec, quat_to_matrix
from .skeleton import (
    FACE_JOINT_INDX, FID_L, FID_R, JOINT_NAMES, KINEMATIC_CHAIN, LEG_SCALE_JOINTS, MIRRORED_JOINTS, NUM_JOINTS,
    PARENTS, RAW_OFFSETS, TARGET_OFFSETS,
)

FEATURE_DIM = 263
FEATURE_SLICES: dict[str, slice] = {
    "root": slice(0, 4),
    "ric": slice(4, 67),
    "rot": slice(67, 193),
    "vel": slice(193, 259),
    "contacts": slice(259, 263),
}
FACING_SIGMA = 20.0  # frames; Gaussian smoothing of the facing direction before the root rotation



def _is_tensor(x) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)

def feature_dim(joints_num: int = NUM_JOINTS) -> int:
    """Size of a HumanML3D feature frame for ``joints_num`` joints (263 for 22, 251 for KIT's 21)."""
    return 12 * joints_num - 1


# ----------------------------------------------------------------------------------------------- checks

def _check_joints(joints: np.ndarray) -> np.ndarray:
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (T, {NUM_JOINTS}, 3), got {joints.shape}")
    if joints.shape[0] < 2:
        raise ValueError(f"joints need at least 2 frames (velocities use the next frame), got {joints.shape[0]}")
    if not np.isfinite(joints).all():
        frame = int(np.nonzero(~np.isfinite(joints).all(axis=(1, 2)))[0][0])
        raise ValueError(f"joints contain NaN or infinite values (first at frame {frame})")
    return joints.astype(np.float64)


def _unit_bones(joints: np.ndarray) -> np.ndarray:
    """Unit direction of the bone ending at each joint ``(T, 22, 3)``; row 0 is zero."""
    parents = np.array(PARENTS)
    parents[0] = 0
    bones = joints - joints[:, parents]
    lengths = np.linalg.norm(bones, axis=-1, keepdims=True)
    short = lengths[:, 1:, 0] < 1e-8
    if short.any():
        frame, joint = np.argwhere(short)[0]
        raise ValueError(f"joints: bone ending at '{JOINT_NAMES[joint + 1]}' has zero length at frame {frame}")
    lengths[:, 0] = 1.0
    return bones / lengths


# ------------------------------------------------------------------------------------------- rotations

def _rotate_y(v, angle):
    """Rotate vectors ``v (..., 3)`` by ``angle (...)`` radians about +Y (numpy or torch, differentiable)."""
    lib = torch if _is_tensor(v) else np
    c, s = lib.cos(angle), lib.sin(angle)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return lib.stack([c * x + s * z, y, c * z - s * x], -1)


def _facing_yaw(joints: np.ndarray, *, ik_variant: bool) -> np.ndarray:
    """Yaw (T,) that turns each frame's facing direction (from hips and shoulders) onto +Z.

    ``ik_variant`` reproduces HumanML3D's ``Skeleton.inverse_kinematics_np``, which unpacks the facing
    joints as (l_hip, r_hip, ...) and so adds the hip vector reversed, then smooths the direction over time
    (Gaussian, sigma 20 frames). Without it: ``process_file``'s facing from frame data as given.
    """
    r_hip, l_hip, sdr_r, sdr_l = FACE_JOINT_INDX
    hips = joints[:, r_hip] - joints[:, l_hip]
    across = (-hips if ik_variant else hips) + (joints[:, sdr_r] - joints[:, sdr_l])
    across = across / np.linalg.norm(across, axis=-1, keepdims=True)
    forward_x, forward_z = across[:, 2], -across[:, 0]  # cross(+Y, across)
    if ik_variant:
        forward_x = gaussian_filter1d(forward_x, FACING_SIGMA)  # scipy's mode="nearest"
        forward_z = gaussian_filter1d(forward_z, FACING_SIGMA)
    return -np.arctan2(forward_x, forward_z)


def _frame_joints() -> np.ndarray:
    """For each joint, the joint whose global rotation its local rotation is relative to (0 = root yaw)."""
    frame = np.zeros(NUM_JOINTS, dtype=int)
    for chain in KINEMATIC_CHAIN:
        for k in range(2, len(chain)):
            frame[chain[k]] = chain[k - 1]
    return frame


def local_cont6d(joints: np.ndarray, root_yaw: np.ndarray) -> np.ndarray:
    """HumanML3D bone IK as continuous 6D rotations ``(T, 22, 6)``; row 0 is the root yaw.

    Each bone's global rotation is the shortest arc from its ``RAW_OFFSETS`` axis to its direction; the
    local rotation is relative to the previous bone of its kinematic chain, or to the root yaw for the
    first bone of every chain (also for the arm chains that start at spine3, as in HumanML3D).
    """
    t = len(joints)
    dirs = _unit_bones(joints)
    glob = np.empty((t, NUM_JOINTS, 3, 3))
    glob[:, 0] = quat_to_matrix(quat_from_rotvec(np.stack([np.zeros(t), root_yaw, np.zeros(t)], -1)))
    glob[:, 1:] = quat_to_matrix(quat_between(RAW_OFFSETS[1:].astype(np.float64), dirs[:, 1:]))
    local = np.swapaxes(glob[:, _frame_joints()], -1, -2) @ glob
    local[:, 0] = glob[:, 0]
    return np.concatenate([local[..., 0], local[..., 1]], axis=-1)


# ------------------------------------------------------------------------------------------ extraction

def uniform_skeleton(joints: np.ndarray, target_offsets: np.ndarray = TARGET_OFFSETS) -> np.ndarray:
    """Retarget joint positions ``(T, 22, 3)`` onto the target skeleton (HumanML3D ``uniform_skeleton``).

    Every bone keeps its direction and takes the target length; the root path is scaled by the ratio of
    the lower-leg lengths (target / frame 0). This equals HumanML3D's IK -> FK round trip, whose IK only
    aligns each bone's rest axis with the bone.
    """
    joints = _check_joints(joints)
    target_len = np.linalg.norm(np.asarray(target_offsets, dtype=np.float64), axis=-1)
    parents = np.array(PARENTS)
    parents[0] = 0
    src_len = np.linalg.norm(joints[0] - joints[0, parents], axis=-1)
    knee, ankle = LEG_SCALE_JOINTS
    scale = (target_len[knee] + target_len[ankle]) / (src_len[knee] + src_len[ankle])
    dirs = _unit_bones(joints)
    out = np.zeros_like(joints)
    out[:, 0] = joints[:, 0] * scale
    for chain in KINEMATIC_CHAIN:
        for prev, child in zip(chain[:-1], chain[1:]):
            out[:, child] = out[:, prev] + target_len[child] * dirs[:, child]
    return out


def canonicalize(joints: np.ndarray) -> np.ndarray:
    """Put the lowest joint of the clip on the floor, the root at XZ = 0 and frame 0 facing +Z."""
    joints = _check_joints(joints).copy()
    joints[..., 1] -= joints[..., 1].min()
    joints -= joints[0, 0] * np.array([1.0, 0.0, 1.0])
    yaw0 = _facing_yaw(joints[:1], ik_variant=False)[0]
    return _rotate_y(joints, yaw0)


def extract_features(joints: np.ndarray, *, feet_thre: float = 0.002, fix_heading_wrap: bool = False) -> np.ndarray:
    """HumanML3D features of a clip: joints ``(T, 22, 3)`` (metres, Y-up, 20 fps) -> ``(T - 1, 263)`` float32.

    Runs HumanML3D's ``process_file``: uniform skeleton, floor, XZ origin, face +Z, then the features.
    ``feet_thre`` is the squared per-frame foot displacement (m^2) under which a foot is in contact.

    ``fix_heading_wrap``: HumanML3D reads the yaw velocity as arcsin of a relative quaternion that is not
    sign-canonicalised, so a frame where the heading crosses +-180 degrees gets a yaw velocity of the wrong
    sign (the published data has this; ``recover_from_ric`` then turns the rest of the clip off by twice that
    frame's yaw change). False (default) reproduces the published features; True writes the true yaw change.
    """
    if not np.isfinite(feet_thre) or feet_thre <= 0:
        raise ValueError(f"feet_thre must be a positive number, got {feet_thre}")
    positions = canonicalize(uniform_skeleton(joints))

    step = positions[1:] - positions[:-1]
    sq_speed = np.sum(step ** 2, axis=-1)
    contacts = (sq_speed[:, list(FID_L) + list(FID_R)] < feet_thre).astype(np.float64)

    root_yaw = _facing_yaw(positions, ik_variant=True)
    root_yaw[0] = 0.0  # HumanML3D sets the first frame's root rotation to identity
    rot = local_cont6d(positions, root_yaw).astype(np.float32)  # HumanML3D converts in float32

    half = root_yaw / 2.0
    if fix_heading_wrap:
        turn = root_yaw[1:] - root_yaw[:-1]
        yaw_vel = np.arctan2(np.sin(turn), np.cos(turn)) / 2.0
    else:
        yaw_vel = np.arcsin(np.sin(half[1:] - half[:-1]))
    root_vel = _rotate_y(step[:, 0], root_yaw[1:])
    local_vel = _rotate_y(step, root_yaw[:-1, None])

    centred = positions - positions[:, :1] * np.array([1.0, 0.0, 1.0])
    ric = _rotate_y(centred, root_yaw[:, None])

    t = len(positions) - 1
    feats = np.concatenate([
        yaw_vel[:, None], root_vel[:, [0, 2]], positions[:-1, 0, 1:2],
        ric[:-1, 1:].reshape(t, -1), rot[:-1, 1:].reshape(t, -1), local_vel.reshape(t, -1), contacts,
    ], axis=-1)
    return feats.astype(np.float32)


def foot_contacts(features):
    """Foot contact flags ``(..., T, 4)`` booleans (l_ankle, l_foot, r_ankle, r_foot); numpy or torch."""
    _check_features(features, NUM_JOINTS)
    return features[..., FEATURE_SLICES["contacts"]] > 0.5


# -------------------------------------------------------------------------------------------- recovery

def _check_features(features, joints_num: int) -> None:
    if not (isinstance(features, np.ndarray) or _is_tensor(features)):
        raise ValueError(f"features must be a numpy array or torch tensor, got {type(features).__name__}")
    dim = feature_dim(joints_num)
    if features.ndim < 2 or features.shape[-1] != dim:
        raise ValueError(f"features must have shape (..., T, {dim}) for {joints_num} joints, got "
                         f"{tuple(features.shape)}")
    if features.shape[-2] < 1:
        raise ValueError("features have no frames")


def _as_float(features):
    """Torch tensors as they are (differentiable); anything else as a float64 numpy array."""
    return features if _is_tensor(features) else np.asarray(features, dtype=np.float64)


def _lib(x):
    """The array library of ``x`` and its concatenation (``torch.cat`` or ``np.concatenate``)."""
    return (torch, torch.cat) if _is_tensor(x) else (np, np.concatenate)


def _root_yaw_pos(f):
    """Root yaw ``(..., T)`` and position ``(..., T, 3)`` of features ``f`` (numpy float64 or torch)."""
    lib, cat = _lib(f)
    half = lib.cumsum(f[..., :-1, 0], -1)
    yaw = 2.0 * cat([lib.zeros_like(f[..., :1, 0]), half], -1)
    vel = lib.stack([f[..., :-1, 1], lib.zeros_like(f[..., :-1, 1]), f[..., :-1, 2]], -1)
    step = _rotate_y(vel, -yaw[..., 1:])
    xz = cat([lib.zeros_like(step[..., :1, :]), lib.cumsum(step, -2)], -2)
    pos = lib.stack([xz[..., 0], f[..., 3], xz[..., 2]], -1)
    return yaw, pos


def recover_root_rot_pos(features):
    """Root yaw ``(..., T)`` (radians; world = R_y(-yaw) * facing frame) and root position ``(..., T, 3)``.

    Integrates the yaw and XZ velocities from zero like HumanML3D (whose root quaternion is
    ``(cos(yaw/2), 0, sin(yaw/2), 0)``). numpy in -> float32 numpy out, computed in float64 with numpy alone;
    torch in -> torch out (differentiable).
    """
    _check_features(features, NUM_JOINTS)
    yaw, pos = _root_yaw_pos(_as_float(features))
    if _is_tensor(features):
        return yaw, pos
    return yaw.astype(np.float32), pos.astype(np.float32)


def recover_from_ric(features, joints_num: int = NUM_JOINTS):
    """Joint positions ``(..., T, joints_num, 3)`` from features ``(..., T, 12 * joints_num - 1)``.

    numpy in -> float32 numpy out (computed in float64 with numpy alone, no torch needed); torch in -> torch
    out, differentiable.
    """
    _check_features(features, joints_num)
    f = _as_float(features)
    lib, cat = _lib(f)
    yaw, root = _root_yaw_pos(f)
    ric = f[..., 4:4 + (joints_num - 1) * 3]
    ric = ric.reshape(*ric.shape[:-1], joints_num - 1, 3)
    joints = _rotate_y(ric, -yaw[..., None])
    offset = lib.stack([root[..., 0], lib.zeros_like(root[..., 0]), root[..., 2]], -1)
    joints = cat([root[..., None, :], joints + offset[..., None, :]], -2)
    return joints if _is_tensor(features) else joints.astype(np.float32)


# --------------------------------------------------------------------------------------------- mirror

def _mirror_index_sign() -> tuple[np.ndarray, np.ndarray]:
    """Source index and sign of every feature of the mirror image (see `mirror_features`)."""
    index, sign = np.arange(FEATURE_DIM), np.ones(FEATURE_DIM)
    sign[0] = sign[1] = -1.0  # yaw velocity turns the other way; sideways root velocity flips
    for slot, joint in enumerate(range(1, NUM_JOINTS)):  # ric: joints 1..21, 3 values each
        index[4 + 3 * slot:7 + 3 * slot] = 4 + 3 * (MIRRORED_JOINTS[joint] - 1) + np.arange(3)
        sign[4 + 3 * slot] = -1.0
    # rot: R -> S R S with S = diag(-1, 1, 1) flips the entries with exactly one index 0; the 6 values are
    # the first two columns, (0,0) (1,0) (2,0) (0,1) (1,1) (2,1)
    for slot, joint in enumerate(range(1, NUM_JOINTS)):
        index[67 + 6 * slot:73 + 6 * slot] = 67 + 6 * (MIRRORED_JOINTS[joint] - 1) + np.arange(6)
        sign[67 + 6 * slot:73 + 6 * slot] = (1.0, -1.0, -1.0, -1.0, 1.0, 1.0)
    for joint in range(NUM_JOINTS):  # vel: all 22 joints
        index[193 + 3 * joint:196 + 3 * joint] = 193 + 3 * MIRRORED_JOINTS[joint] + np.arange(3)
        sign[193 + 3 * joint] = -1.0
    index[259:263] = (261, 262, 259, 260)  # contacts (l_ankle, l_foot, r_ankle, r_foot) swap sides
    return index, sign


_MIRROR_INDEX, _MIRROR_SIGN = _mirror_index_sign()


def mirror_features(features):
    """Features ``(..., T, 263)`` of the motion's mirror image (left and right swapped, X negated): what
    `extract_features` gives for `skeleton.mirror_joints` of the motion, up to the target skeleton's small
    left/right bone-length differences. Un-normalised features; numpy or torch in, the same out."""
    _check_features(features, NUM_JOINTS)
    if _is_tensor(features):
        index = torch.as_tensor(_MIRROR_INDEX, device=features.device)
        return features[..., index] * torch.as_tensor(_MIRROR_SIGN, dtype=features.dtype, device=features.device)
    features = np.asarray(features)
    return (features[..., _MIRROR_INDEX] * _MIRROR_SIGN).astype(features.dtype)


# ----------------------------------------------------------------------------------------- Mean / Std

def std_groups(joints_num: int = NUM_JOINTS) -> dict[str, slice]:
    """Feature groups that share one Std value (HumanML3D ``cal_mean_variance``)."""
    ric_end = 4 + (joints_num - 1) * 3
    rot_end = 4 + (joints_num - 1) * 9
    vel_end = rot_end + joints_num * 3
    return {"root_rot_vel": slice(0, 1), "root_lin_vel": slice(1, 3), "root_y": slice(3, 4),
            "ric": slice(4, ric_end), "rot": slice(ric_end, rot_end), "vel": slice(rot_end, vel_end),
            "contacts": slice(vel_end, vel_end + 4)}


BIASED_GROUPS = ("root_rot_vel", "root_lin_vel", "root_y", "contacts")


def compute_mean_std(features_list, *, feat_bias: float = 1.0, joints_num: int = NUM_JOINTS):
    """Per-dimension Mean and group-averaged Std over clips of features, float32 ``(263,)`` each.

    HumanML3D's ``cal_mean_variance``: the Std of every dimension is replaced by the average over its group
    (``std_groups``). ``feat_bias`` divides the Std of the root and contact groups (``BIASED_GROUPS``);
    the published Mean/Std use 1.0, the text-to-motion training loaders use 5.
    """
    if feat_bias <= 0:
        raise ValueError(f"feat_bias must be positive, got {feat_bias}")
    dim = feature_dim(joints_num)
    clips = [np.asarray(f, dtype=np.float64) for f in features_list]
    if not clips:
        raise ValueError("features_list is empty")
    for i, clip in enumerate(clips):
        if clip.ndim != 2 or clip.shape[1] != dim:
            raise ValueError(f"features_list[{i}] must have shape (T, {dim}), got {clip.shape}")
        if not np.isfinite(clip).all():
            raise ValueError(f"features_list[{i}] contains NaN or infinite values")
    data = np.concatenate(clips, axis=0)
    mean, std = data.mean(axis=0), data.std(axis=0)
    for name, group in std_groups(joints_num).items():
        std[group] = std[group].mean() / (feat_bias if name in BIASED_GROUPS else 1.0)
        if std[group][0] == 0:
            raise ValueError(f"feature group '{name}' is constant over features_list; Std would be 0")
    return mean.astype(np.float32), std.astype(np.float32)


def _like(stat, x):
    if _is_tensor(x):
        return torch.as_tensor(stat, dtype=x.dtype, device=x.device)
    return np.asarray(stat)


def normalize(x, mean, std):
    """``(x - mean) / std`` over the last axis (numpy or torch; stats may be either)."""
    return (x - _like(mean, x)) / _like(std, x)


def denormalize(x, mean, std):
    """``x * std + mean`` over the last axis (numpy or torch; stats may be either)."""
    return x * _like(std, x) + _like(mean, x)
