"""Motion of a BAMM Skeleton (SMPL-22) -> any character armature, baked into a NEW action on it.

Rest-pose aware, per mapped bone (``bone_map``), all in world space:

    target_world(t) = K · source_delta(t) · K⁻¹ · C · target_rest_world

``source_delta(t)`` is the source bone's world rotation relative to its rest (``source_world(t) ·
source_rest_world⁻¹``); ``K`` turns the source character's facing into the target's (a rotation about the
up axis found from both rest poses: left hip -> right hip); ``C`` is the shortest rotation taking the target
bone's rest direction (towards the bone mapped to the next SMPL joint, else its own Y axis) onto the
source's, so A-pose targets, any roll, bone scale and armature object transform give the same world bone
directions. This is ``target_world = source_world · offset`` with ``offset = source_rest⁻¹ · C ·
target_rest`` computed once (up to the facing turn ``K``). The hips move with the source pelvis scaled by
leg length (target thigh + shin over the source's: the hip-height ratio of straight legs), relative to the
target's rest place, and sit at the height that puts the target's ankles where the source's are (one
constant for the clip). Unmapped bones get no keys and keep their rest pose relative to their parent.

Options (``RetargetOptions``), applied to the source motion first: foot locking (``model_core.motion.
foot_contact``), in place (root XZ removed), loop (last pose = first pose, relative to the root's heading
and ground position); ``keep_root`` writes no hips location (rotations only).

The source is a BAMM Skeleton object, or ``armature.MODEL_SKELETON`` (a rest pose without an object: model joints, as
an edit of a character's own action retargets them back, ``rig_edit``). ``solve``'s ``base`` gives the bones'
own pose-bone matrices per frame: unmapped bones keep theirs (an edit leaves them as the animator keyed them)
and mapped bones their location and scale; without it (Retarget: a new action) they are at rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from . import armature, axes, bake, bone_map
from .core import ik, model_module
from .errors import BammInputError

foot_contact = model_module(".motion.foot_contact")
rot = model_module(".motion.rotations")

JOINTS = armature.BONE_NAMES
UP_MODEL = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True, kw_only=True)
class RetargetOptions:
    """in_place: remove the root's horizontal motion. keep_root: no location keys on the hips (the hips keep
    their rest place). loop: blend the motion so the last pose equals the first (root-relative). foot_lock:
    pin the feet during contact before retargeting. partial: retarget although the map has no bone for an arm
    joint (those bones keep their rest pose); without it such a map is refused, naming the joints.
    action_name: the new action's name ("" = "<target>|<source action>")."""

    in_place: bool = False
    keep_root: bool = False
    loop: bool = False
    foot_lock: bool = False
    partial: bool = False
    action_name: str = ""


# ------------------------------------------------------------------------------------------ source side
def source_action(source) -> bpy.types.Action:
    armature.check_armature(source)
    action = source.animation_data.action if source.animation_data else None
    if action is None:
        raise BammInputError(f"'{source.name}' has no action to retarget: generate a motion first")
    return action


def source_motion(source, scene, options: RetargetOptions, *, contacts=None) -> tuple[np.ndarray, ik.Pose]:
    """Scene frames ``(F,)`` and the source pose on them (model space), with the options applied.
    ``contacts``: foot-contact flags of the 20-fps motion (``features.foot_contacts``); None: from joints."""
    action = source_action(source)
    first, last = bake.key_range(source, action)
    if options.foot_lock:
        joints = bake.read_model_joints(source, action, scene)
        flags = foot_contact.contacts_from_joints(joints) if contacts is None else contacts
        pose = bake.pose_from_joints(source, foot_contact.foot_lock(joints, flags), bake.scene_fps(scene))
    else:
        frames = np.arange(first, last + 1, dtype=np.float64)
        pose = bake.from_bone_space(source, *bake.read_bone_space(source, action, frames))
    if options.loop:
        pose = loop_pose(pose)
    if options.in_place:
        pose.root[:, [0, 2]] = armature.rest_joints_of(source)[0, [0, 2]]
    return first + np.arange(len(pose)), pose


