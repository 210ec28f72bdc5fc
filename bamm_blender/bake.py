"""Joints -> keyframes on an SMPL-22 armature, and keyframes -> joints (forward kinematics).

Every bake writes a NEW action (the user's actions are never modified): one key per scene frame, written in
one go with ``keyframe_points.add`` + ``foreach_set``. Channels: ``rotation_quaternion`` of every bone,
``location`` of the pelvis (root translation) and of the hips, spine1, neck and collars (the ``offsets`` of
``model_core.motion.ik``: HumanML3D places those joints around the pelvis and spine3 at clip-specific angles).

Time: the model runs at 20 fps. When the scene runs at another rate the solved pose is resampled (slerp per
bone, linear root) so there is one key per scene frame; model frame ``i`` lands on scene frame
``first + i * scene_fps / 20``.
"""

from __future__ import annotations

import hashlib

import bpy
import numpy as np

from . import axes
from .armature import BONE_NAMES, PARENTS, check_armature, rest_joints_of, rest_matrices_of
from .core import MODEL_FPS, ik, model_module
from .errors import BammInputError

rot = model_module(".motion.rotations")

LOCATION_BONES = (0,) + tuple(c for c, p in enumerate(PARENTS) if p >= 0 and PARENTS.count(p) > 1)
ROTATION_PATH = 'pose.bones["{}"].rotation_quaternion'
LOCATION_PATH = 'pose.bones["{}"].location'
KEY_ATTRIBUTES = {  # name -> (values per key, dtype) for a full copy of a keyframe
    "co": (2, np.float64), "handle_left": (2, np.float64), "handle_right": (2, np.float64),
    "interpolation": (1, np.int32), "handle_left_type": (1, np.int32), "handle_right_type": (1, np.int32),
    "easing": (1, np.int32), "type": (1, np.int32), "back": (1, np.float64), "amplitude": (1, np.float64),
    "period": (1, np.float64), "select_control_point": (1, bool), "select_left_handle": (1, bool),
    "select_right_handle": (1, bool),
}


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base


# --- Blender 4.2 .. 5.0 compatibility: the one place that knows where F-curves live ----------------------
def channels(action: bpy.types.Action, obj: bpy.types.Object):
    """The F-curve container of ``action`` for ``obj``: the action itself on Blender 4.2/4.3 (``action.fcurves``,
    ``action.groups``), else (4.4+: slotted actions) the channelbag of its first slot, created if needed.
    Both have ``.fcurves`` (``new``, ``find``) and ``.groups``."""
    if not hasattr(action, "layers"):
        return action
    slot = action.slots[0] if len(action.slots) else action.slots.new(id_type="OBJECT", name=obj.name)
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


def assign_action(obj: bpy.types.Object, action: bpy.types.Action | None) -> None:
    """Make ``action`` the object's active action (and its slot, on 4.4+)."""
    animation = obj.animation_data or obj.animation_data_create()
    animation.action = action
    if action is not None and hasattr(animation, "action_slot") and len(action.slots):
        animation.action_slot = action.slots[0]


# --- model pose <-> pose-bone values ----------------------------------------------------------------------
def to_bone_space(obj: bpy.types.Object, pose: ik.Pose) -> tuple[np.ndarray, np.ndarray]:
    """``ik.Pose`` (model space, rest = the armature's rest) -> pose-bone ``rotation_quaternion`` (w, x, y, z)
    ``(F, 22, 4)`` and ``location`` ``(F, 22, 3)`` values."""
    bases = axes.bone_bases(rest_matrices_of(obj))
    rest = rest_joints_of(obj)
    quats = np.empty(pose.rotations.shape)
    locations = np.zeros(pose.offsets.shape)
    for j in range(len(BONE_NAMES)):
        local = rot.quat_multiply(rot.quat_multiply(rot.quat_inverse(bases[j]), pose.rotations[:, j]), bases[j])
        quats[:, j] = ik.continuous(np.roll(local, 1, axis=-1))
    locations[:, 0] = rot.quat_apply(rot.quat_inverse(bases[0]), pose.root - rest[0])
    for j in LOCATION_BONES[1:]:
        locations[:, j] = rot.quat_apply(rot.quat_inverse(bases[j]), pose.offsets[:, j])
    return quats, locations


def from_bone_space(obj: bpy.types.Object, quats: np.ndarray, locations: np.ndarray) -> ik.Pose:
    """Inverse of ``to_bone_space`` (locations of bones outside ``LOCATION_BONES`` are ignored: connected)."""
    bases = axes.bone_bases(rest_matrices_of(obj))
    rest = rest_joints_of(obj)
    rotations = np.empty(quats.shape)
    offsets = np.zeros(locations.shape)
    for j in range(len(BONE_NAMES)):
        local = np.roll(quats[:, j], -1, axis=-1)
        rotations[:, j] = rot.quat_multiply(rot.quat_multiply(bases[j], local), rot.quat_inverse(bases[j]))
    for j in LOCATION_BONES[1:]:
        offsets[:, j] = rot.quat_apply(bases[j], locations[:, j])
    return ik.Pose(rotations, rot.quat_apply(bases[0], locations[:, 0]) + rest[0], offsets)


