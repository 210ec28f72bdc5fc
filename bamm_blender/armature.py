"""The SMPL-22 armature ("BAMM Skeleton"): build it, check a target, read its rest pose.

One bone per joint, named after the joint (``skeleton.JOINT_NAMES``), head at the joint, tail at its child
(pelvis -> spine1, spine3 -> neck; leaves get a short tail). The rest pose is the HumanML3D target skeleton
(``skeleton.TARGET_OFFSETS``), standing on the floor. Rolls: each bone's local Z axis points to the
character's front, or up for bones that themselves point to the front (feet, ankles).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from . import axes
from .core import skeleton
from .errors import BammInputError

ARMATURE_NAME = "BAMM Skeleton"
MARKER = "bamm_skeleton"  # custom property on armatures built here
BONE_NAMES = skeleton.JOINT_NAMES
PARENTS = skeleton.PARENTS
CHILDREN = tuple(tuple(c for c, p in enumerate(PARENTS) if p == j) for j in range(len(PARENTS)))
TAIL_CHILD = {0: 3, 9: 12}  # several children: the bone points along the spine
LEAF_TAILS = {15: (0.0, 0.12, 0.0), 10: (0.0, 0.0, 0.06), 11: (0.0, 0.0, 0.06)}  # model-space tail offsets
WRIST_TAIL = 0.08


def reference_rest() -> np.ndarray:
    """Rest joints ``(22, 3)`` in model space: the target skeleton with its lowest joint on the floor."""
    rest = skeleton.rest_joints().astype(np.float64)
    rest[:, 1] -= rest[:, 1].min()
    return rest


# Where the shipped model's training clips (Bandai-Namco on the HumanML3D skeleton) hold the hips and collars
# away from the axis-aligned rest offsets, in the rest frame of the pelvis / spine3 (model space, metres; the mean
# ``ik.solve`` offsets, printed by ``python bench/rig_edit.py --rest``). HumanML3D's own clips hold the hips
# lower still; no character's rest pose says where the model expects them.
CLIP_REST_OFFSETS = {1: (-0.0055, -0.0331, 0.0), 2: (0.0058, -0.0353, 0.0), 13: (-0.0883, 0.1284, -0.0024),
                     14: (0.0921, 0.1339, -0.0025)}


def clip_rest() -> np.ndarray:
    """Rest joints (22, 3) of the model skeleton as the training clips hold it (``CLIP_REST_OFFSETS``), floor at 0."""
    rest = reference_rest()
    bones = np.array([rest[j] - rest[p] if p >= 0 else rest[j] for j, p in enumerate(PARENTS)])
    for j, offset in CLIP_REST_OFFSETS.items():
        bones[j] += offset
    out = np.zeros_like(rest)
    for j, p in enumerate(PARENTS):
        out[j] = bones[j] if p < 0 else out[p] + bones[j]
    out[:, 1] -= out[:, 1].min()
    return out


@dataclass(frozen=True, eq=False)
class ModelSkeleton:
    """A BAMM Skeleton at the world origin that exists only as its rest pose ``rest`` (22, 3), model space."""

    rest: np.ndarray


MODEL_SKELETON = ModelSkeleton(clip_rest())


def bone_tail(rest: np.ndarray, j: int) -> np.ndarray:
    """Where the bone of joint ``j`` ends in the rest pose ``rest`` (22, 3), model space."""
    kids = CHILDREN[j]
    if kids:
        return rest[TAIL_CHILD.get(j, kids[0])]
    if j in LEAF_TAILS:
        return rest[j] + np.array(LEAF_TAILS[j])
    direction = rest[j] - rest[PARENTS[j]]
    return rest[j] + WRIST_TAIL * direction / np.linalg.norm(direction)


def build_armature(
    context: bpy.types.Context, *, name: str = ARMATURE_NAME, rest: np.ndarray | None = None
) -> bpy.types.Object:
    """Create an SMPL-22 armature object at the world origin, linked to the active collection."""
    rest = reference_rest() if rest is None else np.asarray(rest, dtype=np.float64)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    obj[MARKER] = 1
    context.collection.objects.link(obj)
    previous_active = context.view_layer.objects.active
    previous_mode = context.object.mode if context.object else "OBJECT"
    if previous_mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        heads = axes.to_blender(rest)
        for j, bone_name in enumerate(BONE_NAMES):
            bone = data.edit_bones.new(bone_name)
            bone.head = heads[j]
            bone.tail = axes.to_blender(bone_tail(rest, j))
            direction = (bone_tail(rest, j) - rest[j]) / np.linalg.norm(bone_tail(rest, j) - rest[j])
            along_front = abs(direction @ axes.MODEL_FORWARD) > 0.7
            bone.align_roll(axes.to_blender(axes.MODEL_UP if along_front else axes.MODEL_FORWARD))
            if PARENTS[j] >= 0:
                bone.parent = data.edit_bones[BONE_NAMES[PARENTS[j]]]
                bone.use_connect = len(CHILDREN[PARENTS[j]]) == 1
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        context.view_layer.objects.active = previous_active or obj
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    data.display_type = "STICK"
    return obj


def is_skeleton(obj) -> bool:
    """Whether ``obj`` is an SMPL-22 armature (every joint's bone, quaternion rotation): one whose keys are
    read and written as model joints directly; any other armature is a character (``rig_source``)."""
    return (obj is not None and obj.type == "ARMATURE" and all(n in obj.data.bones for n in BONE_NAMES)
            and all(obj.pose.bones[n].rotation_mode == "QUATERNION" for n in BONE_NAMES))


def check_armature(obj) -> bpy.types.Object:
    """The object if it is an armature with every SMPL-22 bone, else a BammInputError saying what is wrong."""
    if obj is None:
        raise BammInputError("No target armature: pick one in the BAMM panel (or leave it empty to create one)")
    if obj.type != "ARMATURE":
        raise BammInputError(f"'{obj.name}' is a {obj.type.lower()}, not an armature")
    missing = [n for n in BONE_NAMES if n not in obj.data.bones]
    if missing:
        raise BammInputError(
            f"Armature '{obj.name}' is not an SMPL-22 skeleton: bones {', '.join(missing[:4])}"
            f"{' ...' if len(missing) > 4 else ''} are missing (generate once with no target to create one)"
        )
    for name in BONE_NAMES:
        if obj.pose.bones[name].rotation_mode != "QUATERNION":
            raise BammInputError(f"Bone '{name}' of '{obj.name}' must use quaternion rotation")
    return obj


def rest_joints_of(obj: bpy.types.Object) -> np.ndarray:
    """Rest joint positions ``(22, 3)`` of an SMPL-22 armature, model space (armature-object space)."""
    heads = np.array([obj.data.bones[n].head_local for n in BONE_NAMES], dtype=np.float64)
    return axes.to_model(heads)


def rest_matrices_of(obj: bpy.types.Object) -> np.ndarray:
    """``bone.matrix_local`` rotation parts ``(22, 3, 3)`` (Blender armature space)."""
    return np.array([np.array(obj.data.bones[n].matrix_local)[:3, :3] for n in BONE_NAMES])
