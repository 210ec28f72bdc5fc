"""Joint positions -> local bone rotations + root translation, and back (forward kinematics).

One bone per joint: the bone of joint ``j`` rotates everything below ``j``. A pose is

* ``rotations`` ``(T, J, 4)`` float64 unit quaternions, scalar LAST (``x, y, z, w``, scipy's order): the
  rotation of joint ``j`` relative to its parent, measured from the rest pose (identity = rest pose);
* ``root`` ``(T, 3)``: the position of the root joint.

Forward kinematics: ``global[j] = global[parent] * rotations[j]`` and
``joints[c] = joints[parent] + global[parent].apply(rest[c] - rest[parent])``.

The solve is analytic, frame-vectorised:

* a joint with one child gets the shortest rotation (swing) taking its rest bone direction to the target
  direction. Joint positions say nothing about the twist about the bone; the twist is carried from the
  previous frame (the rotation from frame t-1 to t is the smallest one, so a bone passing through the
  direction opposite to its rest direction does not flip) and relaxed towards zero by ``twist_decay`` per
  frame, so it never drifts;
* a joint with several children (pelvis, spine3) gets the best-fit rotation of its rest child directions
  onto the target ones (Kabsch, ``rotations.quat_align_vectors``); what the fit leaves over is kept as ``offsets``;
* a leaf joint (head, wrists, feet) keeps the rest rotation.

``offsets`` ``(T, J, 3)`` moves a child of a several-children joint away from its rest place, in the rest
frame of its parent (zero for every other joint). HumanML3D clips need it: the retargeting to the target
skeleton rotates every bone on its own, so the hips, spine1 (around the pelvis) and neck and collars (around
spine3) sit at angles that differ from the axis-aligned rest offsets and from subject to subject (they are
fixed within a clip). ``clip_rest`` gives a rest pose that fits one clip, whose offsets are then about zero.

With rest bone lengths equal to the clip's bone lengths (all HumanML3D clips share the target skeleton) the
round trip ``forward(*solve(joints))`` reproduces the joints to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from .rotations import (
    lfilter, quat_align_vectors, quat_apply, quat_between, quat_from_rotvec, quat_identity, quat_inverse,
    quat_multiply, quat_slerp, quat_to_rotvec,
)
from .skeleton import PARENTS, rest_joints

TWIST_DECAY = 0.97  # share of the carried twist kept per 20-fps frame (half-life about 1.1 s: unwinds slowly)
_EPS = 1e-9


@dataclass
class Pose:
    """A pose sequence: ``rotations`` ``(T, J, 4)`` xyzw, ``root`` ``(T, 3)``, ``offsets`` ``(T, J, 3)``."""

    rotations: np.ndarray
    root: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        self.rotations = np.asarray(self.rotations, dtype=np.float64)
        self.root = np.asarray(self.root, dtype=np.float64)
        self.offsets = np.asarray(self.offsets, dtype=np.float64)
        n, j = self.rotations.shape[:2] if self.rotations.ndim == 3 else (-1, -1)
        if self.rotations.shape != (n, j, 4) or self.root.shape != (n, 3) or self.offsets.shape != (n, j, 3):
            raise ValueError(
                f"Pose shapes disagree: rotations {self.rotations.shape} (T, J, 4), root {self.root.shape} "
                f"(T, 3), offsets {self.offsets.shape} (T, J, 3)"
            )

    def __len__(self) -> int:
        return self.rotations.shape[0]

    def __getitem__(self, frames: slice) -> Pose:
        return Pose(self.rotations[frames], self.root[frames], self.offsets[frames])


def _check(joints: np.ndarray, parents, rest) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    joints = np.asarray(joints, dtype=np.float64)
    parents = tuple(int(p) for p in parents)
    rest = np.asarray(rest_joints() if rest is None else rest, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (len(parents), 3) or joints.shape[0] < 1:
        raise ValueError(f"joints must have shape (T>=1, {len(parents)}, 3), got {joints.shape}")
    if rest.shape != (len(parents), 3):
        raise ValueError(f"rest must have shape ({len(parents)}, 3), got {rest.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    if any(p >= j for j, p in enumerate(parents)):
        raise ValueError(f"parents must list every parent before its child, got {parents}")
    return joints, parents, rest


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, _EPS)


def continuous(quats: np.ndarray) -> np.ndarray:
    """Flip quaternion signs along axis 0 so consecutive quaternions have a non-negative dot product."""
    quats = np.array(quats, dtype=np.float64)
    if len(quats) > 1:
        dots = np.sum(quats[1:] * quats[:-1], axis=-1)
        signs = np.cumprod(np.where(dots < 0.0, -1.0, 1.0), axis=0)
        quats[1:] *= signs[..., None]
    return quats


def _swing_twist(rest_dir: np.ndarray, target: np.ndarray, twist_decay: float) -> np.ndarray:
    """Local rotations ``(T, 4)`` of a one-child bone: swing ``rest_dir`` -> ``target`` plus a carried twist."""
    axis = _unit(rest_dir)
    u = _unit(target)
    swing = quat_between(axis, u)
    # Twist picked up by the smallest rotation from frame t-1 to t, measured in the rest frame of the bone:
    # swing[t]^-1 * step[t] * swing[t-1] maps the bone axis to itself, so it is a pure twist about it.
    if len(u) > 1:
        step = quat_between(u[:-1], u[1:])
        loop = quat_multiply(quat_multiply(quat_inverse(swing[1:]), step), swing[:-1])
    else:
        loop = np.zeros((0, 4))
    phi = 2.0 * np.arctan2(loop[:, :3] @ axis, loop[:, 3])
    phi = (phi + np.pi) % (2.0 * np.pi) - np.pi
    theta = lfilter([twist_decay], [1.0, -twist_decay], np.concatenate([[0.0], phi]))
    return quat_multiply(swing, quat_from_rotvec(theta[:, None] * axis))


def solve(
    joints: np.ndarray,
    *,
    parents=PARENTS,
    rest: np.ndarray | None = None,
    twist_decay: float = TWIST_DECAY,
) -> Pose:
    """Joint positions ``(T, J, 3)`` -> ``Pose`` (local rotations, root position, offsets).

    ``rest`` is the rest pose ``(J, 3)`` (default: ``skeleton.rest_joints()``, the HumanML3D target skeleton);
    only its bone directions and lengths matter. ``twist_decay`` in [0, 1]: 0 = no twist about a one-child
    bone (shortest swing from rest, flips when a bone passes its opposite direction), 1 = pure carry.
    """
    joints, parents, rest = _check(joints, parents, rest)
    if not 0.0 <= twist_decay <= 1.0:
        raise ValueError(f"twist_decay must be in [0, 1], got {twist_decay}")
    n_frames, n_joints = joints.shape[:2]
    children = [[c for c in range(n_joints) if parents[c] == j] for j in range(n_joints)]
    local = np.zeros((n_frames, n_joints, 4))
    local[..., 3] = 1.0
    offsets = np.zeros((n_frames, n_joints, 3))
    world: list[np.ndarray] = []  # (T, 4) global rotation of each joint solved so far
    for j in range(n_joints):
        parent_world = world[parents[j]] if parents[j] >= 0 else quat_identity(n_frames)
        kids = children[j]
        if len(kids) == 1:
            target = quat_apply(quat_inverse(parent_world), joints[:, kids[0]] - joints[:, j])
            local[:, j] = continuous(_swing_twist(rest[kids[0]] - rest[j], target, twist_decay))
        elif len(kids) > 1:
            targets = quat_apply(quat_inverse(parent_world)[:, None], joints[:, kids] - joints[:, j : j + 1])
            rest_units = np.broadcast_to(_unit(rest[kids] - rest[j]), targets.shape)
            local[:, j] = continuous(quat_align_vectors(_unit(targets), rest_units))
        world.append(quat_multiply(parent_world, local[:, j]))
        if len(kids) > 1:  # what the best fit leaves over, in the rest frame of joint j
            inverse = quat_inverse(world[j])
            for c in kids:
                offsets[:, c] = quat_apply(inverse, joints[:, c] - joints[:, j]) - (rest[c] - rest[j])
    return Pose(local, joints[:, 0].copy(), offsets)


def clip_rest(joints: np.ndarray, *, parents=PARENTS, rest: np.ndarray | None = None) -> np.ndarray:
    """A rest pose ``(J, 3)`` that fits one clip: ``rest`` with the children of several-children joints moved
    by their mean ``offsets`` over the clip (so ``solve(joints, rest=clip_rest(joints))`` needs no offsets
    when, as in HumanML3D, those joints keep fixed angles within the clip)."""
    joints, parents, rest = _check(joints, parents, rest)
    offsets = solve(joints, parents=parents, rest=rest).offsets.mean(axis=0)
    bones = np.array([rest[j] - rest[p] if p >= 0 else rest[j] for j, p in enumerate(parents)]) + offsets
    fitted = np.zeros_like(rest)
    for j, p in enumerate(parents):
        fitted[j] = bones[j] if p < 0 else fitted[p] + bones[j]
    return fitted


def forward(pose: Pose, *, parents=PARENTS, rest: np.ndarray | None = None) -> np.ndarray:
    """Forward kinematics: ``Pose`` -> joints ``(T, J, 3)``."""
    parents = tuple(int(p) for p in parents)
    rest = np.asarray(rest_joints() if rest is None else rest, dtype=np.float64)
    if pose.rotations.shape[1] != len(parents) or rest.shape != (len(parents), 3):
        raise ValueError(f"pose has {pose.rotations.shape[1]} joints, rest {rest.shape}, parents {len(parents)}")
    joints = np.zeros((len(pose), len(parents), 3))
    world: list[np.ndarray] = []  # (T, 4) global rotation of each joint
    for j, p in enumerate(parents):
        local = pose.rotations[:, j]
        if p < 0:
            joints[:, j] = pose.root
            world.append(local)
        else:
            joints[:, j] = joints[:, p] + quat_apply(world[p], rest[j] - rest[p] + pose.offsets[:, j])
            world.append(quat_multiply(world[p], local))
    return joints


def sample(pose: Pose, times: np.ndarray) -> Pose:
    """The pose at fractional frame ``times`` (in this pose's frames, clamped to its span): slerp per joint,
    linear root and offsets."""
    times = np.clip(np.asarray(times, dtype=np.float64), 0.0, len(pose) - 1)
    if len(pose) == 1:
        return pose[np.zeros(len(times), dtype=int)]
    frames = np.arange(len(pose), dtype=np.float64)
    rotations = continuous(quat_slerp(frames, pose.rotations, times))

    def lerp(values: np.ndarray) -> np.ndarray:
        flat = values.reshape(len(pose), -1)
        out = np.stack([np.interp(times, frames, flat[:, k]) for k in range(flat.shape[1])], axis=-1)
        return out.reshape((len(times),) + values.shape[1:])

    return Pose(rotations, lerp(pose.root), lerp(pose.offsets))


def resample(pose: Pose, *, fps_in: float, fps_out: float) -> Pose:
    """Resample a pose sequence in time (``sample`` on the ``fps_out`` grid); frame 0 stays frame 0.

    Returns ``floor((T - 1) * fps_out / fps_in) + 1`` frames (the last one at or before the input's end).
    """
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError(f"fps must be positive, got fps_in={fps_in}, fps_out={fps_out}")
    if fps_in == fps_out:
        return pose[:]
    n_out = int(np.floor((len(pose) - 1) * fps_out / fps_in + 1e-6)) + 1
    return sample(pose, np.arange(n_out) * (fps_in / fps_out))


def crossfade(a: Pose, b: Pose, weight: np.ndarray) -> Pose:
    """Blend two pose sequences frame by frame: ``weight[t]`` 0 gives ``a``, 1 gives ``b`` (slerp / lerp)."""
    weight = np.asarray(weight, dtype=np.float64)
    if a.rotations.shape != b.rotations.shape or weight.shape != (len(a),):
        raise ValueError(f"crossfade shapes differ: {a.rotations.shape}, {b.rotations.shape}, weight {weight.shape}")
    delta = quat_to_rotvec(quat_multiply(quat_inverse(a.rotations), b.rotations))
    rotations = quat_multiply(a.rotations, quat_from_rotvec(delta * weight[:, None, None]))
    root = a.root + (b.root - a.root) * weight[:, None]
    offsets = a.offsets + (b.offsets - a.offsets) * weight[:, None, None]
    return Pose(continuous(rotations), root, offsets)
