"""Characters with an animator's animation on them, and what the edit tests and ``bench/rig_edit.py`` measure.

    rig, action = animated_character(context, "mixamo_cm", joints)   # a clip retargeted onto the character

Styles (``STYLES``): ``mixamo_cm`` (Mixamo names, T-pose, the FBX importer's object transform: Y-up centimetres
at 0.01 scale), ``rigify`` (Rigify-like: DEF- deform bones beside ORG-, MCH- and control bones) and
``extra_spine`` (Mixamo names with one more bone, unmapped and keyed, between the chest and the neck). Every
character also gets keys the edits must never touch: its fingers (unmapped), a custom property and, on
``extra_spine``, the extra bone.
"""

from __future__ import annotations

import numpy as np

from . import rigs

FBX_LIKE = np.array([[0.01, 0, 0, 0], [0, 0, -0.01, 0], [0, 0.01, 0, 0], [0, 0, 0, 1.0]])  # X +90 deg, 0.01
STYLES = {"mixamo_cm": ("mixamo", FBX_LIKE), "rigify": ("rigify", None), "extra_spine": ("mixamo", None)}
EXTRA = "mixamorig:Link"  # a name no bone-name rule knows
CUSTOM = '["bamm_test_prop"]'


def _insert_extra(context, obj) -> None:
    import bpy

    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = obj.data.edit_bones
    chest, neck = bones["mixamorig:Spine2"], bones["mixamorig:Neck"]
    extra = bones.new(EXTRA)
    extra.head, extra.tail = chest.tail.copy(), chest.tail.lerp(neck.tail, 0.25)
    extra.parent = chest
    neck.parent = extra
    bpy.ops.object.mode_set(mode="OBJECT")


def _add_fingers(context, obj) -> None:
    """Ring and little fingers and the finger tips of a Mixamo hand: 65 bones in all, as Mixamo's own rigs."""
    import bpy

    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = obj.data.edit_bones
    for side in ("Left", "Right"):
        hand = bones[f"mixamorig:{side}Hand"]
        for k, finger in enumerate(("Ring", "Pinky")):
            parent = hand
            for n in range(1, 5):
                bone = bones.new(f"mixamorig:{side}Hand{finger}{n}")
                offset = (hand.tail - hand.head) * (0.3 * n) + hand.z_axis * (0.01 * (k + 1))
                bone.head, bone.tail = hand.tail + offset * 0.9, hand.tail + offset * 1.2
                bone.parent = parent
                parent = bone
        for finger in ("Thumb", "Index", "Middle"):
            tip = bones[f"mixamorig:{side}Hand{finger}3"]
            bone = bones.new(f"mixamorig:{side}Hand{finger}4")
            bone.head, bone.tail, bone.parent = tip.tail, tip.tail + (tip.tail - tip.head) * 0.5, tip
    bpy.ops.object.mode_set(mode="OBJECT")


