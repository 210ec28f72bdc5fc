"""A character's own action read as model joints: the source of Regenerate Range, Extend and Fill Gap when the
panel's Armature is a character (any armature that is not a BAMM Skeleton).

The bone map is the Retarget & Export section's when it was made for this armature (Auto Map, a built-in preset
or a saved map loaded there), else ``bone_map.auto_map``; the hips, legs and arms must be mapped. The mapped
bones' heads are found by forward kinematics of the action's keys (each bone's location, rotation in its own
rotation mode and scale; a channel without keys holds the pose bone's current value) on a 20-fps grid from the
first key. A joint the map leaves out is carried by the nearest mapped joint above it (spine2 between spine1 and
spine3, a toe ahead of its ankle, at the model's proportions). The points are turned from the character's facing
into the model's axes (the facing of ``retarget.plan``), put on the floor of the rest pose, and brought to the
model's skeleton proportions (``posed_joints``: every bone keeps its direction and takes the model's length, the
root path is scaled by leg length): what the model encodes.

What an edit keys (``rig_edit``): the rotation of the mapped bones (the deform bones the map names) and the
location of the hips bone. Nothing else is touched: unmapped bones (fingers, face, props, IK and control bones)
and every other channel keep all their keys. Refused in one line before anything is sent: a mapped bone, or a
bone above one, whose transform is set by a driver or an active constraint (its keys are not what is seen), or
that does not inherit its parent's rotation and scale as Blender's default does (the forward kinematics here
assumes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from . import armature, axes, bake, bone_map, retarget
from .core import MODEL_FPS, model_module, skeleton
from .errors import BammInputError

rot = model_module(".motion.rotations")

TRANSFORMS = ("location", "rotation_quaternion", "rotation_euler", "rotation_axis_angle", "scale")
SPINE = (0, 3, 6, 9, 12, 15)  # pelvis .. head: a joint the map leaves out lies between its mapped neighbours


@dataclass(kw_only=True)
class Character:
    """An armature with its bone map and what reading and writing its poses needs (from its rest pose)."""

    obj: bpy.types.Object
    mapping: dict[str, str]  # SMPL joint -> bone
    plan: retarget.Plan
    chain: list[str]  # the mapped bones and every bone above one, parents first
    carriers: list[tuple[str, np.ndarray]]  # per SMPL joint: (bone, point (4,) in that bone's rest frame)
    origin: np.ndarray  # world point under the rest hips on the rest floor: model (0, 0, 0)


def mapping_of(context, obj) -> dict[str, str]:
    """The Retarget & Export bone map when it was made for ``obj``, else the automatic one."""
    s = getattr(context.scene, "bamm_retarget", None)
    if s is not None and len(s.bone_map) and s.bone_map_target == obj.name:
        return {item.joint: item.bone for item in s.bone_map if item.bone}
    return bone_map.auto_map(bone_map.Rig.from_armature(obj))


def character(context, obj, mapping: dict[str, str] | None = None) -> Character:
    """The character ``obj`` with ``mapping`` (None: ``mapping_of``), checked (see the module docstring)."""
    if obj is None or obj.type != "ARMATURE":
        raise BammInputError(f"'{getattr(obj, 'name', obj)}' is not an armature: pick the character's armature")
    mapping = mapping_of(context, obj) if mapping is None else mapping
    rig = bone_map.Rig.from_armature(obj)
    mapping = bone_map.check_mapping(rig, mapping, name=f"armature '{obj.name}'")
    plan = retarget.plan(armature.MODEL_SKELETON, obj, mapping)
    needed = set(mapping.values())
    for bone in mapping.values():
        needed.update(b.name for b in obj.data.bones[bone].parent_recursive)
    chain = [b.name for b in sorted(obj.data.bones, key=lambda b: len(b.parent_recursive)) if b.name in needed]
    _check_editable(obj, chain)
    rest = _rest_points(obj, mapping, plan)
    floor = min(rest @ plan.up_target)
    origin = rest[0] - (rest[0] @ plan.up_target - floor) * plan.up_target
    to_armature = np.linalg.inv(np.array(obj.matrix_world))
    carriers = []
    for j, name in enumerate(skeleton.JOINT_NAMES):
        a = j
        while armature.BONE_NAMES[a] not in mapping:
            a = skeleton.PARENTS[a]
        bone = mapping[armature.BONE_NAMES[a]]
        local = np.linalg.inv(np.array(obj.data.bones[bone].matrix_local)) @ to_armature @ np.append(rest[j], 1.0)
        carriers.append((bone, local))
    return Character(obj=obj, mapping=mapping, plan=plan, chain=chain, carriers=carriers, origin=origin)


def _check_editable(obj, chain: list[str]) -> None:
    drivers = obj.animation_data.drivers if obj.animation_data else ()
    for fcurve in drivers:
        path = fcurve.data_path
        bone = path.split('"')[1] if path.startswith('pose.bones["') else ""
        if bone in chain and path.rsplit(".", 1)[-1] in TRANSFORMS:
            raise BammInputError(f"Bone '{bone}' of '{obj.name}' is moved by a driver ({path}): its keys are not "
                                 "what is seen, so it cannot be edited; remove the driver or edit a copy")
    for name in chain:
        pose_bone, bone = obj.pose.bones[name], obj.data.bones[name]
        active = [c.name for c in pose_bone.constraints if c.enabled and c.influence > 0.0]
        if active:
            raise BammInputError(f"Bone '{name}' of '{obj.name}' is moved by its constraint '{active[0]}': edits key "
                                 "the deform bones themselves; bake the animation onto them (Pose > Animation > "
                                 "Bake Action, Visual Keying) or mute the constraint first")
        if not bone.use_inherit_rotation or bone.inherit_scale != "FULL" or not bone.use_local_location:
            raise BammInputError(f"Bone '{name}' of '{obj.name}' does not inherit its parent's rotation and scale "
                                 "(Bone > Relations): not supported by edits")


def _rest_points(obj, mapping: dict[str, str], plan: retarget.Plan) -> np.ndarray:
    """World rest positions (22, 3) of the SMPL joints: mapped ones at their bone's head, the others between
    their mapped neighbours on the spine and arm chains, else at the model's offset from their parent."""
    world = np.array(obj.matrix_world)
    heads = {j: world[:3, :3] @ np.array(obj.data.bones[b].head_local) + world[:3, 3] for j, b in mapping.items()}
    model_rest = armature.MODEL_SKELETON.rest
    out = np.zeros((22, 3))
    for j, name in enumerate(skeleton.JOINT_NAMES):
        if name in heads:
            out[j] = heads[name]
            continue
        path = SPINE if j in SPINE else (9, j, (16 if j == 13 else 17)) if j in (13, 14) else ()
        below = [k for k in path[path.index(j) + 1:] if skeleton.JOINT_NAMES[k] in heads] if path else []
        parent = skeleton.PARENTS[j]
        if below:
            a, d = parent, below[0]
            lengths = np.linalg.norm(np.diff(model_rest[list(path)], axis=0), axis=-1)
            cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
            at = {k: cumulative[i] for i, k in enumerate(path)}
            share = (at[j] - at[a]) / max(at[d] - at[a], 1e-9)
            out[j] = out[a] + share * (heads[skeleton.JOINT_NAMES[d]] - out[a])
        else:
            offset = axes.to_blender(model_rest[j] - model_rest[parent])
            out[j] = out[parent] + plan.ratio * plan.facing @ offset
    return out


