"""Map any BVH rig onto the 22 SMPL joints: bone-name rules, interpolated joints, units, up axis, 20 fps.

Each SMPL joint is a weighted sum of source joint / End Site positions, built from ``RULES``:
1. the first source bone (file order) whose normalised name fully matches one of the rule's patterns, tried
   in the listed order, and that no earlier rule took; else
2. the rule's fallback, computed from joints resolved earlier in the table:
   ``Lerp(a, b, t)`` = a + t (b - a); ``EndSite(j)`` = the End Site of the bone mapped to ``j``;
   ``Chain(a, b, t)`` = the point at arc-length fraction ``t`` of the source bone chain from ``a`` to ``b``,
   snapped to a real bone of that chain lying within ``SPINE_SNAP`` of it.
Spine joints always use the chain rule, because rigs number their spine bones differently (Mixamo ``Spine1``
is the second spine bone, SMPL ``spine1`` the first); the fractions are those of the HumanML3D skeleton.
Name normalisation drops namespaces (``mixamorig:``), known prefixes (``mixamorig``, ``Bip01``, ``DEF-``,
``joint_``, ...), splits camelCase / separators, takes the side from a first or last token ``L``/``Left``/
``R``/``Right`` and lower-cases the rest: ``mixamorig:LeftUpLeg`` -> ("l", "upleg"), ``Hand_L`` -> ("l", "hand").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .bvh import BvhClip, BvhSkeleton, end_site_positions, global_transforms
from .skeleton import JOINT_NAMES, PARENTS, TARGET_OFFSETS


class RigMappingError(ValueError):
    """The rig cannot be mapped onto the SMPL joints (missing or inconsistent bones)."""


@dataclass(frozen=True)
class Lerp:
    a: str
    b: str
    t: float


@dataclass(frozen=True)
class EndSite:
    joint: str


@dataclass(frozen=True)
class Chain:
    a: str
    b: str
    t: float


@dataclass(frozen=True)
class Rule:
    joint: str  # SMPL joint name
    side: str | None  # "l", "r" or None for a centre bone
    names: tuple[str, ...]  # regexes, full match on the normalised bone name, tried in order
    fallback: Lerp | EndSite | Chain | None = None


def _spine_fractions() -> tuple[float, float, float]:
    """Arc-length fractions of spine1..3 along pelvis -> neck in the HumanML3D target skeleton."""
    lengths = np.linalg.norm(TARGET_OFFSETS[[3, 6, 9, 12]], axis=1)
    cumulative = np.cumsum(lengths) / lengths.sum()
    return tuple(float(f) for f in cumulative[:3])


SPINE_FRACTIONS = _spine_fractions()  # about (0.24, 0.50, 0.60)
SPINE_SNAP = 0.05  # a real spine bone within this arc fraction replaces the interpolated point
COLLAR_T = 0.5  # SMPL collars lie halfway from the neck to the shoulder (within 3-6 cm on HumanML3D clips)


def _both(joint: str, names: tuple[str, ...], fallback: Lerp | EndSite | None = None) -> list[Rule]:
    """The left and right rules of a sided joint; ``{s}`` in fallback joint names becomes the side."""
    rules = []
    for side in ("l", "r"):
        fb = fallback
        if isinstance(fb, Lerp):
            fb = Lerp(fb.a.format(s=side), fb.b.format(s=side), fb.t)
        elif isinstance(fb, EndSite):
            fb = EndSite(fb.joint.format(s=side))
        rules.append(Rule(f"{side}_{joint}", side, names, fb))
    return rules


# Ordered: a rule's fallback only refers to joints listed before it, and the order settles names that mean
# different joints in different rigs (SMPL "L_Shoulder" is the upper arm, Mixamo "LeftShoulder" the collar;
# SMPL "L_Foot" is the toe base, elsewhere "Foot" is the ankle).
RULES: list[Rule] = [
    Rule("pelvis", None, (r"hips?", r"pelvis")),
    *_both("hip", (r"up(per)?leg", r"thigh", r"hip", r"femur")),
    *_both("knee", (r"(low(er)?)?leg", r"knee", r"calf", r"shin", r"tibia")),
    *_both("ankle", (r"ankle", r"foot")),
    *_both("foot", (r"toe(s|base)?\d*", r"ball", r"foot"), EndSite("{s}_ankle")),
    Rule("neck", None, (r"neck", r"neck0*1")),
    Rule("head", None, (r"head",), EndSite("neck")),
    Rule("spine1", None, (), Chain("pelvis", "neck", SPINE_FRACTIONS[0])),
    Rule("spine2", None, (), Chain("pelvis", "neck", SPINE_FRACTIONS[1])),
    Rule("spine3", None, (), Chain("pelvis", "neck", SPINE_FRACTIONS[2])),
    *_both("shoulder", (r"up(per)?arm", r"arm", r"shoulder")),
    *_both("collar", (r"collar", r"clavicle", r"shoulder"), Lerp("neck", "{s}_shoulder", COLLAR_T)),
    *_both("elbow", (r"fore ?arm", r"low(er)?arm", r"elbow")),
    *_both("wrist", (r"wrist", r"hand")),
]

_PREFIX = re.compile(r"^(mixamorig\d*|[mf]_avg|bip0*1|def|jnt|joint)[\s_:.\-]+", re.IGNORECASE)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SIDES = {"l": "l", "left": "l", "r": "r", "right": "r"}


def normalize_bone_name(name: str) -> tuple[str | None, str]:
    """``(side, base)`` of a bone name: side "l", "r" or None, base lower-case without separators."""
    name = re.split(r"[:|]", name)[-1]
    name = _PREFIX.sub("", name)
    words = [w.lower() for w in _WORD.findall(name)]
    side = None
    if len(words) > 1 and words[0] in _SIDES:
        side, words = _SIDES[words[0]], words[1:]
    elif len(words) > 1 and words[-1] in _SIDES:
        side, words = _SIDES[words[-1]], words[:-1]
    base = "".join(words)
    if side is None:  # all-caps names such as LEFTARM
        for word, s in (("left", "l"), ("right", "r")):
            if base.startswith(word) and len(base) > len(word):
                side, base = s, base[len(word):]
    return side, base


@dataclass
class RigMapping:
    weights: np.ndarray  # (22, 2J): SMPL joint = weights @ [joint positions, End Site positions]
    sources: dict[str, str]  # SMPL joint -> source bone or the rule used


def _chain(parents: np.ndarray, top: int, bottom: int) -> list[int] | None:
    """Source joints from ``top`` down to ``bottom`` (both included), or None if ``top`` is not an ancestor."""
    path = [bottom]
    while path[-1] != top:
        if parents[path[-1]] < 0:
            return None
        path.append(int(parents[path[-1]]))
    return path[::-1]


def map_rig(skeleton: BvhSkeleton, positions: np.ndarray) -> RigMapping:
    """Resolve ``RULES`` on a rig; ``positions`` (F, J, 3) give the chain lengths for interpolated joints."""
    names, parents = skeleton.names, skeleton.parents
    n_src = len(names)
    normalised = [normalize_bone_name(n) for n in names]
    has_end = [e is not None for e in skeleton.end_sites]
    rows: dict[str, np.ndarray] = {}
    direct: dict[str, int] = {}
    sources: dict[str, str] = {}
    used: set[int] = set()

    def one_hot(column: int) -> np.ndarray:
        row = np.zeros(2 * n_src)
        row[column] = 1.0
        return row

    for rule in RULES:
        match = None
        for pattern in rule.names:
            match = next((j for j, (side, base) in enumerate(normalised) if j not in used and side == rule.side
                          and re.fullmatch(pattern, base)), None)
            if match is not None:
                break
        fb = rule.fallback
        if match is not None:
            used.add(match)
            rows[rule.joint], direct[rule.joint], sources[rule.joint] = one_hot(match), match, names[match]
        elif isinstance(fb, Lerp) and fb.a in rows and fb.b in rows:
            rows[rule.joint] = (1 - fb.t) * rows[fb.a] + fb.t * rows[fb.b]
            sources[rule.joint] = f"lerp({fb.a}, {fb.b}, {fb.t:.2f})"
        elif isinstance(fb, EndSite) and fb.joint in direct and has_end[direct[fb.joint]]:
            rows[rule.joint] = one_hot(n_src + direct[fb.joint])
            sources[rule.joint] = f"end site of {names[direct[fb.joint]]}"
        elif isinstance(fb, Chain) and fb.a in direct and fb.b in direct:
            path = _chain(parents, direct[fb.a], direct[fb.b])
            if path is None:
                raise RigMappingError(f"bone {names[direct[fb.b]]!r} ({fb.b}) is not below "
                                      f"{names[direct[fb.a]]!r} ({fb.a}); cannot place {rule.joint}")
            rows[rule.joint], sources[rule.joint] = _chain_point(path, positions, fb.t, used, names, n_src)
    missing = [j for j in JOINT_NAMES if j not in rows]
    if missing:
        raise RigMappingError(
            f"cannot map the rig onto SMPL joints; unmapped: {', '.join(missing)} (bones: {', '.join(names)})")
    _check_hierarchy(direct, parents, names)
    return RigMapping(weights=np.stack([rows[j] for j in JOINT_NAMES]), sources=sources)


def _chain_point(path: list[int], positions: np.ndarray, t: float, used: set[int], names: list[str],
                 n_src: int) -> tuple[np.ndarray, str]:
    """Weights of the point at arc fraction ``t`` of the bone chain ``path`` (mean bone lengths over frames)."""
    lengths = np.linalg.norm(np.diff(positions[:, path], axis=1), axis=-1).mean(axis=0)
    if lengths.sum() <= 0:
        raise RigMappingError(f"bone chain {names[path[0]]} -> {names[path[-1]]} has zero length")
    arc = np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    row = np.zeros(2 * n_src)
    for k in range(1, len(path) - 1):  # snap to an inner bone of the chain
        if path[k] not in used and abs(arc[k] - t) <= SPINE_SNAP:
            used.add(path[k])
            row[path[k]] = 1.0
            return row, names[path[k]]
    k = int(np.clip(np.searchsorted(arc, t, side="right") - 1, 0, len(path) - 2))
    while arc[k + 1] <= arc[k]:  # skip zero-length bones
        k -= 1
    w = (t - arc[k]) / (arc[k + 1] - arc[k])
    row[path[k]], row[path[k + 1]] = 1.0 - w, w
    return row, f"lerp({names[path[k]]}, {names[path[k + 1]]}, {w:.2f})"


def _check_hierarchy(direct: dict[str, int], parents: np.ndarray, names: list[str]) -> None:
    """Each directly mapped joint must lie below the bone mapped to its nearest directly mapped SMPL ancestor."""
    for j, joint in enumerate(JOINT_NAMES):
        p = PARENTS[j]
        while p >= 0 and JOINT_NAMES[p] not in direct:
            p = PARENTS[p]
        if joint in direct and p >= 0 and _chain(parents, direct[JOINT_NAMES[p]], direct[joint]) is None:
            raise RigMappingError(f"bone {names[direct[joint]]!r} mapped to {joint} is not below "
                                  f"{names[direct[JOINT_NAMES[p]]]!r} mapped to {JOINT_NAMES[p]}")


def apply_mapping(mapping: RigMapping, positions: np.ndarray, end_positions: np.ndarray) -> np.ndarray:
    """SMPL joints ``(F, 22, 3)`` from source joints and End Sites ``(F, J, 3)`` (NaN End Sites are unused)."""
    stacked = np.concatenate([positions, np.nan_to_num(end_positions)], axis=1)
    return np.einsum("kj,fjd->fkd", mapping.weights, stacked)


# ------------------------------------------------------------------------------- units, axes, frame rate

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}  # metres per file unit
# Pose-independent rig height: summed bone lengths ankle -> knee -> hip -> pelvis -> spine -> neck -> head.
_HEIGHT_BONES = ((7, 4), (4, 1), (1, 0), (8, 5), (5, 2), (2, 0), (0, 3), (3, 6), (6, 9), (9, 12), (12, 15))
_HEIGHT_WEIGHTS = np.array([0.5] * 6 + [1.0] * 5)  # legs averaged over left and right
REFERENCE_HEIGHT = float(_HEIGHT_WEIGHTS @ np.linalg.norm(TARGET_OFFSETS[[c for c, _ in _HEIGHT_BONES]], axis=1))


def rig_height(joints: np.ndarray) -> float:
    """Mean summed bone length from the ankles to the head of SMPL joints ``(F, 22, 3)``, in their units."""
    child, parent = np.array(_HEIGHT_BONES).T
    lengths = np.linalg.norm(joints[:, child] - joints[:, parent], axis=-1).mean(axis=0)
    return float(_HEIGHT_WEIGHTS @ lengths)


def detect_unit(height: float) -> str:
    """The unit of ``UNITS`` whose conversion brings ``height`` (see rig_height) closest, on a log scale, to the
    HumanML3D skeleton's (about 1.58 m). Adjacent units differ by 2.2x or more, so heights from about 0.65x to
    1.5x the reference person (children to tall adults) are classified correctly."""
    if not (np.isfinite(height) and height > 0):
        raise RigMappingError(f"cannot detect the unit of a rig of height {height}")
    return min(UNITS, key=lambda u: abs(np.log(height * UNITS[u] / REFERENCE_HEIGHT)))


def detect_up_axis(joints: np.ndarray) -> str:
    """"y" or "z": the axis along which the body points (feet -> pelvis -> neck), averaged over the clip."""
    ankles = joints[:, [7, 8]].mean(axis=1)
    up = (joints[:, 12] - joints[:, 0] + joints[:, 0] - ankles).mean(axis=0)
    axis = int(np.argmax(np.abs(up)))
    if axis == 0 or up[axis] < 0:
        raise RigMappingError(f"cannot detect the up axis: the body points along {'-' if up[axis] < 0 else '+'}"
                              f"{'XYZ'[axis]} (mean feet-to-neck vector {np.round(up, 3).tolist()})")
    return "yz"[axis - 1]


def snap_fps(fps: float) -> float:
    """Round a frame rate read from a rounded Frame Time (1 / 0.0333333 -> 30) to an integer when within 0.1 %."""
    return float(round(fps)) if abs(fps - round(fps)) <= 1e-3 * fps else float(fps)


def resample(positions: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Linear resampling over time of ``(F, ...)``: target frame k at time k / target_fps, for every k with
    k / target_fps within the source span (F - 1) / source_fps, i.e. ``floor((F - 1) * target / source) + 1``
    frames (60 for 90 frames at 30 -> 20 fps)."""
    n_frames = positions.shape[0]
    if n_frames == 0 or source_fps == target_fps:
        return positions.copy()
    count = int(np.floor((n_frames - 1) * target_fps / source_fps + 1e-6)) + 1
    src = np.arange(count) * (source_fps / target_fps)
    i0 = np.minimum(np.floor(src + 1e-9).astype(np.int64), n_frames - 1)
    i1 = np.minimum(i0 + 1, n_frames - 1)
    w = np.clip(src - i0, 0.0, 1.0).reshape(-1, *([1] * (positions.ndim - 1)))
    return (1.0 - w) * positions[i0] + w * positions[i1]


