"""Which bone of a target armature plays each of the 22 SMPL joints: name rules, chain topology, presets.

A mapping is a ``dict`` SMPL joint name -> target bone name; joints without a bone are left out (their
motion is not transferred). ``auto_map`` tries, in order:

1. bone-name rules. The rule table is shared with the BVH importer (``model_core.motion.rig_map.RULES`` and
   its name normalisation: namespaces such as ``mixamorig:``, ``DEF-``/``Bip01`` prefixes, camelCase,
   ``Left``/``Right``/``.L``/``_r`` sides), which covers Mixamo, the Unreal mannequin, SMPL/SMPL-X, the
   Bandai-Namco rig and generic naming. When the armature has Rigify deform bones (``DEF-``) only those are
   considered (ORG-, MCH- and control bones are skipped), and Rigify's numbered spine (``spine`` ...
   ``spine.006``) gives the pelvis, spine, neck and head;
2. the spine chain: spine1..3 are picked from the bones between the pelvis and the neck (the first one, the
   one the arms branch from, and the middle one);
3. when names do not give the pelvis and both legs: chain topology. The hips are the first bone with two
   child chains going down and one going up; left/right by the sign of the armature's X axis in the rest
   pose; the spine is followed up to the bone where two chains branch sideways (the arms); the neck chain
   goes on upwards.

Presets are JSON files ``{"format": "bamm-bone-map", "version": 1, "name": ..., "bones": {joint: bone}}``;
built-in ones live in ``presets/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core import model_module, skeleton
from .errors import BammInputError

rig_map = model_module(".motion.rig_map")

JOINTS = skeleton.JOINT_NAMES
REQUIRED = ("pelvis", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")
ARMS = ("l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")  # needed unless partial
HOW_TO_MAP = ("map them in the bone map (Retarget & Export: Auto Map, then pick a bone for each joint) or load a "
              "preset (a built-in one, a saved .json, or 'bamm export --bone-map FILE.json')")
PRESET_DIR = Path(__file__).resolve().parent / "presets"
PRESET_FORMAT = "bamm-bone-map"
RIGIFY_SPINE = ("pelvis", "spine1", "spine2", "spine3", "neck", None, "head")  # spine, spine.001 ... .006
MAX_ELBOW_SPLIT = 0.2  # |upper arm - forearm| / (upper arm + forearm) of an arm found from its chain (people: ~0.05)
LENGTH_TOLERANCE = 0.01  # relative: a leaf this close to its parent's length has an importer-made length
_DEFORM_PREFIX = re.compile(r"^DEF[-_.]")


@dataclass(kw_only=True)
class Rig:
    """What mapping needs from an armature: bone names, parent indices (-1: none, parents listed first),
    rest heads/tails ``(B, 3)`` in world space, the world direction of the armature's +X axis (the
    character's left for Blender-oriented rigs, which face -Y) and which bones deform."""

    names: list[str]
    parents: list[int]
    heads: np.ndarray
    tails: np.ndarray
    lateral: np.ndarray
    deform: list[bool] | None = None

    def __post_init__(self) -> None:
        if self.deform is None:
            self.deform = [True] * len(self.names)

    @classmethod
    def from_armature(cls, obj) -> Rig:
        if obj is None or getattr(obj, "type", None) != "ARMATURE":
            raise BammInputError(f"'{getattr(obj, 'name', obj)}' is not an armature")
        if not len(obj.data.bones):
            raise BammInputError(f"Armature '{obj.name}' has no bones: pick the character's armature with its "
                                 "skeleton (or add bones in Edit Mode)")
        bones = sorted(obj.data.bones, key=lambda b: len(b.parent_recursive))  # parents first
        order = {b.name: i for i, b in enumerate(bones)}
        world = np.array(obj.matrix_world)
        to_world = lambda v: np.asarray(v, dtype=np.float64) @ world[:3, :3].T + world[:3, 3]  # noqa: E731
        rig = cls(
            names=[b.name for b in bones],
            parents=[order[b.parent.name] if b.parent else -1 for b in bones],
            heads=np.array([to_world(b.head_local) for b in bones]).reshape(-1, 3),
            tails=np.array([to_world(b.tail_local) for b in bones]).reshape(-1, 3),
            lateral=world[:3, 0] / max(np.linalg.norm(world[:3, 0]), 1e-12),
            deform=[b.use_deform for b in bones],
        )
        return rig

    def children(self, subset: list[int] | None = None) -> dict[int, list[int]]:
        """Children of each bone, where the parent of a bone is its nearest ancestor inside ``subset``."""
        keep = set(range(len(self.names)) if subset is None else subset)
        kids: dict[int, list[int]] = {i: [] for i in keep}
        for i in sorted(keep):
            p = self.parents[i]
            while p >= 0 and p not in keep:
                p = self.parents[p]
            if p >= 0:
                kids[p].append(i)
        return kids

    def is_leaf(self, i: int) -> bool:
        return i not in self.parents

    def end_of(self, i: int) -> np.ndarray:
        """Where bone ``i`` ends: its tail, or its head when the tail is no information: a leaf bone as long as
        its parent (importers such as Blender's FBX one give leaf bones their parent's length, so an imported
        hand is as long as the forearm)."""
        if not self.is_leaf(i) or self.parents[i] < 0:
            return self.tails[i]
        p = self.parents[i]
        own, parent = (np.linalg.norm(self.tails[k] - self.heads[k]) for k in (i, p))
        return self.heads[i] if abs(own - parent) <= LENGTH_TOLERANCE * max(parent, 1e-9) else self.tails[i]

    def ancestors(self, i: int) -> list[int]:
        out = []
        while self.parents[i] >= 0:
            i = self.parents[i]
            out.append(i)
        return out