# ------------------------------------------------------------------------------------------ reading poses
def channel_values(container, obj, bone: str, prop: str, frames: np.ndarray) -> np.ndarray:
    """``(F, size)`` values of a pose bone's property at ``frames``: its F-curves, else its current value."""
    current = np.array(getattr(obj.pose.bones[bone], prop), dtype=np.float64)
    out = np.empty((len(frames), len(current)))
    path = obj.pose.bones[bone].path_from_id(prop)
    for index in range(len(current)):
        fcurve = container.fcurves.find(path, index=index)
        out[:, index] = [fcurve.evaluate(f) for f in frames] if fcurve else current[index]
    return out


def rotation_quats(mode: str, values: np.ndarray) -> np.ndarray:
    """Quaternions (x, y, z, w) ``(F, 4)`` of rotation channel values in a pose bone's rotation ``mode``."""
    if mode == "QUATERNION":
        q = np.roll(values, -1, axis=-1)
        return q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    if mode == "AXIS_ANGLE":
        axis = values[:, 1:] / np.maximum(np.linalg.norm(values[:, 1:], axis=-1, keepdims=True), 1e-12)
        return rot.quat_from_rotvec(axis * values[:, :1])
    order = mode.lower()  # Blender's "ZXY": Z first about fixed axes = the extrinsic sequence "zxy"
    return rot.quat_from_euler(order, values[:, ["xyz".index(axis) for axis in order]])