def loop_pose(pose: ik.Pose) -> ik.Pose:
    """The pose blended linearly over the clip so that its last frame equals its first one, except for the
    root's heading and horizontal position (those keep going: a looping walk still walks)."""
    n = len(pose)
    if n < 3:
        raise BammInputError(f"A loop needs at least 3 frames, got {n}")
    w = np.arange(n) / (n - 1)
    rotations = pose.rotations.copy()
    root = pose.rotations[:, 0]
    forward = rot.quat_apply(root, [0.0, 0.0, 1.0])
    heading = rot.quat_from_rotvec(np.arctan2(forward[:, 0], forward[:, 2])[:, None] * UP_MODEL)
    tilt = rot.quat_multiply(rot.quat_inverse(heading), root)
    for j in range(rotations.shape[1]):
        local = tilt if j == 0 else pose.rotations[:, j]
        gap = rot.quat_to_rotvec(rot.quat_multiply(rot.quat_inverse(local[n - 1]), local[0]))
        fixed = rot.quat_multiply(local, rot.quat_from_rotvec(w[:, None] * gap))
        rotations[:, j] = ik.continuous(rot.quat_multiply(heading, fixed) if j == 0 else fixed)
    root_pos = pose.root.copy()
    root_pos[:, 1] += w * (pose.root[0, 1] - pose.root[-1, 1])
    offsets = pose.offsets + w[:, None, None] * (pose.offsets[0] - pose.offsets[-1])
    return ik.Pose(rotations, root_pos, offsets)


