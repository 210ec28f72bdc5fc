"""Foot-contact clean-up: pin the feet while they touch the floor, and measure foot skate.

Contacts are the HumanML3D channels ``(T, 4)`` booleans in the order (l_ankle, l_foot, r_ankle, r_foot):
``features.foot_contacts(features)`` for generated motion, ``contacts_from_joints(joints)`` otherwise (the
contact channel of ``features.extract_features``). Flag ``t`` says that the joint hardly moves from frame
``t`` to frame ``t + 1``, so an interval of flags ``[s, e)`` covers frames ``s .. e``.

``foot_lock`` holds, during each contact interval, the horizontal position of the joint in contact (ankle or
toe base) at its mean over the interval, and moves the rest of the foot with it; the knee is placed by a
two-bone IK (hip -> knee -> ankle keep their lengths, the knee stays in its own bending plane). The
correction fades out over ``blend`` frames on each side of an interval (cosine ramp). Heights are kept.
"""

from __future__ import annotations

import numpy as np

from .skeleton import NUM_JOINTS

# (hip, knee, ankle, toe base) joints and (ankle, toe) contact columns of each leg.
LEGS: tuple[tuple[tuple[int, int, int, int], tuple[int, int]], ...] = (((1, 4, 7, 10), (0, 1)), ((2, 5, 8, 11), (2, 3)))
BLEND_FRAMES = 4  # 0.2 s at 20 fps
HORIZONTAL = np.array([0, 2])  # model space is Y-up: X and Z are horizontal
_EPS = 1e-9