def rotation_prop(mode: str) -> str:
    return {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")


def basis(obj, action, bones: list[str], frames: np.ndarray) -> dict[str, np.ndarray]:
    """Pose-bone matrices ``{bone: (F, 4, 4)}`` (location, rotation, scale) of the action at scene ``frames``."""
    container = bake.channels(action, obj)
    out = {}
    for bone in bones:
        mode = obj.pose.bones[bone].rotation_mode
        values = channel_values(container, obj, bone, rotation_prop(mode), frames)
        turn = rot.quat_to_matrix(rotation_quats(mode, values))
        matrices = np.zeros((len(frames), 4, 4))
        matrices[:, :3, :3] = turn * channel_values(container, obj, bone, "scale", frames)[:, None, :]
        matrices[:, :3, 3] = channel_values(container, obj, bone, "location", frames)
        matrices[:, 3, 3] = 1.0
        out[bone] = matrices
    return out


def posed(obj, bases: dict[str, np.ndarray], bones: list[str]) -> dict[str, np.ndarray]:
    """Armature-space matrices ``{bone: (F, 4, 4)}`` of ``bones`` (parents first, each bone's parent among them)."""
    out: dict[str, np.ndarray] = {}
    for name in bones:
        bone = obj.data.bones[name]
        rest = np.array(bone.matrix_local)
        attached = rest if bone.parent is None else out[bone.parent.name] @ (
            np.linalg.inv(np.array(bone.parent.matrix_local)) @ rest)
        out[name] = attached @ bases[name]
    return out


def world_joints(ch: Character, matrices: dict[str, np.ndarray]) -> np.ndarray:
    """World positions ``(F, 22, 3)`` of the SMPL joints on the character posed by ``matrices`` (``posed``)."""
    world = np.array(ch.obj.matrix_world)
    points = np.stack([matrices[bone] @ local for bone, local in ch.carriers], axis=1)[..., :3]
    return points @ world[:3, :3].T + world[:3, 3]


def to_model(ch: Character, points: np.ndarray) -> np.ndarray:
    """World points ``(..., 3)`` of the character -> model axes (the character's rest floor at y = 0, its rest
    hips above the origin, facing +Z), in world units."""
    return axes.to_model((np.asarray(points) - ch.origin) @ ch.plan.facing)


def posed_joints(ch: Character, matrices: dict[str, np.ndarray]) -> np.ndarray:
    """Model joints ``(F, 22, 3)`` at the model's proportions of the character posed by ``matrices``: each SMPL
    bone takes the direction of the character's, with the model's length; the root path is scaled by leg length
    (``retarget.Plan.ratio``). The children of the pelvis and spine3 (hips, spine1, neck, collars) sit where the
    model's rest offsets put them when turned as the character's bone is (the inverse of ``retarget.solve``), not
    where the character's own rest offsets do."""
    points = to_model(ch, world_joints(ch, matrices))
    model_rest = armature.MODEL_SKELETON.rest
    to_world = retarget.world_rotation(np.array(ch.obj.matrix_world))
    out = np.zeros_like(points)
    out[:, 0] = points[:, 0] / ch.plan.ratio
    for j in range(1, len(skeleton.JOINT_NAMES)):
        p = skeleton.PARENTS[j]
        rest = model_rest[j] - model_rest[p]
        if p in (0, 9) and p in ch.plan.bones:
            frame = matrices[ch.plan.bones[p]][:, :3, :3]
            turn = to_world @ (frame / np.linalg.norm(frame, axis=1, keepdims=True))  # world rotation of the bone
            delta = ch.plan.facing.T @ turn @ ch.plan.offsets[p].T @ ch.plan.facing  # the source bone's, Blender axes
            direction = axes.to_model(np.einsum("fij,j->fi", delta, axes.to_blender(rest)))
        else:
            direction = points[:, j] - points[:, p]
        direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
        out[:, j] = out[:, p] + np.linalg.norm(rest) * direction
    return out


def model_frames(first: int, last: int, scene) -> np.ndarray:
    """Scene frames of the 20-fps grid from ``first`` up to ``last``."""
    step = bake.scene_fps(scene) / MODEL_FPS
    return first + np.arange(int(np.floor((last - first) / step + 1e-6)) + 1) * step


def model_joints(ch: Character, action, scene) -> tuple[np.ndarray, int, int]:
    """(20-fps model joints ``(T, 22, 3)`` float32 at the model's proportions from the first key, first key
    frame, last key frame) of the character's action."""
    first, last = bake.key_range(ch.obj, action)
    frames = model_frames(first, last, scene)
    if len(frames) < 2:
        raise BammInputError(f"Action '{action.name}' is shorter than {2 / MODEL_FPS:.1f} s")
    joints = posed_joints(ch, posed(ch.obj, basis(ch.obj, action, ch.chain, frames), ch.chain))
    return joints.astype(np.float32), first, last