def _source_rest(source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The source's world matrix (4x4), rest joints (22, 3, model space) and bone Y axes (3, 22, armature space)."""
    if isinstance(source, armature.ModelSkeleton):
        rest = source.rest
        tails = np.array([armature.bone_tail(rest, j) for j in range(len(JOINTS))])
        y_axes = axes.to_blender(tails - rest)
        return np.eye(4), rest, (y_axes / np.linalg.norm(y_axes, axis=-1, keepdims=True)).T
    return np.array(source.matrix_world), armature.rest_joints_of(source), armature.rest_matrices_of(source)[:, :, 1].T


def world_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation part of a 4x4 (or 3x3) matrix with its scale removed (polar decomposition)."""
    u, _s, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64)[:3, :3])
    return u @ vt


def source_world(source, pose: ik.Pose) -> tuple[np.ndarray, np.ndarray]:
    """World rotation deltas ``(F, 22, 3, 3)`` of the source bones (posed world rotation · rest⁻¹) and world
    joint positions ``(F, 22, 3)``."""
    world, rest, _y = _source_rest(source)
    to_world = world_rotation(world) @ axes.MODEL_TO_BLENDER
    glob: list[np.ndarray] = []  # (F, 4) model-space global rotation of each joint
    for j, p in enumerate(armature.PARENTS):
        local = pose.rotations[:, j]
        glob.append(local if p < 0 else rot.quat_multiply(glob[p], local))
    deltas = np.stack([to_world @ rot.quat_to_matrix(g) @ to_world.T for g in glob], axis=1)
    joints = axes.to_blender(ik.forward(pose, rest=rest))
    return deltas, joints @ world[:3, :3].T + world[:3, 3]


# ------------------------------------------------------------------------------------------ target side
def _tail_child(j: int) -> int | None:
    kids = armature.CHILDREN[j]
    return armature.TAIL_CHILD.get(j, kids[0]) if kids else None


def _frame(up: np.ndarray, lateral: np.ndarray) -> np.ndarray:
    z = up / np.linalg.norm(up)
    x = lateral - (lateral @ z) * z
    if np.linalg.norm(x) < 1e-9:
        raise BammInputError("Cannot tell left from right: the mapped hips lie on the up axis")
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


@dataclass(kw_only=True)
class Plan:
    """Everything computed once from the two rest poses."""

    bones: dict[int, str]  # SMPL joint -> target bone
    offsets: dict[int, np.ndarray]  # C · target_rest_world (3x3) per mapped joint
    facing: np.ndarray  # K (3x3)
    up_source: np.ndarray
    up_target: np.ndarray
    ratio: float  # target leg length / source leg length (hip -> knee -> ankle)
    target_ankle_height: float
    target_pelvis: np.ndarray  # rest world head of the hips bone
    source_pelvis: np.ndarray  # rest world position of the source pelvis


def plan(source, target, mapping: dict[str, str], *, partial: bool = False) -> Plan:
    rig = bone_map.Rig.from_armature(target)
    mapping = bone_map.check_mapping(rig, mapping, name=f"armature '{target.name}'", partial=partial)
    bones = {armature.BONE_NAMES.index(j): b for j, b in mapping.items()}
    src_world, src_rest, src_y = _source_rest(source)
    src_rest = axes.to_blender(src_rest) @ src_world[:3, :3].T + src_world[:3, 3]
    src_axes = src_world[:3, :3] @ src_y  # (3, 22) bone Y axes
    tgt_world = np.array(target.matrix_world)
    tgt_rot = world_rotation(tgt_world)
    index = {n: i for i, n in enumerate(rig.names)}
    head = {j: rig.heads[index[b]] for j, b in bones.items()}

    up_source = world_rotation(src_world) @ axes.to_blender(UP_MODEL)
    top = next((j for j in (12, 9, 6, 3, 15) if j in head), None)
    body = head[top] - head[0] if top is not None else np.array([0.0, 0.0, 1.0])
    up_target = np.eye(3)[np.argmax(np.abs(body))] * np.sign(body[np.argmax(np.abs(body))])
    facing = _frame(up_target, head[1] - head[2]) @ _frame(up_source, src_rest[1] - src_rest[2]).T

    offsets = {}
    for j, bone in bones.items():
        c = _tail_child(j)
        while c is not None and c not in bones:
            c = _tail_child(c)
        if c is not None and np.linalg.norm(head[c] - head[j]) > 1e-6:
            source_dir, target_dir = src_rest[c] - src_rest[j], head[c] - head[j]
        else:
            source_dir = src_axes[:, j]
            target_dir = rig.tails[index[bone]] - rig.heads[index[bone]]
        rest_world = tgt_rot @ np.array(target.data.bones[bone].matrix_local)[:3, :3]
        offsets[j] = rot.quat_to_matrix(rot.quat_between(target_dir, facing @ source_dir)) @ rest_world

    def leg(points) -> float:  # thigh + shin, mean of both sides
        return sum(np.linalg.norm(points[k] - points[h]) + np.linalg.norm(points[a] - points[k])
                   for h, k, a in ((1, 4, 7), (2, 5, 8))) / 2

    ankles = (head[7] + head[8]) / 2
    if (head[0] - ankles) @ up_target <= 0:
        raise BammInputError(f"Armature '{target.name}': the mapped hips are not above the ankles in the rest pose")
    return Plan(bones=bones, offsets=offsets, facing=facing, up_source=up_source, up_target=up_target,
                ratio=leg(head) / leg(src_rest), target_ankle_height=float(ankles @ up_target), target_pelvis=head[0],
                source_pelvis=src_rest[0])


def target_pelvis(p: Plan, joints: np.ndarray) -> np.ndarray:
    """World positions ``(F, 3)`` of the target's hips from the source's world joints ``(F, 22, 3)``: the
    source pelvis path scaled by ``ratio`` about the source's ground, placed on the target's ankle level
    (refined by ``solve`` so that the feet land where the source's do)."""
    ground = np.min(joints[:, [7, 8]] @ p.up_source)
    height = p.target_ankle_height + p.ratio * (joints[:, 0] @ p.up_source - ground)
    moved = joints[:, 0] - p.source_pelvis
    shift = moved - (moved @ p.up_source)[:, None] * p.up_source
    rest_shift = p.target_pelvis - (p.target_pelvis @ p.up_target) * p.up_target
    return rest_shift + p.ratio * shift @ p.facing.T + height[:, None] * p.up_target


def wanted_rotations(p: Plan, target, deltas: np.ndarray) -> dict[str, np.ndarray]:
    """Armature-space rotations ``{bone: (F, 3, 3)}`` of the target's mapped bones from the source's world
    rotation deltas (``source_world``)."""
    tgt_rot_inv = world_rotation(np.array(target.matrix_world)).T
    return {bone: tgt_rot_inv @ p.facing @ deltas[:, j] @ p.facing.T @ p.offsets[j] for j, bone in p.bones.items()}


def solve(source, target, mapping: dict[str, str], pose: ik.Pose, *, keep_root: bool = False,
          partial: bool = False, base: dict | None = None, turn: dict | None = None):
    """Pose-bone values of the target: ``{bone: (F, 3, 3) rotation matrices}`` and the hips' ``(F, 3)``
    location (None with ``keep_root`` or a connected hips bone). ``base``: ``{bone: (F, 4, 4)}`` pose-bone
    matrices the bones keep (see the module docstring); None: rest. ``turn``: ``{bone: (F, 3, 3)}`` rotations
    in a mapped bone's own frame applied to its ``wanted_rotations`` (an edit's seams, ``rig_edit``).

    The hips follow ``target_pelvis`` shifted along the up axis by one constant: the median gap between the
    target's lower ankle and where the source's lower ankle is (scaled about the ground), so the feet meet
    the floor whatever the target's leg proportions."""
    p = plan(source, target, mapping, partial=partial)
    deltas, joints = source_world(source, pose)
    tgt_world = np.array(target.matrix_world)
    wanted = wanted_rotations(p, target, deltas)
    for bone, matrices in (turn or {}).items():
        wanted[bone] = wanted[bone] @ matrices
    hips_bone = p.bones[0]
    if keep_root or target.data.bones[hips_bone].use_connect:
        return _pose_bones(target, wanted, None, hips_bone, base)[0], None
    hips = target_pelvis(p, joints)
    to_armature = lambda x: x @ np.linalg.inv(tgt_world)[:3, :3].T + np.linalg.inv(tgt_world)[:3, 3]  # noqa: E731
    _rotations, _location, posed = _pose_bones(target, wanted, to_armature(hips), hips_bone, base)
    ankles = np.stack([posed[p.bones[a]][:, :3, 3] for a in (7, 8)], axis=1) @ tgt_world[:3, :3].T + tgt_world[:3, 3]
    ground = np.min(joints[:, [7, 8]] @ p.up_source)
    wanted_low = p.target_ankle_height + p.ratio * (np.min(joints[:, [7, 8]] @ p.up_source, axis=1) - ground)
    hips = hips + np.median(wanted_low - np.min(ankles @ p.up_target, axis=1)) * p.up_target
    rotations, location, _posed = _pose_bones(target, wanted, to_armature(hips), hips_bone, base)
    return rotations, location


def _pose_bones(target, wanted: dict, hips: np.ndarray | None, hips_bone: str, base: dict | None = None):
    """Forward kinematics of the target's bones (armature space): ``wanted`` armature-space rotations
    ``{bone: (F, 3, 3)}`` for mapped bones, ``base`` (identity when None or missing) for the others and for the
    mapped bones' location and scale, the hips' head at ``hips`` ``(F, 3)`` (armature space) when given.
    Returns the basis rotations, the hips' basis location and the posed matrices ``{bone: (F, 4, 4)}`` of the
    mapped bones and their ancestors."""
    needed = set(wanted)
    for bone in wanted:
        parent = target.data.bones[bone].parent
        while parent is not None:
            needed.add(parent.name)
            parent = parent.parent
    n = len(next(iter(wanted.values())))
    posed: dict[str, np.ndarray] = {}
    rotations, location = {}, None
    for bone in sorted(target.data.bones, key=lambda b: len(b.parent_recursive)):  # parents first
        if bone.name not in needed:
            continue
        rest = np.array(bone.matrix_local)
        attached = np.broadcast_to(rest, (n, 4, 4)).copy() if bone.parent is None else \
            posed[bone.parent.name] @ (np.linalg.inv(np.array(bone.parent.matrix_local)) @ rest)
        kept = base.get(bone.name) if base else None
        basis = np.broadcast_to(np.eye(4) if kept is None else kept, (n, 4, 4)).copy()
        if bone.name in wanted:
            frame = attached[:, :3, :3] / np.linalg.norm(attached[:, :3, :3], axis=1, keepdims=True)
            turn = np.transpose(frame, (0, 2, 1)) @ wanted[bone.name]
            basis[:, :3, :3] = turn * np.linalg.norm(basis[:, :3, :3], axis=1)[:, None, :]  # the kept scale
            if bone.name == hips_bone and hips is not None:
                location = np.einsum("fij,fj->fi", np.linalg.inv(attached), np.c_[hips, np.ones(n)])[:, :3]
                basis[:, :3, 3] = location
            rotations[bone.name] = turn
        posed[bone.name] = attached @ basis
    return rotations, location, posed


# -------------------------------------------------------------------------------------------- writing
def rotation_channels(pose_bone, matrices: np.ndarray) -> tuple[str, np.ndarray]:
    quats = rot.quat_from_matrix(matrices)
    mode = pose_bone.rotation_mode
    if mode == "QUATERNION":
        return "rotation_quaternion", np.roll(ik.continuous(quats), 1, axis=-1)
    if mode == "AXIS_ANGLE":
        vec = rot.quat_to_rotvec(quats)
        angle = np.linalg.norm(vec, axis=-1)
        axis = np.where(angle[:, None] > 1e-12, vec / np.maximum(angle, 1e-12)[:, None], [0.0, 1.0, 0.0])
        return "rotation_axis_angle", np.c_[angle, axis]
    order = mode.lower()  # Blender's "ZXY": Z first about fixed axes = the extrinsic sequence "zxy"
    angles = np.unwrap(rot.quat_to_euler(quats, order), axis=0)
    return "rotation_euler", angles[:, [order.index(axis) for axis in "xyz"]]  # stored as (x, y, z)


def write_action(target, frames: np.ndarray, rotations: dict, location: np.ndarray | None = None, *,
                 root_bone: str = "", name: str):
    """A NEW action on ``target`` (not assigned) with one key per frame on each solved channel:
    ``rotations`` {bone: (F, 3, 3)} in each bone's rotation mode, ``location`` (F, 3) on ``root_bone``."""
    action = bpy.data.actions.new(name)
    container = bake.channels(action, target)
    frames = np.asarray(frames, dtype=np.float64)
    for bone_name, matrices in rotations.items():
        pose_bone = target.pose.bones[bone_name]
        prop, values = rotation_channels(pose_bone, matrices)
        channels = [(prop, values)] + ([("location", location)] if location is not None and
                                       bone_name == root_bone else [])
        group = container.groups.get(bone_name) or container.groups.new(bone_name)
        for attribute, data in channels:
            path = pose_bone.path_from_id(attribute)
            for index in range(data.shape[1]):
                fcurve = container.fcurves.new(path, index=index)
                fcurve.group = group
                bake.write_keys(fcurve, frames, data[:, index])
    return action


def retarget(context, source, target, mapping: dict[str, str] | None = None, *,
             options: RetargetOptions = RetargetOptions(), contacts=None, hide_source: bool = True):
    """Retarget the source's active action onto ``target`` as a new action, assigned to the target.

    ``mapping``: SMPL joint -> target bone (None: ``bone_map.auto_map``); a map without the hips, legs or
    (unless ``options.partial``) arms is refused with a BammInputError naming the joints. The target's previous action is
    left as it was (kept from being purged with a fake user when nothing else uses it). The source armature
    is hidden afterwards unless ``hide_source`` is False.
    """
    if target is None or target.type != "ARMATURE":
        raise BammInputError("No target armature: pick the character's armature to retarget onto")
    if target == source:
        raise BammInputError(f"Source and target are the same armature '{target.name}'")
    if mapping is None:
        mapping = bone_map.auto_map(bone_map.Rig.from_armature(target))
    source_action(source)
    plan(source, target, mapping, partial=options.partial)  # checks the map before any work
    frames, pose = source_motion(source, context.scene, options, contacts=contacts)
    rotations, location = solve(source, target, mapping, pose, keep_root=options.keep_root, partial=options.partial)
    name = options.action_name or f"{target.name}|{source_action(source).name}"
    action = write_action(target, frames, rotations, location, root_bone=mapping["pelvis"], name=name)
    previous = target.animation_data.action if target.animation_data else None
    if previous is not None and previous.users <= 1 and not previous.use_fake_user:
        previous.use_fake_user = True
    bake.assign_action(target, action)
    if hide_source:
        source.hide_render = True
        if source.name in context.view_layer.objects:
            source.hide_set(True)
    return action