@dataclass
class MappingReport:
    mapping: dict[str, str]  # SMPL joint -> source bone, or the rule used to place it
    unit: str  # a key of UNITS, or "custom" for a numeric unit
    scale: float  # metres per source unit
    up_axis: str  # source up axis: "y" or "z" (converted to Y-up)
    source_fps: float
    target_fps: float
    source_frames: int
    frames: int
    height: float  # rig_height in metres


def to_smpl22(clip: BvhClip, *, target_fps: float = 20.0, up_axis: str = "auto",
              unit: str | float = "auto") -> tuple[np.ndarray, MappingReport]:
    """SMPL-22 joints ``(T, 22, 3)`` float32 in metres, Y-up, at ``target_fps``, and how they were obtained.

    up_axis: "auto", "y" or "z" (Z-up is turned to Y-up: (x, y, z) -> (x, z, -y)).
    unit: "auto" (see detect_unit), a key of UNITS, or metres per file unit as a number.
    The facing direction and the floor are left as they are (feature extraction normalises them).
    """
    if isinstance(unit, str) and unit != "auto" and unit not in UNITS:
        raise ValueError(f"unit must be 'auto', a number or one of {sorted(UNITS)}, got {unit!r}")
    if not isinstance(unit, str) and not (np.isfinite(unit) and unit > 0):
        raise ValueError(f"unit must be a positive number of metres per file unit, got {unit}")
    if up_axis not in ("auto", "y", "z"):
        raise ValueError(f"up_axis must be 'auto', 'y' or 'z', got {up_axis!r}")
    if not (np.isfinite(target_fps) and target_fps > 0):
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    try:
        if clip.n_frames < 1:
            raise RigMappingError("the clip has no frames")
        transforms = global_transforms(clip)
        mapping = map_rig(clip.skeleton, transforms[1])
        joints = apply_mapping(mapping, transforms[1], end_site_positions(clip, transforms))
        height = rig_height(joints)
        unit = detect_unit(height) if unit == "auto" else unit
        up_axis = detect_up_axis(joints) if up_axis == "auto" else up_axis
    except RigMappingError as exc:
        raise RigMappingError(f"{clip.source}: {exc}") from None
    name, scale = (unit, UNITS[unit]) if isinstance(unit, str) else ("custom", float(unit))
    if up_axis == "z":
        joints = np.stack([joints[..., 0], joints[..., 2], -joints[..., 1]], axis=-1)
    source_fps = snap_fps(clip.fps)
    joints = resample(joints * scale, source_fps, target_fps).astype(np.float32)
    report = MappingReport(mapping=mapping.sources, unit=name, scale=scale, up_axis=up_axis, source_fps=source_fps,
                           target_fps=float(target_fps), source_frames=clip.n_frames, frames=len(joints),
                           height=height * scale)
    return joints, report