# ---------------------------------------------------------------------------------------------- names
def _candidates(rig: Rig) -> list[int]:
    deform = [i for i, n in enumerate(rig.names) if _DEFORM_PREFIX.match(n)]
    return deform or list(range(len(rig.names)))


def map_by_names(rig: Rig) -> dict[str, str]:
    """Joints found by bone-name rules plus the spine chain (see the module docstring)."""
    candidates = _candidates(rig)
    normalised = {i: rig_map.normalize_bone_name(rig.names[i]) for i in candidates}
    found: dict[str, int] = {}
    for rule in rig_map.RULES:
        for pattern in rule.names:
            match = next((i for i in candidates if i not in found.values() and normalised[i][0] == rule.side
                          and re.fullmatch(pattern, normalised[i][1])), None)
            if match is not None:
                found[rule.joint] = match
                break
    numbered = {}
    for i in candidates:
        side, base = normalised[i]
        m = re.fullmatch(r"spine0*(\d*)", base) if side is None else None
        if m:
            numbered[int(m.group(1) or 0)] = i
    if set(range(len(RIGIFY_SPINE))) <= set(numbered):  # Rigify / Blender human metarig spine
        for k, joint in enumerate(RIGIFY_SPINE):
            if joint and joint not in found and numbered[k] not in found.values():
                found[joint] = numbered[k]
    _map_spine(rig, found)
    return {j: rig.names[i] for j, i in found.items()}


