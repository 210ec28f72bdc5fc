"""Human test armatures in the naming and hierarchy of common rigs, built by script.

One body (about 1.8 m, T-pose or A-pose, facing -Y, left at +X, Blender world space) dressed in the bones of
Mixamo, Rigify (deform, ORG and control bones), the Unreal mannequin (with twist, IK and finger bones),
SMPL, SMPL-X, the Bandai-Namco rig and generic ``.L`` naming. ``EXPECTED[style]`` is the right mapping.

    from support.rigs import build_rig
    obj = build_rig(bpy.context, "mixamo", a_pose=True, roll=0.7, matrix_world=...)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PRESETS = Path(__file__).resolve().parents[2] / "bamm_blender" / "presets"
P = {  # left side and centre points, metres
    "pelvis": (0.0, 0.0, 1.00), "spine_base": (0.0, 0.0, 1.07), "chest_top": (0.0, 0.01, 1.45),
    "neck_mid": (0.0, 0.01, 1.52), "head": (0.0, 0.0, 1.58), "head_top": (0.0, 0.0, 1.80),
    "hip": (0.095, 0.0, 0.95), "knee": (0.10, -0.02, 0.52), "ankle": (0.10, 0.03, 0.09),
    "ball": (0.10, -0.10, 0.02), "toe_end": (0.10, -0.17, 0.02),
    "collar": (0.03, 0.01, 1.42), "shoulder": (0.18, 0.02, 1.44), "elbow": (0.46, 0.03, 1.44),
    "wrist": (0.72, 0.02, 1.44), "hand_end": (0.82, 0.02, 1.44),
}
ARM_POINTS = ("shoulder", "elbow", "wrist", "hand_end")
FINGERS = {"thumb": -0.03, "index": 0.0, "middle": 0.02}


def points(side: str, a_pose: bool) -> dict[str, np.ndarray]:
    """Named points of one side ("l" or "r"; centre points are shared), the arm lowered 45 deg in A-pose."""
    out = {k: np.array(v) * (1.0 if side == "l" else np.array([-1.0, 1.0, 1.0])) for k, v in P.items()}
    if a_pose:
        pivot = out["shoulder"]
        c, s = np.cos(np.pi / 4), np.sin(np.pi / 4) * (1.0 if side == "l" else -1.0)
        for k in ARM_POINTS[1:]:
            x, y, z = out[k] - pivot
            out[k] = pivot + np.array([c * x + s * z, y, -s * x + c * z])
    return out


def _lerp(a, b, t):
    return np.asarray(a) + t * (np.asarray(b) - np.asarray(a))


def _spine(names: list[str], parent: str, pts) -> list[tuple]:
    bones, n = [], len(names)
    for k, name in enumerate(names):
        bones.append((name, parent, _lerp(pts["spine_base"], pts["chest_top"], k / n),
                      _lerp(pts["spine_base"], pts["chest_top"], (k + 1) / n)))
        parent = name
    return bones


def _fingers(fmt: str, parent: str, pts, side: str) -> list[tuple]:
    bones = []
    direction = pts["hand_end"] - pts["wrist"]
    for finger, dy in FINGERS.items():
        start, prev = pts["hand_end"] + np.array([0.0, dy, 0.0]), parent
        for k in range(3):
            name = fmt.format(f=finger, F=finger.capitalize(), k=k + 1, s=side, S=side.upper())
            bones.append((name, prev, start + 0.3 * k * direction, start + 0.3 * (k + 1) * direction))
            prev = name
    return bones


def _mixamo(a_pose):
    m = "mixamorig:"
    c = points("l", a_pose)
    bones = [(m + "Hips", None, c["pelvis"], c["spine_base"])]
    bones += _spine([m + "Spine", m + "Spine1", m + "Spine2"], m + "Hips", c)
    bones += [(m + "Neck", m + "Spine2", c["chest_top"], c["head"]), (m + "Head", m + "Neck", c["head"], c["head_top"]),
              (m + "HeadTop_End", m + "Head", c["head_top"], c["head_top"] + [0, 0, 0.05])]
    for side, word in (("l", "Left"), ("r", "Right")):
        p = points(side, a_pose)
        n = lambda s: f"{m}{word}{s}"  # noqa: E731
        bones += [(n("UpLeg"), m + "Hips", p["hip"], p["knee"]), (n("Leg"), n("UpLeg"), p["knee"], p["ankle"]),
                  (n("Foot"), n("Leg"), p["ankle"], p["ball"]), (n("ToeBase"), n("Foot"), p["ball"], p["toe_end"]),
                  (n("Toe_End"), n("ToeBase"), p["toe_end"], p["toe_end"] + [0, -0.03, 0]),
                  (n("Shoulder"), m + "Spine2", p["collar"], p["shoulder"]),
                  (n("Arm"), n("Shoulder"), p["shoulder"], p["elbow"]),
                  (n("ForeArm"), n("Arm"), p["elbow"], p["wrist"]),
                  (n("Hand"), n("ForeArm"), p["wrist"], p["hand_end"])]
        bones += _fingers(m + word + "Hand{F}{k}", n("Hand"), p, side)
    return bones


def _ue(a_pose, spine_count=5):
    c = points("l", a_pose)
    spine = [f"spine_0{k + 1}" for k in range(spine_count)]
    bones = [("root", None, np.zeros(3), np.array([0.0, 0.2, 0.0])), ("pelvis", "root", c["pelvis"], c["spine_base"])]
    bones += _spine(spine, "pelvis", c)
    bones += [("neck_01", spine[-1], c["chest_top"], c["neck_mid"]), ("neck_02", "neck_01", c["neck_mid"], c["head"]),
              ("head", "neck_02", c["head"], c["head_top"]),
              ("ik_foot_root", "root", np.zeros(3), np.array([0, 0.1, 0])),
              ("ik_hand_root", "root", np.zeros(3), np.array([0, 0.1, 0])),
              ("ik_hand_gun", "ik_hand_root", c["wrist"] * [-1, 1, 1], c["hand_end"] * [-1, 1, 1])]
    for s in ("l", "r"):
        p = points(s, a_pose)
        bones += [(f"thigh_{s}", "pelvis", p["hip"], p["knee"]),
                  (f"thigh_twist_01_{s}", f"thigh_{s}", _lerp(p["hip"], p["knee"], 0.5), p["knee"]),
                  (f"calf_{s}", f"thigh_{s}", p["knee"], p["ankle"]),
                  (f"calf_twist_01_{s}", f"calf_{s}", _lerp(p["knee"], p["ankle"], 0.5), p["ankle"]),
                  (f"foot_{s}", f"calf_{s}", p["ankle"], p["ball"]),
                  (f"ball_{s}", f"foot_{s}", p["ball"], p["toe_end"]),
                  (f"clavicle_{s}", spine[-1], p["collar"], p["shoulder"]),
                  (f"upperarm_{s}", f"clavicle_{s}", p["shoulder"], p["elbow"]),
                  (f"upperarm_twist_01_{s}", f"upperarm_{s}", _lerp(p["shoulder"], p["elbow"], 0.5), p["elbow"]),
                  (f"lowerarm_{s}", f"upperarm_{s}", p["elbow"], p["wrist"]),
                  (f"lowerarm_twist_01_{s}", f"lowerarm_{s}", _lerp(p["elbow"], p["wrist"], 0.5), p["wrist"]),
                  (f"hand_{s}", f"lowerarm_{s}", p["wrist"], p["hand_end"]),
                  (f"ik_foot_{s}", "ik_foot_root", p["ankle"], p["ball"]),
                  (f"ik_hand_{s}", "ik_hand_gun", p["wrist"], p["hand_end"])]
        bones += _fingers("{f}_0{k}_" + s, f"hand_{s}", p, s)
    return bones


def _rigify(a_pose):
    c = points("l", a_pose)
    spine = [(f"spine.00{k}" if k else "spine") for k in range(7)]
    ends = [c["pelvis"], c["spine_base"], _lerp(c["spine_base"], c["chest_top"], 1 / 3),
            _lerp(c["spine_base"], c["chest_top"], 2 / 3), c["chest_top"], c["neck_mid"], c["head"], c["head_top"]]
    bones = [("root", None, np.zeros(3), np.array([0.0, 0.3, 0.0])),
             ("torso", "root", c["pelvis"], c["pelvis"] + [0, 0.3, 0]),
             ("hips", "torso", c["spine_base"], c["pelvis"]), ("chest", "torso", c["spine_base"], c["chest_top"]),
             ("neck", "chest", c["chest_top"], c["head"]), ("head", "neck", c["head"], c["head_top"])]
    for prefix, top in (("ORG-", "root"), ("DEF-", "root")):
        for k, name in enumerate(spine):
            bones.append((prefix + name, top if k == 0 else prefix + spine[k - 1], ends[k], ends[k + 1]))
    for s in ("L", "R"):
        p = points(s.lower(), a_pose)
        chain = [("thigh", "spine", p["hip"], p["knee"]), ("shin", "thigh", p["knee"], p["ankle"]),
                 ("foot", "shin", p["ankle"], p["ball"]), ("toe", "foot", p["ball"], p["toe_end"]),
                 ("shoulder", "spine.003", p["collar"], p["shoulder"]),
                 ("upper_arm", "shoulder", p["shoulder"], p["elbow"]), ("forearm", "upper_arm", p["elbow"], p["wrist"]),
                 ("hand", "forearm", p["wrist"], p["hand_end"])]
        segmented = {"thigh", "shin", "upper_arm", "forearm"}
        for name, parent, head, tail in chain:
            sided = "" if parent.startswith("spine") else f".{s}"
            bones.append((f"ORG-{name}.{s}", f"ORG-{parent}{sided}", head, tail))
            def_parent = f"DEF-{parent}{sided}"
            if parent in segmented:
                def_parent += ".001"
            if name in segmented:
                bones += [(f"DEF-{name}.{s}", def_parent, head, _lerp(head, tail, 0.5)),
                          (f"DEF-{name}.{s}.001", f"DEF-{name}.{s}", _lerp(head, tail, 0.5), tail)]
            else:
                bones.append((f"DEF-{name}.{s}", def_parent, head, tail))
            if name in ("thigh", "shin", "upper_arm", "forearm", "hand"):
                bones.append((f"{name}_fk.{s}", "root", head, tail))
        bones += [(f"DEF-pelvis.{s}", "DEF-spine", c["pelvis"], p["hip"] + [0, -0.12, -0.05]),
                  (f"DEF-breast.{s}", "DEF-spine.003", p["collar"] + [0.06, -0.1, -0.15],
                   p["collar"] + [0.06, -0.2, -0.15]),
                  (f"hand_ik.{s}", "root", p["wrist"], p["hand_end"]), (f"foot_ik.{s}", "root", p["ankle"], p["ball"]),
                  (f"MCH-thigh_ik.{s}", "root", p["hip"], p["knee"])]
    return bones


def _simple(names: dict[str, str], spine_names: list[str], a_pose, *, collar_parent: str, hand_leaf: str = ""):
    """A one-bone-per-joint rig. ``names`` maps roles to names with ``{s}``/``{S}``/``{side}`` placeholders."""
    c = points("l", a_pose)
    bones = [(names["pelvis"], None, c["pelvis"], c["spine_base"])]
    bones += _spine(spine_names, names["pelvis"], c)
    bones += [(names["neck"], spine_names[-1], c["chest_top"], c["head"]),
              (names["head"], names["neck"], c["head"], c["head_top"])]
    for s in ("l", "r"):
        p = points(s, a_pose)
        n = lambda role: names[role].format(s=s, S=s.upper(), side="left" if s == "l" else "right")  # noqa: E731
        bones += [(n("hip"), names["pelvis"], p["hip"], p["knee"]), (n("knee"), n("hip"), p["knee"], p["ankle"]),
                  (n("ankle"), n("knee"), p["ankle"], p["ball"]), (n("foot"), n("ankle"), p["ball"], p["toe_end"]),
                  (n("collar"), collar_parent, p["collar"], p["shoulder"]),
                  (n("shoulder"), n("collar"), p["shoulder"], p["elbow"]),
                  (n("elbow"), n("shoulder"), p["elbow"], p["wrist"]),
                  (n("wrist"), n("elbow"), p["wrist"], p["hand_end"])]
        if hand_leaf:
            bones.append((hand_leaf.format(S=s.upper()), n("wrist"), p["hand_end"], p["hand_end"] + [0.0, 0.0, -0.03]))
    return bones


def _smpl(a_pose):
    names = dict(pelvis="Pelvis", neck="Neck", head="Head", hip="{S}_Hip", knee="{S}_Knee", ankle="{S}_Ankle",
                 foot="{S}_Foot", collar="{S}_Collar", shoulder="{S}_Shoulder", elbow="{S}_Elbow", wrist="{S}_Wrist")
    return _simple(names, ["Spine1", "Spine2", "Spine3"], a_pose, collar_parent="Spine3", hand_leaf="{S}_Hand")


def _smplx(a_pose):
    names = dict(pelvis="pelvis", neck="neck", head="head", **{k: "{side}_" + k for k in
                 ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")})
    return _simple(names, ["spine1", "spine2", "spine3"], a_pose, collar_parent="spine3")


def _bandai(a_pose):
    names = dict(pelvis="Hips", neck="Neck", head="Head", hip="UpperLeg_{S}", knee="LowerLeg_{S}", ankle="Foot_{S}",
                 foot="Toes_{S}", collar="Shoulder_{S}", shoulder="UpperArm_{S}", elbow="LowerArm_{S}",
                 wrist="Hand_{S}")
    return _simple(names, ["Spine", "Chest"], a_pose, collar_parent="Chest")


def _generic(a_pose):
    names = dict(pelvis="hips", neck="neck", head="head", hip="thigh.{S}", knee="shin.{S}", ankle="foot.{S}",
                 foot="toe.{S}", collar="shoulder.{S}", shoulder="upper_arm.{S}", elbow="forearm.{S}", wrist="hand.{S}")
    return _simple(names, ["spine", "chest"], a_pose, collar_parent="chest")


GERMAN = dict(pelvis="Hüfte", neck="Hals", head="Kopf", hip="Oberschenkel_{S}", knee="Unterschenkel_{S}",
              ankle="Fuß_{S}", foot="Zehen_{S}", collar="Schlüsselbein_{S}", shoulder="Oberarm_{S}",
              elbow="Unterarm_{S}", wrist="Hand_{S}")  # names no bone-name rule knows (but "Hand")


def _german(a_pose):
    return _simple(GERMAN, ["Wirbelsäule", "Brustkorb"], a_pose, collar_parent="Brustkorb")


STYLES = {"mixamo": _mixamo, "ue5_mannequin": _ue, "ue4_mannequin": lambda a: _ue(a, 3), "rigify": _rigify,
          "smpl": _smpl, "smplx": _smplx, "bandai_namco": _bandai, "generic": _generic,
          "german": _german}
GENERIC_EXPECTED = {"pelvis": "hips", "spine1": "spine", "spine3": "chest", "neck": "neck", "head": "head",
                    **{f"{s}_{j}": f"{b}.{s.upper()}" for s in "lr" for j, b in
                       (("hip", "thigh"), ("knee", "shin"), ("ankle", "foot"), ("foot", "toe"), ("collar", "shoulder"),
                        ("shoulder", "upper_arm"), ("elbow", "forearm"), ("wrist", "hand"))}}


def expected(style: str) -> dict[str, str]:
    if style == "generic":
        return dict(GENERIC_EXPECTED)
    if style == "german":
        return {j: b.format(S=s.upper()) for s in "lr" for j, b in
                ((f"{s}_{k}", v) for k, v in GERMAN.items() if "{S}" in v)} | {
            "pelvis": "Hüfte", "spine1": "Wirbelsäule", "spine3": "Brustkorb", "neck": "Hals", "head": "Kopf"}
    return json.loads((PRESETS / f"{style}.json").read_text())["bones"]


def turn_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rig_bones(style: str, *, a_pose: bool = False, anonymous: bool = False, turn: float = 0.0) -> list[tuple]:
    """``(name, parent, head, tail)`` in world space. ``anonymous`` renames every bone to ``Bone.NNN``;
    ``turn`` (radians) turns the character about the world Z axis (0: facing -Y)."""
    bones = [(n, p, turn_z(turn) @ h, turn_z(turn) @ t) for n, p, h, t in STYLES[style](a_pose)]
    if anonymous:
        rename = {b[0]: f"Bone.{k:03d}" for k, b in enumerate(bones)}
        bones = [(rename[n], rename.get(p), h, t) for n, p, h, t in bones]
    return bones


def anonymous_names(style: str) -> dict[str, str]:
    return {b[0]: f"Bone.{k:03d}" for k, b in enumerate(STYLES[style](False))}


def build_rig(context, style: str, *, name: str = "", a_pose: bool = False, anonymous: bool = False,
              roll: float = 0.0, turn: float = 0.0, matrix_world=None):
    """An armature object linked to the scene with the bones of ``style``; world positions as in ``P`` (turned
    by ``turn`` about Z) whatever ``matrix_world`` (4x4) is. ``roll`` (radians) is given to every bone,
    alternating sign."""
    import bpy
    from mathutils import Matrix

    world = np.eye(4) if matrix_world is None else np.asarray(matrix_world, dtype=np.float64)
    inverse = np.linalg.inv(world)
    data = bpy.data.armatures.new(name or style)
    obj = bpy.data.objects.new(name or style, data)
    obj.matrix_world = Matrix(world.tolist())
    context.collection.objects.link(obj)
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = rig_bones(style, a_pose=a_pose, anonymous=anonymous, turn=turn)
    for k, (bone_name, parent, head, tail) in enumerate(bones):
        bone = data.edit_bones.new(bone_name)
        bone.head = (inverse @ np.append(head, 1.0))[:3]
        bone.tail = (inverse @ np.append(tail, 1.0))[:3]
        bone.roll = roll * (1 if k % 2 else -1)
        if parent:
            bone.parent = data.edit_bones[parent]
        bone.use_deform = not (bone_name.startswith(("ORG-", "MCH-", "ik_")) or "_fk" in bone_name)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def fbx_round_trip(context, obj, path) -> object:
    """``obj`` written to FBX by Blender's exporter (no leaf bones) and imported back into an empty scene, so
    the importer's bone lengths apply (a leaf bone gets its parent's length). Returns the imported armature."""
    import bpy

    for other in context.scene.objects:
        other.select_set(other == obj)
    context.view_layer.objects.active = obj
    bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True, object_types={"ARMATURE"},
                             add_leaf_bones=False)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path))
    (imported,) = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    return imported
