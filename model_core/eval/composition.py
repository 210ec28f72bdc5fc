"""Kinematic criteria for prompts that name several actions, calibrated on real Bandai-Namco clips.

Each criterion reads joints ``(T, 22, 3)`` (metres, Y-up, 20 fps) and says whether an action is visible:

* ``forward``: the pelvis travels along the facing at ``FORWARD_SPEED`` m/s or more on average (real walks
  go about 1.3 m/s, standing actions under 0.02 m/s);
* ``right_hand_up`` / ``left_hand_up`` / ``both_hands_up``: the named wrist (both wrists in the same frames)
  is above its shoulder for ``UP_FRAMES`` frames or more -- raising and waving alike;
* ``bow``: the head comes down towards the pelvis by ``BOW_DROP`` m or more (the head-pelvis height's 90th
  percentile minus its minimum; real bows 0.12-0.30 m, standing actions about 0.01 m).

``passes_in_turn`` checks each action inside its own part of a sequence (the plan's boundaries, less
``MARGIN`` frames of transition on each side), so order counts; ``passes_together`` asks for the locomotion
over the whole clip, the arm action, and travel at ``FORWARD_SPEED`` during the frames the hand is up.
``arm_clearance`` is the plausibility check: the 1st percentile over frames of the smallest distance from an
elbow or wrist to the spine (pelvis-spine1-spine2-spine3-neck); in real clips it is never under 0.10 m.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..motion.skeleton import JOINT_INDEX as J
from .dynamics import check_joints, travel

FPS = 20.0
FORWARD_SPEED = 0.25  # m/s of pelvis travel along the facing
UP_FRAMES = 8  # frames (0.4 s) with the wrist above the shoulder
BOW_DROP = 0.10  # m of head drop towards the pelvis
MARGIN = 8  # frames on each side of a sequence boundary left to the transition
CLEARANCE = 0.10  # m: elbows and wrists of real clips stay at least this far from the spine
SPINE = tuple(J[n] for n in ("pelvis", "spine1", "spine2", "spine3", "neck"))

# the criterion that a real clip of each content label should pass (labels without one are not scored)
CONTENT_CRITERION = {
    "walk": "forward", "run": "forward", "dash": "forward",
    "wave-right-hand": "right_hand_up", "raise-up-right-hand": "right_hand_up", "bye": "right_hand_up",
    "wave-left-hand": "left_hand_up", "raise-up-left-hand": "left_hand_up", "respond": "left_hand_up",
    "wave-both-hands": "both_hands_up", "raise-up-both-hands": "both_hands_up", "byebye": "both_hands_up",
    "bow": "bow",
}
ARM_CRITERIA = ("right_hand_up", "left_hand_up", "both_hands_up")


def forward_speed(joints) -> float:
    """Mean pelvis speed along the facing, m/s."""
    j = check_joints(joints, min_frames=2)
    return travel(j).forward_m / ((len(j) - 1) / FPS)


def hand_up_frames(joints, side: str) -> np.ndarray:
    """(T,) bool: the wrist of ``side`` ("right", "left", "both": both at once) above its shoulder."""
    j = check_joints(joints, min_frames=1)
    up = {s: j[:, J[f"{s[0]}_wrist"], 1] > j[:, J[f"{s[0]}_shoulder"], 1] for s in ("right", "left")}
    if side == "both":
        return up["right"] & up["left"]
    if side not in up:
        raise ValueError(f"side must be 'right', 'left' or 'both', got {side!r}")
    return up[side]


def head_drop(joints) -> float:
    j = check_joints(joints, min_frames=1)
    h = j[:, J["head"], 1] - j[:, J["pelvis"], 1]
    return float(np.percentile(h, 90) - h.min())


def passes(joints, criterion: str) -> bool:
    """Whether ``joints`` show the action of ``criterion`` (module docstring)."""
    if criterion == "forward":
        return forward_speed(joints) >= FORWARD_SPEED
    if criterion in ARM_CRITERIA:
        return int(hand_up_frames(joints, criterion.split("_")[0]).sum()) >= UP_FRAMES
    if criterion == "bow":
        return head_drop(joints) >= BOW_DROP
    raise ValueError(f"unknown criterion {criterion!r}: expected forward, bow or one of {ARM_CRITERIA}")


def passes_in_turn(joints, criteria: list[str], bounds: list[int], *, margin: int = MARGIN) -> bool:
    """Each criterion inside its part: part k spans frames [bounds[k-1] + margin, bounds[k] - margin) with
    bounds[-1] = T; ``bounds`` lists the len(criteria) - 1 inner boundaries in frames."""
    j = check_joints(joints, min_frames=2)
    if len(bounds) != len(criteria) - 1:
        raise ValueError(f"{len(criteria)} criteria need {len(criteria) - 1} boundaries, got {len(bounds)}")
    edges = [0, *bounds, len(j)]
    for k, criterion in enumerate(criteria):
        lo = edges[k] + (margin if k > 0 else 0)
        hi = edges[k + 1] - (margin if k + 1 < len(criteria) else 0)
        if hi - lo < 2 or not passes(j[lo:hi], criterion):
            return False
    return True


def passes_together(joints, arm: str) -> bool:
    """Forward locomotion over the clip, the arm action, and forward travel while the hand is up."""
    j = check_joints(joints, min_frames=2)
    if not (passes(j, "forward") and passes(j, arm)):
        return False
    up = hand_up_frames(j, arm.split("_")[0])[:-1]
    step = np.diff(j[:, J["pelvis"]][:, [0, 2]], axis=0)
    speed = np.linalg.norm(step, axis=-1) * FPS
    return float(speed[up].mean()) >= FORWARD_SPEED


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def arm_clearance(joints) -> float:
    """1st percentile over frames of the smallest elbow/wrist distance to the spine polyline, metres."""
    j = check_joints(joints, min_frames=1)
    pts = j[:, [J["l_wrist"], J["r_wrist"], J["l_elbow"], J["r_elbow"]]]
    d = np.stack([_segment_distance(pts, j[:, SPINE[k]][:, None], j[:, SPINE[k + 1]][:, None])
                  for k in range(len(SPINE) - 1)]).min(0).min(1)
    return float(np.percentile(d, 1))


def real_pass_rates(data_dir, *, split: str | None = None) -> dict[str, tuple[int, int]]:
    """{content: (clips passing their own criterion, clips)} over a built dataset's real joints
    (``new_joints/``), optionally one split's ids only."""
    root = Path(data_dir)
    ids = None if split is None else set((root / f"{split}.txt").read_text().split())
    out: dict[str, list[int]] = {}
    for line in (root / "meta.jsonl").read_text().splitlines():
        meta = json.loads(line)
        criterion = CONTENT_CRITERION.get(meta["content"])
        if criterion is None or (ids is not None and meta["id"] not in ids):
            continue
        joints = np.load(root / "new_joints" / f"{meta['id']}.npy")
        row = out.setdefault(meta["content"], [0, 0])
        row[0] += passes(joints, criterion)
        row[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}
