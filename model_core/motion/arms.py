"""Arms of one motion on another: the arm chains' local rotations of an arm action composed onto a base motion.

Both motions go through the IK of `ik` (joints -> local bone rotations on the HumanML3D skeleton); the local
rotations of the arm chains (collar, shoulder, elbow, wrist) of the arm action replace the base's and forward
kinematics gives the arm joints back, hung from the base's own chest. Legs, root path, spine and head stay the
base's to the bit, so foot contact and travel are untouched. Used for actions done at once (``compose``) and
for an arm action asked for in an edited range the animation travels through (``editing``).
"""

from __future__ import annotations

import numpy as np

from . import ik
from .skeleton import JOINT_INDEX as J

ARM_JOINTS = {side: tuple(J[f"{side[0]}_{part}"] for part in ("collar", "shoulder", "elbow", "wrist"))
              for side in ("right", "left")}
RAMP = 8  # frames over which composed arms fade in / out where the composed span meets other motion
UP_FRAMES = 8  # frames with the wrist above the shoulder that make an arm "acting" when the prompt names no side


def arm_sides(prompt: str, arm_joints: np.ndarray) -> tuple[str, ...]:
    """The arms to take from the arm motion: named in the prompt, else measured on its joints."""
    words = set(prompt.lower().replace(",", " ").split())
    if "both" in words or {"left", "right"} <= words:
        return ("right", "left")
    for side in ("right", "left"):
        if side in words:
            return (side,)
    up = {s: int((arm_joints[:, J[f"{s[0]}_wrist"], 1] > arm_joints[:, J[f"{s[0]}_shoulder"], 1]).sum())
          for s in ("right", "left")}
    acting = tuple(s for s in ("right", "left") if up[s] >= UP_FRAMES)
    if acting:
        return acting
    height = {s: float((arm_joints[:, J[f"{s[0]}_wrist"], 1] - arm_joints[:, J[f"{s[0]}_shoulder"], 1]).max())
              for s in ("right", "left")}
    return (max(height, key=height.get),)


def compose_arms(base: np.ndarray, arms: np.ndarray, sides: tuple[str, ...], weight: np.ndarray | None = None,
                 *, chest: bool = False) -> np.ndarray:
    """Joints (T, 22, 3): ``base`` with the local rotations of the ``sides`` arm chains taken from ``arms``
    (same T), blended in by ``weight`` (T,) in [0, 1] (default all 1). ``chest``: also take the arm action's
    spine3 rotation (so its chest, neck, head and both arms move), the variant the benchmark measures.

    Generated joints do not keep their bone lengths exactly, so forward kinematics on the fixed skeleton would
    move every joint a little; only the chosen arms' joints are replaced, hung from the base's own spine3, and
    every other joint stays the base's to the bit (legs, root, head: foot contact is unchanged)."""
    base, arms = np.asarray(base, np.float64), np.asarray(arms, np.float64)
    if base.shape != arms.shape or base.ndim != 3 or base.shape[1:] != (22, 3):
        raise ValueError(f"base and arm joints must share a (T, 22, 3) shape, got {base.shape} and {arms.shape}")
    if not sides or any(s not in ARM_JOINTS for s in sides):
        raise ValueError(f"sides must name 'right' and/or 'left', got {sides!r}")
    weight = np.ones(len(base)) if weight is None else np.clip(np.asarray(weight, np.float64), 0.0, 1.0)
    pose, donor = ik.solve(base), ik.solve(arms)
    rot_idx = [J["spine3"]] * chest + [j for s in sides for j in ARM_JOINTS[s]]
    idx = [J["neck"], J["head"]] + [j for s in ("right", "left") for j in ARM_JOINTS[s]] if chest else rot_idx
    rotations = pose.rotations.copy()
    rotations[:, rot_idx] = donor.rotations[:, rot_idx]
    fk = ik.forward(ik.Pose(rotations, pose.root, pose.offsets))
    s3 = J["spine3"]
    moved = fk[:, idx] - fk[:, s3:s3 + 1] + base[:, s3:s3 + 1]
    out = base.copy()
    out[:, idx] = base[:, idx] + weight[:, None, None] * (moved - base[:, idx])
    return out.astype(np.float32)


def ramp(frames: int, fade_in: bool, fade_out: bool) -> np.ndarray:
    """Composition weights (frames,): 1, rising over ``RAMP`` frames at the start and/or falling at the end."""
    w = np.ones(frames)
    n = min(RAMP, frames // 2)
    ramp = (np.arange(n) + 1) / (n + 1)
    if fade_in:
        w[:n] = ramp
    if fade_out:
        w[frames - n:] = ramp[::-1]
    return w