def _map_spine(rig: Rig, found: dict[str, int]) -> None:
    """spine1..3 from the bones between the pelvis and the neck (or the bone the arms branch from)."""
    if "pelvis" not in found or all(j in found for j in ("spine1", "spine2", "spine3")):
        return
    arms = [found[j] for j in ("l_collar", "r_collar", "l_shoulder", "r_shoulder") if j in found][:2]
    branch = _common_ancestor(rig, arms) if len(arms) == 2 else None
    top = found.get("neck", branch)
    if top is None:
        return
    above_pelvis = rig.ancestors(top)
    if found["pelvis"] not in above_pelvis:
        return
    path = above_pelvis[: above_pelvis.index(found["pelvis"])][::-1]  # pelvis (excluded) .. top (excluded)
    if top != found.get("neck"):
        path.append(top)
    path = [i for i in path if i not in found.values()]
    if not path:
        return
    spine3 = branch if branch in path else path[-1]
    picks = {"spine3": spine3}
    if path[0] != spine3:
        picks["spine1"] = path[0]
        inner = path[1 : path.index(spine3)]
        if inner:
            picks["spine2"] = inner[len(inner) // 2]
    for joint, bone in picks.items():
        found.setdefault(joint, bone)


def _common_ancestor(rig: Rig, bones: list[int]) -> int | None:
    chains = [rig.ancestors(b) for b in bones]
    return next((a for a in chains[0] if all(a in c for c in chains[1:])), None)


# ------------------------------------------------------------------------------------------- topology
def map_by_topology(rig: Rig) -> dict[str, str]:
    """Joints found from the bone hierarchy and the rest pose alone (names ignored). Deform bones are tried
    first (they skip IK, mechanism and control bones), then all bones."""
    deform = [i for i, d in enumerate(rig.deform) if d]
    first = _topology(rig, deform) if len(deform) >= len(REQUIRED) else {}
    return first if all(j in first for j in REQUIRED) else _topology(rig, list(range(len(rig.names))))


def _topology(rig: Rig, candidates: list[int]) -> dict[str, str]:
    kids = rig.children(candidates)
    up = np.array([0.0, 0.0, 1.0])
    points = np.concatenate([rig.heads, rig.tails])
    height = float(np.ptp(points @ up)) or 1.0
    z, lat = rig.heads @ up, rig.heads @ rig.lateral
    low, high, left, right = {}, {}, {}, {}  # extents of each subtree (heads and tails)
    for i in sorted(candidates, reverse=True):  # children come after parents
        ends = [rig.heads[i], rig.tails[i]]
        low[i] = min([min(e @ up for e in ends)] + [low[c] for c in kids[i]])
        high[i] = max([max(e @ up for e in ends)] + [high[c] for c in kids[i]])
        left[i] = max([max(e @ rig.lateral for e in ends)] + [left[c] for c in kids[i]])
        right[i] = min([min(e @ rig.lateral for e in ends)] + [right[c] for c in kids[i]])
    depth: dict[int, int] = {}
    for i in sorted(candidates, reverse=True):
        depth[i] = 1 + max((depth[c] for c in kids[i]), default=0)

    def path(i: int, key) -> list[int]:  # follow the child maximising ``key`` down to a leaf
        out = [i]
        while kids[out[-1]]:
            out.append(max(kids[out[-1]], key=key))
        return out

    found: dict[str, int] = {}
    for hips in candidates:
        down = [c for c in kids[hips] if low[c] < z[hips] - 0.3 * height]
        rising = [c for c in kids[hips] if high[c] > z[hips] + 0.2 * height]
        if len(down) >= 2 and rising:
            break
    else:
        return {}
    found["pelvis"] = hips
    legs = sorted(down, key=lambda c: left[c] + right[c])
    for prefix, leg in (("r", legs[0]), ("l", legs[-1])):
        found.update(_leg(rig, path(leg, lambda c: depth[c]), prefix, up))
    spine = path(max(rising, key=lambda c: high[c]), lambda c: high[c])
    for k, bone in enumerate(spine):
        reach_left = {c: left[c] - lat[bone] > 0.2 * height for c in kids[bone]}
        reach_right = {c: lat[bone] - right[c] > 0.2 * height for c in kids[bone]}
        to_left = [c for c in kids[bone] if reach_left[c] and not reach_right[c]]
        to_right = [c for c in kids[bone] if reach_right[c] and not reach_left[c]]
        if to_left and to_right:
            break
    else:
        return {j: rig.names[i] for j, i in found.items()}
    chain = spine[: k + 1]
    found["spine3"] = chain[-1]
    if len(chain) > 1:
        found["spine1"] = chain[0]
        if len(chain) > 2:
            found["spine2"] = chain[1:-1][(len(chain) - 2) // 2]
    for prefix, arm in (("r", to_right[0]), ("l", to_left[0])):
        found.update(_arm(rig, path(arm, lambda c: depth[c]), kids, prefix, bone, height))
    rest = [c for c in kids[bone] if c not in to_left + to_right]
    if rest:
        neck = path(max(rest, key=lambda c: high[c]), lambda c: high[c])
        found["neck"] = neck[0]
        if len(neck) > 1:
            found["head"] = max(neck[1:], key=lambda i: np.linalg.norm(rig.end_of(i) - rig.heads[i]))
    return {j: rig.names[i] for j, i in found.items()}


def _leg(rig: Rig, chain: list[int], prefix: str, up: np.ndarray) -> dict[str, int]:
    z = rig.heads[chain] @ up
    floor = min(z.min(), (rig.tails[chain] @ up).min())
    low = [k for k in range(1, len(chain)) if z[k] - floor < 0.2 * (z[0] - floor)]
    if not low or low[0] < 2:
        return {}
    ankle = low[0]
    knee = min(range(1, ankle), key=lambda k: abs(z[k] - 0.5 * (z[0] + z[ankle])))
    out = {f"{prefix}_hip": chain[0], f"{prefix}_knee": chain[knee], f"{prefix}_ankle": chain[ankle]}
    if ankle + 1 < len(chain):
        out[f"{prefix}_foot"] = chain[ankle + 1]
    return out


def _arm(rig: Rig, chain: list[int], kids: dict[int, list[int]], prefix: str, spine3: int,
         height: float) -> dict[str, int]:
    """Collar (when the chain starts near the spine), shoulder, elbow and wrist: the wrist is where three or
    more fingers branch, else the bone that splits the arm into two nearly equal halves at its elbow (within
    ``MAX_ELBOW_SPLIT``) and leaves a hand shorter than the forearm (measured to the last head when the chain
    ends in a leaf). No such bone (an arm without a hand): no arm."""
    heads = rig.heads[chain]
    inboard = abs((heads[0] - rig.heads[spine3]) @ rig.lateral) < 0.07 * height
    start = 1 if inboard and len(chain) >= 4 else 0

    def elbow_of(w: int) -> tuple[int, float]:
        mid = (heads[start] + heads[w]) / 2
        e = min(range(start + 1, w), key=lambda k: np.linalg.norm(heads[k] - mid))
        upper, lower = np.linalg.norm(heads[e] - heads[start]), np.linalg.norm(heads[w] - heads[e])
        return e, abs(upper - lower) / max(upper + lower, 1e-9)

    fingers = [k for k, i in enumerate(chain) if len(kids[i]) >= 3 and k >= start + 2]
    hand_end = rig.heads[chain[-1]] if rig.is_leaf(chain[-1]) else rig.tails[chain[-1]]  # a leaf's tail is
    # whatever the file or its importer made up (Blender's FBX importer: the forearm's length)
    options = fingers[:1] or [w for w in range(start + 2, len(chain)) if np.linalg.norm(hand_end - heads[w])
                              < np.linalg.norm(heads[w] - heads[elbow_of(w)[0]])  # the hand is shorter
                              and elbow_of(w)[1] < MAX_ELBOW_SPLIT]
    if not options:
        return {}
    wrist = min(options, key=lambda w: elbow_of(w)[1])
    out = {f"{prefix}_shoulder": chain[start], f"{prefix}_elbow": chain[elbow_of(wrist)[0]],
           f"{prefix}_wrist": chain[wrist]}
    if start:
        out[f"{prefix}_collar"] = chain[0]
    return out


# ---------------------------------------------------------------------------------------- auto + checks
def auto_map(rig: Rig) -> dict[str, str]:
    """Names first; chain topology when names miss the pelvis or a leg, and to fill joints names missed."""
    by_name, by_shape = map_by_names(rig), map_by_topology(rig)
    primary, extra = (by_name, by_shape) if all(j in by_name for j in REQUIRED) else (by_shape, by_name)
    mapping = dict(primary)
    for joint, bone in extra.items():
        if joint not in mapping and bone not in mapping.values():
            mapping[joint] = bone
    return {j: mapping[j] for j in JOINTS if j in mapping}


def check_mapping(rig: Rig, mapping: dict[str, str], *, name: str = "the target armature",
                  partial: bool = False) -> dict[str, str]:
    """The mapping without empty entries, or a BammInputError naming what is wrong: the hips and legs must be
    mapped, and the arms too unless ``partial`` (then unmapped bones keep their rest pose)."""
    mapping = {j: b for j, b in mapping.items() if b}
    unknown = [j for j in mapping if j not in JOINTS]
    if unknown:
        raise BammInputError(f"Bone map: {', '.join(unknown)} are not SMPL joints (expected {', '.join(JOINTS)})")
    absent = [f"{j} -> {b}" for j, b in mapping.items() if b not in rig.names]
    if absent:
        raise BammInputError(f"Bone map: {name} has no bone for {', '.join(absent)}")
    seen: dict[str, str] = {}
    for joint, bone in mapping.items():
        if bone in seen:
            raise BammInputError(f"Bone map: bone '{bone}' is mapped to both {seen[bone]} and {joint}")
        seen[bone] = joint
    missing = [j for j in REQUIRED + (() if partial else ARMS) if j not in mapping]
    if missing:
        why = ("it needs a hips bone with two legs (thigh, shin, foot)" if any(j in REQUIRED for j in missing) else
               "its bone names are not ones the rules know and its bone chains gave no arm")
        raise BammInputError(
            f"Cannot retarget onto {name} ({len(rig.names)} bones): no bone found for {', '.join(missing)}; {why}: "
            f"{HOW_TO_MAP}" + ("" if any(j in REQUIRED for j in missing) else
                               ", or allow a Partial Map to leave the arms in their rest pose"))
    return mapping


# -------------------------------------------------------------------------------------------- presets
def builtin_presets() -> dict[str, Path]:
    """Preset name (file stem) -> path of the JSON files shipped in ``presets/``."""
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.json"))}


def load_preset(path: str | Path) -> dict[str, str]:
    """The mapping stored in a preset file (BammInputError naming the file on any problem)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BammInputError(f"Cannot read bone-map preset {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise BammInputError(f"Bone-map preset {path} is not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT or not isinstance(data.get("bones"), dict):
        raise BammInputError(f"{path} is not a bone-map preset (expected {{\"format\": \"{PRESET_FORMAT}\", "
                             "\"bones\": {joint: bone}})")
    bones = data["bones"]
    bad = [j for j, b in bones.items() if j not in JOINTS or not isinstance(b, str)]
    if bad:
        raise BammInputError(f"Bone-map preset {path}: bad entries {', '.join(map(str, bad))} "
                             f"(keys must be SMPL joints: {', '.join(JOINTS)}; values bone names)")
    return {j: bones[j] for j in JOINTS if bones.get(j)}


def save_preset(path: str | Path, mapping: dict[str, str], *, name: str = "") -> Path:
    path = Path(path)
    bones = {j: mapping[j] for j in JOINTS if mapping.get(j)}
    data = {"format": PRESET_FORMAT, "version": 1, "name": name or path.stem, "bones": bones}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BammInputError(f"Cannot write bone-map preset {path}: {exc.strerror or exc}") from exc
    return path


def fit_preset(rig: Rig, mapping: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The entries of a preset whose bone exists in the rig, and the joints left out because it does not."""
    kept = {j: b for j, b in mapping.items() if b in rig.names}
    return kept, [j for j in mapping if j not in kept]
