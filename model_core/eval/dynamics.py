"""Dynamics of joint motion as an animator sees it: jitter, foot skate, feet through the floor, travel direction.

All functions take joints ``(T, 22, 3)``: metres, Y-up, SMPL-22 order, ``fps`` frames per second (20 in the
project), the character facing +Z at frame 0. Clip metrics (``clip_dynamics``) are:

- ``acceleration`` (m/s²): mean over frames 1…T-2 and all 22 joints of the norm of the central second
  difference ``p[t+1] - 2 p[t] + p[t-1]`` times fps². Global positions: the root trajectory counts.
- ``high_frequency`` (no unit): mean norm of the second difference over mean norm of the first difference
  ``p[t+1] - p[t]`` (all joints). For a sinusoid of angular frequency w it is 2 sin(w / 2 fps); smooth
  motion gives a small share, frame-to-frame noise a large one (white noise: about 1.7). 0 for a still clip.
- ``foot_skate`` (m/s): mean horizontal (XZ) speed of the two toe joints (l_foot, r_foot) over the steps
  t -> t+1 in which the toe is grounded: its height is within ``GROUND_MARGIN`` (5 cm) of the clip's lowest
  toe height (minimum over both toes and all frames) at both frames. Both toes' grounded steps are pooled.
  In walking the swinging toe passes within 5 cm of the floor, so real walks score about 0.5 m/s (median of
  the Bandai-Namco test walks) against about 0.01 m/s for clips standing in place: compare like with like.
- ``penetration`` (m): how far the feet go below their usual lowest point. Per frame, the lower of the two
  toes' heights; the usual lowest point is the median of that over the clip (the floor the character stands
  on most of the time); penetration is that median minus the clip's ``PENETRATION_PERCENTILE`` (1st)
  percentile of it, so a single frame of noise does not count but a foot sinking for a few frames does.

``foot_lift`` (m), used by the per-action benchmarks rather than the set figures: the largest height of an
ankle or toe above the lowest height any of them reaches in the clip (a high kick lifts about 1 m).

Set figures (``set_dynamics``) are the medians of the clip figures over clips (``statistic="mean"`` for
means). The median is the figure of a typical clip: on the Bandai-Namco test split (half the clips stand in
place) real clips give acceleration 1.96 m/s², high-frequency share 0.29, foot skate 0.006 m/s and
penetration 0.09 cm, the kind of figures quoted for real motion (1.53, 0.28, 0.007, 0.1 cm); the means are
pulled up by runs and dashes (3.97 m/s², 0.34, 0.17 m/s, 0.40 cm).

Travel (``travel``): the pelvis's horizontal displacement accumulated in the body's own frame, i.e. each
step's displacement projected on that moment's facing direction (forward) and on the facing rotated 90°
to the left. The facing is the horizontal perpendicular of the hips-plus-shoulders "across" vector, as
``motion.features`` computes it (r_hip - l_hip + r_shoulder - l_shoulder, then forward = +Y × across). For
a clip whose facing does not change this is exactly the displacement projected on the facing; a clip that
turns while walking still counts as walking forward. The direction is "in place" when the travelled
distance is under ``IN_PLACE_M``, otherwise forward / backward / left / right by which 90° sector around
the facing the travel falls in (left and right are the two sideways sectors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..motion.skeleton import FACE_JOINT_INDX, JOINT_INDEX, NUM_JOINTS

FPS = 20.0
TOES: tuple[int, int] = (JOINT_INDEX["l_foot"], JOINT_INDEX["r_foot"])
PELVIS = JOINT_INDEX["pelvis"]
FEET: tuple[int, ...] = tuple(JOINT_INDEX[j] for j in ("l_ankle", "r_ankle", "l_foot", "r_foot"))
GROUND_MARGIN = 0.05  # m above the clip's lowest toe height that still counts as on the floor
PENETRATION_PERCENTILE = 1.0
IN_PLACE_M = 0.3  # m of travel below which a clip stays "in place"
METRICS: tuple[tuple[str, str], ...] = (
    ("acceleration", "mean joint acceleration (m/s²)"),
    ("high_frequency", "high-frequency share (|2nd diff| / |1st diff|)"),
    ("foot_skate", "foot skate: grounded toe speed (m/s)"),
    ("penetration", "floor penetration below usual lowest point (cm)"),
)
DIRECTIONS = ("forward", "backward", "left", "right", "in place")
# content labels (model_core/data/captions.py) of locomotion with a direction -> the directions that match
# the caption; dataset-1 walk-left/right walk forward on a diagonal towards the side named
EXPECTED_DIRECTION: dict[str, tuple[str, ...]] = {
    "walk": ("forward",), "run": ("forward",), "dash": ("forward",),
    "walk-turn-left": ("forward",), "walk-turn-right": ("forward",),
    "walk-back": ("backward",), "walk-left": ("forward", "left"), "walk-right": ("forward", "right"),
}


def check_joints(joints, *, min_frames: int = 3) -> np.ndarray:
    """joints as float64 ``(T, 22, 3)``; ValueError for another shape, fewer frames or non-finite values."""
    j = np.asarray(joints)
    if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (T, {NUM_JOINTS}, 3), got {j.shape}")
    if len(j) < min_frames:
        raise ValueError(f"joints need at least {min_frames} frames, got {len(j)}")
    if not np.isfinite(j).all():
        raise ValueError("joints contain NaN or infinite values")
    return j.astype(np.float64)


def _check_fps(fps: float) -> float:
    if not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


def acceleration(joints, *, fps: float = FPS) -> float:
    """Mean joint acceleration (m/s²) of ``(T >= 3, 22, 3)`` joints (module docstring)."""
    j, fps = check_joints(joints), _check_fps(fps)
    second = j[2:] - 2.0 * j[1:-1] + j[:-2]
    return float(np.linalg.norm(second, axis=-1).mean() * fps * fps)


def high_frequency_share(joints) -> float:
    """Mean |second difference| / mean |first difference| of ``(T >= 3, 22, 3)`` joints; 0 when still."""
    j = check_joints(joints)
    first = np.linalg.norm(np.diff(j, axis=0), axis=-1).mean()
    second = np.linalg.norm(j[2:] - 2.0 * j[1:-1] + j[:-2], axis=-1).mean()
    return float(second / first) if first > 1e-12 else 0.0


def grounded_steps(joints, *, margin: float = GROUND_MARGIN) -> np.ndarray:
    """(T - 1, 2) bool: toe (l_foot, r_foot) within ``margin`` m of the clip's lowest toe height at both
    frames of step t -> t+1."""
    j = check_joints(joints, min_frames=2)
    height = j[:, TOES, 1]  # (T, 2)
    low = height <= height.min() + margin
    return low[:-1] & low[1:]


def foot_skate(joints, *, fps: float = FPS, margin: float = GROUND_MARGIN) -> float:
    """Mean horizontal toe speed (m/s) over grounded steps of both toes (module docstring); NaN if none."""
    j, fps = check_joints(joints, min_frames=2), _check_fps(fps)
    grounded = grounded_steps(j, margin=margin)
    if not grounded.any():
        return float("nan")
    speed = np.linalg.norm(np.diff(j[:, TOES][..., [0, 2]], axis=0), axis=-1) * fps  # (T - 1, 2)
    return float(speed[grounded].mean())


def foot_lift(joints) -> float:
    """Highest lift (m) of a foot: the largest height of an ankle or toe above the lowest height any of them
    reaches in the clip (a high kick lifts about 1 m, a walk's swinging foot 0.2-0.3 m)."""
    heights = check_joints(joints, min_frames=1)[:, list(FEET), 1]
    return float((heights - heights.min()).max())


def penetration(joints, *, percentile: float = PENETRATION_PERCENTILE) -> float:
    """Metres the lower toe goes below its usual height: median minus ``percentile`` of the per-frame lower
    toe height (module docstring); >= 0."""
    j = check_joints(joints, min_frames=1)
    if not 0.0 <= percentile < 50.0:
        raise ValueError(f"percentile must be in [0, 50), got {percentile}")
    lowest = j[:, TOES, 1].min(axis=1)
    return float(max(np.median(lowest) - np.percentile(lowest, percentile), 0.0))


def clip_dynamics(joints, *, fps: float = FPS) -> dict[str, float]:
    """Every metric of ``METRICS`` for one clip; ``penetration`` in centimetres, as in the tables."""
    j = check_joints(joints)
    return {"acceleration": acceleration(j, fps=fps), "high_frequency": high_frequency_share(j),
            "foot_skate": foot_skate(j, fps=fps), "penetration": 100.0 * penetration(j)}


STATISTICS = {"median": np.nanmedian, "mean": np.nanmean}


def set_dynamics(clips, *, fps: float = FPS, statistic: str = "median") -> dict[str, float]:
    """Median (or mean) over clips of ``clip_dynamics``; clips without a grounded toe step are left out of
    foot skate (NaN when no clip has one)."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    clips = list(clips)
    if not clips:
        raise ValueError("set_dynamics needs at least one clip")
    rows = [clip_dynamics(c, fps=fps) for c in clips]
    out = {}
    for name, _ in METRICS:
        values = np.array([r[name] for r in rows])
        out[name] = float(STATISTICS[statistic](values)) if np.isfinite(values).any() else float("nan")
    return out


def facing(joints) -> np.ndarray:
    """Unit horizontal facing directions ``(T, 2)`` as (x, z) from hips and shoulders (module docstring)."""
    j = check_joints(joints, min_frames=1)
    r_hip, l_hip, r_sdr, l_sdr = FACE_JOINT_INDX
    across = j[:, r_hip] - j[:, l_hip] + j[:, r_sdr] - j[:, l_sdr]
    forward = np.stack([across[:, 2], -across[:, 0]], axis=-1)  # +Y × across, (x, z)
    norm = np.linalg.norm(forward, axis=-1, keepdims=True)
    if (norm < 1e-9).any():
        raise ValueError("facing is undefined: hips and shoulders are vertical or coincide")
    return forward / norm


@dataclass(frozen=True, kw_only=True)
class Travel:
    forward_m: float   # metres travelled along the facing (negative: backwards)
    left_m: float      # metres travelled towards the character's left (negative: right)
    distance_m: float  # hypot(forward_m, left_m)
    direction: str     # one of DIRECTIONS


def direction_of(forward_m: float, left_m: float, *, in_place_m: float = IN_PLACE_M) -> str:
    """The 90° sector around the facing that a body-frame displacement falls in, or "in place"."""
    if np.hypot(forward_m, left_m) < in_place_m:
        return "in place"
    if abs(left_m) <= abs(forward_m):
        return "forward" if forward_m > 0 else "backward"
    return "left" if left_m > 0 else "right"


def travel(joints, *, in_place_m: float = IN_PLACE_M) -> Travel:
    """Body-frame travel of the pelvis of ``(T >= 2, 22, 3)`` joints (module docstring)."""
    j = check_joints(joints, min_frames=2)
    if not (np.isfinite(in_place_m) and in_place_m >= 0):
        raise ValueError(f"in_place_m must be a non-negative distance, got {in_place_m}")
    f = facing(j)
    mid = f[:-1] + f[1:]
    mid /= np.maximum(np.linalg.norm(mid, axis=-1, keepdims=True), 1e-12)
    left = np.stack([mid[:, 1], -mid[:, 0]], axis=-1)  # facing turned 90° to the left about +Y
    step = np.diff(j[:, PELVIS][:, [0, 2]], axis=0)
    fwd, lft = float((step * mid).sum()), float((step * left).sum())
    return Travel(forward_m=fwd, left_m=lft, distance_m=float(np.hypot(fwd, lft)),
                  direction=direction_of(fwd, lft, in_place_m=in_place_m))


def direction_matches(joints_list, contents) -> tuple[float, int]:
    """(share, count) of clips with a directed-locomotion content label (``EXPECTED_DIRECTION``) whose
    travel direction is one their label expects; (nan, 0) when no clip has such a label."""
    joints_list, contents = list(joints_list), list(contents)
    if len(joints_list) != len(contents):
        raise ValueError(f"{len(joints_list)} clips but {len(contents)} content labels")
    hits = [travel(j).direction in EXPECTED_DIRECTION[c] for j, c in zip(joints_list, contents)
            if c in EXPECTED_DIRECTION]
    return (float(np.mean(hits)) if hits else float("nan")), len(hits)


def ratio(value: float, reference: float) -> float:
    """value / reference, NaN when the reference is 0 or not finite."""
    return value / reference if np.isfinite(reference) and reference != 0 else float("nan")


def format_dynamics_table(sets: dict[str, dict[str, float]], *, reference: str = "real", title: str = "") -> str:
    """Rows: metrics; columns: each set's figure, then each other set's ratio to ``reference``.

    ``sets``: {set name: ``set_dynamics`` result}, e.g. {"real": ..., "reconstruction": ..., "generated": ...}.
    """
    if reference not in sets:
        raise ValueError(f"the reference set {reference!r} is not among {sorted(sets)}")
    others = [name for name in sets if name != reference]
    lines = [title] if title else []
    lines.append(f"{'metric':<50}" + "".join(f" {n[:14]:>14}" for n in sets)
                 + "".join(f" {(n[:8] + '/' + reference[:5]):>14}" for n in others))
    for key, label in METRICS:
        row = f"{label:<50}" + "".join(f" {sets[n][key]:>14.4f}" for n in sets)
        row += "".join(f" {ratio(sets[n][key], sets[reference][key]):>14.2f}" for n in others)
        lines.append(row)
    return "\n".join(lines)