def pose_from_joints(obj: bpy.types.Object, joints: np.ndarray, fps: float) -> ik.Pose:
    """Solve 20-fps model joints ``(T, 22, 3)`` on the armature's rest pose, resampled to ``fps``."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (len(BONE_NAMES), 3) or len(joints) < 2:
        raise BammInputError(f"joints must have shape (T >= 2, 22, 3), got {joints.shape}")
    pose = ik.solve(joints, rest=rest_joints_of(obj))
    return ik.resample(pose, fps_in=MODEL_FPS, fps_out=fps)


def joints_from_pose(obj: bpy.types.Object, pose: ik.Pose) -> np.ndarray:
    return ik.forward(pose, rest=rest_joints_of(obj))


# --- writing and reading keys -----------------------------------------------------------------------------
def _channel_list():
    for j, name in enumerate(BONE_NAMES):
        yield j, name, ROTATION_PATH.format(name), 4
        if j in LOCATION_BONES:
            yield j, name, LOCATION_PATH.format(name), 3


def write_keys(fcurve, frames: np.ndarray, values: np.ndarray) -> None:
    points = fcurve.keyframe_points
    points.add(len(frames))
    co = np.empty(2 * len(frames))
    co[0::2], co[1::2] = frames, values
    points.foreach_set("co", co)
    fcurve.update()


def new_action(
    obj: bpy.types.Object, name: str, first_frame: int, quats: np.ndarray, locations: np.ndarray
) -> bpy.types.Action:
    """A new action with one key per frame from ``first_frame`` (values from ``to_bone_space``)."""
    action = bpy.data.actions.new(name)
    container = channels(action, obj)
    frames = first_frame + np.arange(len(quats), dtype=np.float64)
    for j, bone_name, path, size in _channel_list():
        values = quats[:, j] if size == 4 else locations[:, j]
        group = container.groups.get(bone_name) or container.groups.new(bone_name)
        for index in range(size):
            fcurve = container.fcurves.new(path, index=index)
            fcurve.group = group
            write_keys(fcurve, frames, values[:, index])
    return action


def bake_joints(
    obj: bpy.types.Object, joints: np.ndarray, *, scene: bpy.types.Scene, first_frame: int, name: str
) -> bpy.types.Action:
    """Bake 20-fps model joints onto an SMPL-22 armature as a NEW action (not assigned)."""
    check_armature(obj)
    pose = pose_from_joints(obj, joints, scene_fps(scene))
    return new_action(obj, name, first_frame, *to_bone_space(obj, pose))


def read_bone_space(
    obj: bpy.types.Object, action: bpy.types.Action, frames: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate the action's channels at ``frames`` (scene frames, may be fractional). A missing channel holds
    the pose bone's current value."""
    container = channels(action, obj)
    quats = np.empty((len(frames), len(BONE_NAMES), 4))
    locations = np.zeros((len(frames), len(BONE_NAMES), 3))
    for j, bone_name, path, size in _channel_list():
        out = quats if size == 4 else locations
        current = obj.pose.bones[bone_name].rotation_quaternion if size == 4 else obj.pose.bones[bone_name].location
        for index in range(size):
            fcurve = container.fcurves.find(path, index=index)
            out[:, j, index] = [fcurve.evaluate(f) for f in frames] if fcurve else current[index]
    return quats / np.linalg.norm(quats, axis=-1, keepdims=True), locations


def key_range(obj: bpy.types.Object, action: bpy.types.Action) -> tuple[int, int]:
    """First and last keyed frame (rounded) over the armature channels of the action."""
    container = channels(action, obj)
    ranges = [fc.range() for fc in container.fcurves if len(fc.keyframe_points)]
    if not ranges:
        raise BammInputError(f"Action '{action.name}' has no keys")
    return int(round(min(r[0] for r in ranges))), int(round(max(r[1] for r in ranges)))


def read_model_joints(obj: bpy.types.Object, action: bpy.types.Action, scene: bpy.types.Scene) -> np.ndarray:
    """The action as 20-fps model joints ``(T, 22, 3)`` from its first key, by forward kinematics."""
    first, last = key_range(obj, action)
    step = scene_fps(scene) / MODEL_FPS
    frames = first + np.arange(int(np.floor((last - first) / step + 1e-6)) + 1) * step
    return joints_from_pose(obj, from_bone_space(obj, *read_bone_space(obj, action, frames)))


def _read_keys(points) -> dict[str, np.ndarray]:
    out = {}
    for attr, (size, dtype) in KEY_ATTRIBUTES.items():
        values = np.empty(len(points) * size, dtype=dtype)
        points.foreach_get(attr, values)
        out[attr] = values.reshape(len(points), size) if size > 1 else values
    return out


def _write_all(points, keys: dict[str, np.ndarray]) -> None:
    for attr, values in keys.items():
        points.foreach_set(attr, values.ravel())