def _check(joints: np.ndarray, contacts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) < 2:
        raise ValueError(f"joints must have shape (T >= 2, {NUM_JOINTS}, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    contacts = np.asarray(contacts)
    n = len(joints)
    if contacts.ndim != 2 or contacts.shape[1] != 4 or contacts.shape[0] not in (n - 1, n):
        raise ValueError(f"contacts must have shape ({n} or {n - 1}, 4) for {n} joint frames "
                         f"(l_ankle, l_foot, r_ankle, r_foot), got {contacts.shape}")
    if contacts.dtype != bool:
        contacts = contacts > 0.5
    return joints.astype(np.float64), contacts[: n - 1]


def contacts_from_joints(joints: np.ndarray, *, feet_thre: float = 0.002) -> np.ndarray:
    """Contact flags ``(T - 1, 4)`` of joints ``(T, 22, 3)``: the contact channel of ``extract_features``
    (squared foot displacement per frame below ``feet_thre`` m^2 on the HumanML3D-scaled skeleton)."""
    from .features import FEATURE_SLICES, extract_features  # torch-free callers only pay for it here

    return extract_features(joints, feet_thre=feet_thre)[:, FEATURE_SLICES["contacts"]] > 0.5


def contact_intervals(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a 1-d flag array as half-open ``(start, end)`` index pairs."""
    padded = np.concatenate([[False], np.asarray(flags, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(s), int(e)) for s, e in zip(edges[0::2], edges[1::2])]


def _pin(track: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Horizontal correction ``(T, 2)`` holding ``track`` ``(T, 2)`` at its interval mean; NaN off contact."""
    correction = np.full(track.shape, np.nan)
    for start, end in contact_intervals(flags):
        frames = slice(start, end + 1)  # flags [s, e) describe the steps between frames s .. e
        correction[frames] = track[frames].mean(axis=0) - track[frames]
    return correction


def _fade(correction: np.ndarray, blend: int) -> np.ndarray:
    """Fill NaN frames of a correction ``(T, 2)`` from the nearest defined frame, fading to 0 over ``blend``."""
    defined = np.flatnonzero(~np.isnan(correction[:, 0]))
    out = np.zeros_like(correction)
    if len(defined) == 0:
        return out
    frames = np.arange(len(correction))
    slot = np.clip(np.searchsorted(defined, frames), 1, max(len(defined) - 1, 1))
    before, after = defined[slot - 1], defined[np.minimum(slot, len(defined) - 1)]
    nearest = np.where(np.abs(frames - before) <= np.abs(after - frames), before, after)
    distance = np.abs(frames - nearest)
    weight = np.where(distance <= blend, 0.5 * (1.0 + np.cos(np.pi * distance / (blend + 1))), 0.0)
    return correction[nearest] * weight[:, None]


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray,
                target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle ``(T, 3)`` reaching ``target`` from a fixed ``hip``, keeping the thigh and shin lengths
    of the input pose and its bending plane (the one through hip, knee and target). A target out of reach is
    approached along the hip -> target line."""
    thigh = np.linalg.norm(knee - hip, axis=-1)
    shin = np.linalg.norm(ankle - knee, axis=-1)
    to_target = target - hip
    distance = np.linalg.norm(to_target, axis=-1)
    reach = np.clip(distance, np.abs(thigh - shin), thigh + shin)
    u = to_target / np.maximum(distance, _EPS)[:, None]
    bend = (knee - hip) - np.sum((knee - hip) * u, axis=-1, keepdims=True) * u
    bend_norm = np.linalg.norm(bend, axis=-1, keepdims=True)
    fallback = np.cross(u, np.array([1.0, 0.0, 0.0]))  # a straight leg: bend forward-ish about X
    v = np.where(bend_norm > 1e-6, bend / np.maximum(bend_norm, _EPS), fallback / np.maximum(
        np.linalg.norm(fallback, axis=-1, keepdims=True), _EPS))
    cos_a = np.clip((thigh ** 2 + reach ** 2 - shin ** 2) / (2.0 * thigh * reach), -1.0, 1.0)
    new_knee = hip + thigh[:, None] * (cos_a[:, None] * u + np.sqrt(1.0 - cos_a ** 2)[:, None] * v)
    new_ankle = hip + reach[:, None] * u
    return new_knee, new_ankle


def foot_lock(joints: np.ndarray, contacts: np.ndarray, *, blend: int = BLEND_FRAMES) -> np.ndarray:
    """Joints ``(T, 22, 3)`` with the feet pinned during contact (see the module docstring), float32.

    ``contacts``: ``(T, 4)`` or ``(T - 1, 4)`` flags (l_ankle, l_foot, r_ankle, r_foot), booleans or 0/1.
    ``blend``: frames over which a correction fades in before and out after each contact interval.
    """
    joints, flags = _check(joints, contacts)
    if blend < 0:
        raise ValueError(f"blend must be a non-negative number of frames, got {blend}")
    out = joints.copy()
    for (hip, knee, ankle, toe), (ankle_col, toe_col) in LEGS:
        pin_ankle = _pin(joints[:, ankle][:, HORIZONTAL], flags[:, ankle_col])
        pin_toe = _pin(joints[:, toe][:, HORIZONTAL], flags[:, toe_col])
        # A joint in contact follows its own pin; otherwise it moves with the foot's other pinned joint.
        ankle_shift = _fade(np.where(np.isnan(pin_ankle), pin_toe, pin_ankle), blend)
        toe_shift = _fade(np.where(np.isnan(pin_toe), pin_ankle, pin_toe), blend)
        moved = np.flatnonzero(np.any(ankle_shift != 0.0, axis=1) | np.any(toe_shift != 0.0, axis=1))
        target = joints[moved, ankle].copy()
        target[:, HORIZONTAL] += ankle_shift[moved]
        new_knee, new_ankle = two_bone_ik(joints[moved, hip], joints[moved, knee], joints[moved, ankle], target)
        out[moved, knee], out[moved, ankle] = new_knee, new_ankle
        out[moved, toe] = joints[moved, toe] + (new_ankle - target)
        out[moved[:, None], toe, HORIZONTAL] += toe_shift[moved]
    return out.astype(np.float32)


def foot_skate(joints: np.ndarray, contacts: np.ndarray, *, fps: float = 20.0) -> float:
    """Mean horizontal speed (cm/s) of the ankles and toe bases over the steps flagged as contact
    (0.0 when no step is)."""
    joints, flags = _check(joints, contacts)
    feet = [leg[0][2] for leg in LEGS] + [leg[0][3] for leg in LEGS]
    columns = [leg[1][0] for leg in LEGS] + [leg[1][1] for leg in LEGS]
    step = np.diff(joints[:, feet][..., HORIZONTAL], axis=0)
    speed = np.linalg.norm(step, axis=-1) * fps * 100.0
    mask = flags[:, columns]
    return float(speed[mask].mean()) if mask.any() else 0.0