def animated_character(context, style: str, joints: np.ndarray, *, name: str = "Character", mode: str = "",
                       hands: bool = False):
    """The character of ``style`` with ``joints`` (20-fps model joints) retargeted onto it by the add-on's
    Retarget from frame 1, plus the untouchable keys; the BAMM Skeleton used for it is deleted. ``mode``: the
    rotation mode of every bone (default: Blender's, quaternion). ``hands`` (Mixamo names): five-finger hands
    (65 bones), every finger keyed on every frame, as motion capture is."""
    import bpy

    from bamm_blender import armature, bake, retarget

    base, matrix = STYLES[style]
    source = armature.build_armature(context)
    bake.assign_action(source, bake.bake_joints(source, joints, scene=context.scene, first_frame=1, name="clip"))
    rig = rigs.build_rig(context, base, name=name, matrix_world=matrix)
    if style == "extra_spine":
        _insert_extra(context, rig)
    if hands:
        _add_fingers(context, rig)
    for pose_bone in rig.pose.bones if mode else ():
        pose_bone.rotation_mode = mode
    action = retarget.retarget(context, source, rig)
    action.name = f"{name} animation"
    source_action = source.animation_data.action
    bpy.data.objects.remove(source)
    bpy.data.actions.remove(source_action)
    first, last = bake.key_range(rig, action)
    container = bake.channels(action, rig)
    extra = [b.name for b in rig.pose.bones if "Hand" in b.name and b.name[-1].isdigit()][:None if hands else 4]
    if style == "extra_spine":
        extra.append(EXTRA)
    for k, bone in enumerate(extra):
        pose_bone = rig.pose.bones[bone]
        prop = "rotation_quaternion" if pose_bone.rotation_mode == "QUATERNION" else "rotation_euler"
        fcurve = container.fcurves.new(pose_bone.path_from_id(prop), index=1)
        frames = np.arange(first, last + 1, 1 if hands else 3, dtype=np.float64)
        bake.write_keys(fcurve, frames, 0.1 * np.sin(frames / 7.0 + k))
        fcurve.keyframe_points[1].interpolation = "CONSTANT"
    rig["bamm_test_prop"] = 0.0
    fcurve = container.fcurves.new(CUSTOM, index=0)
    bake.write_keys(fcurve, np.array([first, (first + last) // 2, last], dtype=np.float64), np.array([0.0, 1.0, 0.5]))
    return rig, action


def all_keys(obj, action) -> dict:
    """Every keyframe attribute of every F-curve, by (data path, index)."""
    from bamm_blender import bake

    return {(fc.data_path, fc.array_index): bake._read_keys(fc.keyframe_points)
            for fc in bake.channels(action, obj).fcurves}


def outside_differences(before: dict, after: dict, first: int, last: int) -> list:
    """(channel, attribute) of every key outside ``first .. last`` that is not bit-identical, and every channel
    of ``before`` missing from ``after``."""
    bad = []
    for channel, old in before.items():
        if channel not in after:
            bad.append((channel, "missing"))
            continue
        new = after[channel]
        keep_old = (old["co"][:, 0] < first) | (old["co"][:, 0] > last)
        keep_new = (new["co"][:, 0] < first) | (new["co"][:, 0] > last)
        bad += [(channel, attr) for attr in old if old[attr][keep_old].shape != new[attr][keep_new].shape
                or not np.array_equal(old[attr][keep_old], new[attr][keep_new])]
    return bad


def world_heads(obj, bones, frames) -> np.ndarray:
    """Posed bone heads ``(F, len(bones), 3)`` in world space as Blender evaluates them."""
    import bpy

    out = []
    for frame in frames:
        bpy.context.scene.frame_set(int(frame))
        world = np.array(obj.matrix_world)
        out.append([world[:3, :3] @ np.array(obj.pose.bones[b].head) + world[:3, 3] for b in bones])
    return np.array(out)


def speeds(points: np.ndarray) -> np.ndarray:
    """Mean over joints of each frame-to-frame joint displacement ``(F - 1,)`` (from frame t to t + 1)."""
    return np.linalg.norm(points[1:] - points[:-1], axis=-1).mean(axis=-1)


def seam_jumps(points: np.ndarray, frames: np.ndarray, first: int, last: int) -> list[float]:
    """The joints' step across each seam of the span ``first .. last`` (``speeds`` from the last kept frame to
    the first new one, and from the last new frame to the first kept one), where both frames are in ``frames``."""
    step = {int(f): v for f, v in zip(frames[:-1], speeds(points))}
    return [float(step[a]) for a in (first - 1, last) if a in step and a + 1 in set(int(f) for f in frames)]


def seam_accelerations(points: np.ndarray, frames: np.ndarray, first: int, last: int) -> list[float]:
    """The change of joint velocity (mean over joints) at each seam: the larger of the two frames beside it."""
    acc = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1).mean(axis=-1)
    at = {int(f): a for f, a in zip(frames[1:-1], acc)}
    return [float(max(at[a], at[b])) for a, b in ((first - 1, first), (last, last + 1)) if a in at and b in at]


def direction_errors(rig_points: np.ndarray, joints: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """Angle (degrees, ``(F, bones)``) between each one-child SMPL bone of the character (its mapped heads,
    world) and of the model's joints turned into the character's facing (``retarget.Plan.facing``)."""
    from bamm_blender import armature, axes

    pairs = [(j, kids[0]) for j, kids in enumerate(armature.CHILDREN) if len(kids) == 1]
    model = axes.to_blender(joints) @ facing.T
    a = np.stack([rig_points[:, c] - rig_points[:, j] for j, c in pairs], axis=1)
    b = np.stack([model[:, c] - model[:, j] for j, c in pairs], axis=1)
    cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