def splice(
    obj: bpy.types.Object,
    source: bpy.types.Action,
    first_frame: int,
    quats: np.ndarray,
    locations: np.ndarray,
    *,
    name: str,
) -> bpy.types.Action:
    """``splice_channels`` of an SMPL-22 armature's channels (values from ``to_bone_space``)."""
    check_armature(obj)
    values = {}
    for j, _bone_name, path, size in _channel_list():
        for index in range(size):
            values[path, index] = quats[:, j, index] if size == 4 else locations[:, j, index]
    return splice_channels(obj, source, first_frame, values, name=name)


def splice_channels(obj: bpy.types.Object, source: bpy.types.Action, first_frame: int,
                    values: dict[tuple[str, int], np.ndarray], *, name: str,
                    hold: dict[tuple[str, int], float] | None = None) -> bpy.types.Action:
    """A copy of ``source`` whose keys of each channel ``(data path, index)`` of ``values`` on frames
    ``first_frame .. first_frame + n - 1`` are replaced by one key per frame with the given ``(n,)`` values. Every
    key outside that span, and every other F-curve, keeps all its data bit for bit (co, handles, handle types,
    interpolation, easing, key type, selection). A channel without an F-curve is refused, unless ``hold`` gives
    the value it has without keys: then it gets an F-curve keyed on the span and, with that value, on the
    frames just before and after it, so nothing outside the span changes."""
    action = source.copy()
    action.name = name
    container = channels(action, obj)
    n = len(next(iter(values.values())))
    frames = first_frame + np.arange(n, dtype=np.float64)
    last_frame = first_frame + n - 1
    for (path, index), data in values.items():
        fcurve = container.fcurves.find(path, index=index)
        if fcurve is None and hold is not None and (path, index) in hold:
            bone_name = path.split('"')[1] if path.startswith("pose.bones[") else ""
            fcurve = container.fcurves.new(path, index=index)
            if bone_name:
                fcurve.group = container.groups.get(bone_name) or container.groups.new(bone_name)
            write_keys(fcurve, np.array([first_frame - 1.0, last_frame + 1.0]), np.full(2, hold[path, index]))
        if fcurve is None:
            bpy.data.actions.remove(action)
            raise BammInputError(f"Action '{source.name}' has no F-curve {path}[{index}]: bake it with BAMM first")
        _splice_fcurve(fcurve, first_frame, last_frame, frames, np.asarray(data, dtype=np.float64))
    return action


def _splice_fcurve(fcurve, first: float, last: float, frames: np.ndarray, values: np.ndarray) -> None:
    points = fcurve.keyframe_points
    old = _read_keys(points)
    x = old["co"][:, 0]
    before, after = x < first - 1e-6, x > last + 1e-6
    n_before, n_after, n_new = int(before.sum()), int(after.sum()), len(frames)
    points.clear()
    points.add(n_before + n_new + n_after)
    keys = _read_keys(points)  # defaults of fresh keys, used for the new ones
    inside = slice(n_before, n_before + n_new)
    for attr in keys:
        keys[attr][:n_before] = old[attr][before]
        keys[attr][n_before + n_new :] = old[attr][after]
    keys["co"][inside] = np.stack([frames, values], axis=-1)
    keys["handle_left"][inside] = keys["co"][inside]
    keys["handle_right"][inside] = keys["co"][inside]
    _write_all(points, keys)
    fcurve.update()  # handles of the new keys; then put back the handles of the kept ones
    handles = _read_keys(points)
    for side in ("handle_left", "handle_right"):
        handles[side][:n_before] = old[side][before]
        handles[side][n_before + n_new :] = old[side][after]
        points.foreach_set(side, handles[side].ravel())


def seam_weights(n: int, first: int, last: int, key_first: int, key_last: int, blend: int) -> np.ndarray:
    """Weights ``(n,)`` of the new motion on the span ``first .. last`` (n frames): easing in from the kept keys
    before it and out to the kept keys after it over ``blend`` frames (smoothstep: the joints' speed carries
    over the seam), 1 where no key is kept on that side."""
    k = np.arange(n, dtype=np.float64)
    weight = np.ones(n)
    if first > key_first:
        weight = np.minimum(weight, (k + 1) / (blend + 1))
    if last < key_last:
        weight = np.minimum(weight, (n - k) / (blend + 1))
    return weight * weight * (3.0 - 2.0 * weight)


def fingerprint(obj: bpy.types.Object, action: bpy.types.Action) -> str:
    """A hash of every armature key (frame, value, handles): changes whenever the animator edits a key."""
    container = channels(action, obj)
    digest = hashlib.sha1()
    for _j, _bone_name, path, size in _channel_list():
        for index in range(size):
            fcurve = container.fcurves.find(path, index=index)
            digest.update(f"{path}[{index}]:{0 if fcurve is None else len(fcurve.keyframe_points)};".encode())
            if fcurve is not None:
                keys = _read_keys(fcurve.keyframe_points)
                for attr in ("co", "handle_left", "handle_right"):
                    digest.update(keys[attr].tobytes())
    return digest.hexdigest()
