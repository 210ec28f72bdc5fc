"""Model joints written onto a character: an edit spliced into the character's own action (Regenerate Range,
Extend, Fill Gap) or a generated motion as a new action on it (Generate, Generate Sequence with a character as
the panel's Armature).

The joints are solved on the model skeleton (``ik``) at the scene's frames and retargeted onto the character
with its bone map (``retarget.solve`` from ``armature.MODEL_SKELETON``). In an edit every unmapped bone keeps its
keyed pose and every mapped one its keyed location and scale (``rig_source.basis``), so the mapped bones land
where the model's joints are, with the animator's other channels as they were.

Seams. Joint positions say nothing of a bone's twist, and the character's own animation is not exactly what the
retarget of its joints gives back. At each seam (the kept frame next to the span) the difference between the
kept pose and the retarget there is measured per mapped bone, as a rotation in the bone's own frame (it turns
the bone about itself; parents and children keep their directions), and for the hips as an offset; it is carried
through the span: interpolated between the two seams, or held from the one seam of an extension. Then the
span's first and last ``blend_s`` seconds ease from the kept motion into the new one (``bake.seam_weights``); where
the span lies past the kept keys (an extension) the kept motion is continued at its last speed. Keys are written
by ``bake.splice_channels``: every key outside the span, and every unmapped channel, keeps all its data.
"""

from __future__ import annotations

import numpy as np

from . import armature, bake, retarget, rig_source
from .core import MODEL_FPS, ik, model_module

rot = model_module(".motion.rotations")


def _model_pose(joints: np.ndarray, times: np.ndarray) -> ik.Pose:
    """The joints solved on the model skeleton, sampled at fractional 20-fps ``times``."""
    return ik.sample(ik.solve(joints, rest=armature.MODEL_SKELETON.rest), times)


def _sampled(joints: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Joints ``(T, 22, 3)`` linearly sampled at fractional frame ``times`` (clamped to the clip)."""
    flat = joints.reshape(len(joints), -1).astype(np.float64)
    grid = np.arange(len(joints), dtype=np.float64)
    return np.stack([np.interp(times, grid, flat[:, k]) for k in range(flat.shape[1])], -1).reshape(-1, 22, 3)


def _quats(matrices: np.ndarray) -> np.ndarray:
    """Rotation quaternions (x, y, z, w) of matrices ``(..., 3+, 3+)`` whose columns may be scaled."""
    frames = matrices[..., :3, :3]
    return rot.quat_from_matrix(frames / np.linalg.norm(frames, axis=-2, keepdims=True))


def _carry(values: list[np.ndarray], at: list[float], times: np.ndarray, quats: bool) -> np.ndarray:
    """``values`` measured at the seams ``at`` (one or two) -> ``(len(times), ...)``: held or interpolated."""
    if len(values) == 1:
        return np.broadcast_to(values[0], (len(times),) + values[0].shape).copy()
    if quats:
        return rot.quat_slerp(np.array(at, dtype=np.float64), np.stack(values), np.clip(times, at[0], at[1]))
    w = np.clip((times - at[0]) / (at[1] - at[0]), 0.0, 1.0)
    return values[0] + w[:, None] * (values[1] - values[0])


def _continued(old: np.ndarray, frames: np.ndarray, key_first: int, key_last: int, quats: bool) -> np.ndarray:
    """The kept motion ``old`` on ``frames`` with the frames past its keys continued at the speed of its two last
    (first) keyed frames instead of held. ``frames`` holds both of them on each side it continues."""
    out = old.copy()
    index = {float(f): i for i, f in enumerate(frames)}
    for side, edge, sign in ((frames > key_last, key_last, 1), (frames < key_first, key_first, -1)):
        if not side.any():
            continue
        a, b = old[index[float(edge - sign)]], old[index[float(edge)]]
        steps = np.abs(frames[side] - edge)
        if quats:
            speed = rot.quat_to_rotvec(rot.quat_multiply(rot.quat_inverse(a), b))
            out[side] = rot.quat_multiply(b, rot.quat_from_rotvec(steps[:, None] * speed))
        else:
            out[side] = b + steps[:, None] * (b - a)
    return out


def splice(ch: rig_source.Character, source, scene, span: tuple[int, int], origin: float, joints: np.ndarray, *,
           name: str, blend_s: float):
    """A copy of the character's ``source`` action with the job's ``joints`` (20-fps model frames from scene
    frame ``origin``) on the scene frames ``span`` (inclusive), joined to the kept keys at the seams."""
    obj, first, last = ch.obj, span[0], span[1]
    key_first, key_last = bake.key_range(obj, source)
    seams = ([first - 1] if first > key_first else []) + ([last + 1] if last < key_last else [])
    inside = np.arange(first, last + 1, dtype=np.float64)
    n, m = len(inside), len(seams)
    solved = np.concatenate([inside, np.asarray(seams, dtype=np.float64)])  # retargeted: the span, then the seams
    edges = sorted({key_first, key_first + 1, key_last - 1, key_last} - set(solved.tolist()))
    frames = np.concatenate([solved, np.asarray(edges, dtype=np.float64)])
    kept = rig_source.basis(obj, source, ch.chain, frames)
    on = {bone: matrices[:n + m] for bone, matrices in kept.items()}
    # the span's joints, and at each seam the kept pose read as model joints (the model frames next to a seam may
    # lie partly in the regenerated range), solved in time order so that the twist carries over the seams
    seam_joints = rig_source.posed_joints(ch, rig_source.posed(obj, {b: v[n:] for b, v in on.items()}, ch.chain))
    sequence = np.concatenate([_sampled(joints, (inside - origin) * MODEL_FPS / bake.scene_fps(scene)), seam_joints])
    order = np.argsort(solved, kind="stable")
    pose = ik.solve(sequence[order], rest=armature.MODEL_SKELETON.rest)[np.argsort(order)]
    turn = _seam_turns(ch, pose[n:], {b: v[n:] for b, v in on.items()}, seams, solved) if seams else {}
    turns, location = retarget.solve(armature.MODEL_SKELETON, obj, ch.mapping, pose, base=on, turn=turn)
    weight = bake.seam_weights(n, first, last, key_first, key_last, max(1, int(round(blend_s * bake.scene_fps(scene)))))
    values, hold = {}, {}
    for bone, matrices in turns.items():
        old = _continued(ik.continuous(_quats(kept[bone])), frames, key_first, key_last, quats=True)[:n]
        new = rot.quat_from_matrix(matrices[:n])
        blended = ik.crossfade(ik.Pose(old[:, None], np.zeros((n, 3)), np.zeros((n, 1, 3))),
                               ik.Pose(new[:, None], np.zeros((n, 3)), np.zeros((n, 1, 3))), weight).rotations[:, 0]
        pose_bone = obj.pose.bones[bone]
        prop, data = retarget.rotation_channels(pose_bone, rot.quat_to_matrix(blended))
        seam_values = rig_source.channel_values(bake.channels(source, obj), obj, bone, prop, solved[n:])
        _add(values, hold, pose_bone, prop, _match(pose_bone.rotation_mode, data, seam_values, first > key_first))
    if location is not None:
        old = kept[ch.mapping["pelvis"]][:, :3, 3]
        new = location.copy()
        if seams:
            new[:n] += _carry([old[n + k] - new[n + k] for k in range(m)], seams, inside, quats=False)
        old = _continued(old, frames, key_first, key_last, quats=False)[:n]
        _add(values, hold, obj.pose.bones[ch.mapping["pelvis"]], "location", old + weight[:, None] * (new[:n] - old))
    return bake.splice_channels(obj, source, first, values, name=name, hold=hold)


def _seam_turns(ch: rig_source.Character, pose: ik.Pose, held: dict, seams: list[int], frames: np.ndarray) -> dict:
    """Per mapped bone, ``(len(frames), 3, 3)`` rotations in the bone's own frame taking the retarget of ``pose``
    (one frame per seam) to the ``held`` pose-bone matrices there, held or interpolated over ``frames``."""
    wanted = retarget.wanted_rotations(ch.plan, ch.obj, retarget.source_world(armature.MODEL_SKELETON, pose)[0])
    posed = rig_source.posed(ch.obj, held, ch.chain)
    out = {}
    for bone, matrices in wanted.items():
        fixes = [rot.quat_multiply(rot.quat_inverse(_quats(matrices[k])), _quats(posed[bone][k]))
                 for k in range(len(seams))]
        fixes = [f if f @ fixes[0] >= 0 else -f for f in fixes]
        out[bone] = rot.quat_to_matrix(_carry(fixes, seams, frames, quats=True))
    return out


def _match(mode: str, data: np.ndarray, seam_values: np.ndarray, left: bool) -> np.ndarray:
    """Rotation channel values made continuous with the kept keys' values at the first seam (the left one when
    ``left``, else the right one): the same quaternion sign, Euler angles within pi of the kept ones."""
    if not len(seam_values) or mode == "AXIS_ANGLE":
        return data
    edge, kept = (data[0] if left else data[-1]), seam_values[0]
    if mode == "QUATERNION":
        return -data if edge @ kept < 0 else data
    return data + 2 * np.pi * np.round((kept - edge) / (2 * np.pi))


def _add(values: dict, hold: dict, pose_bone, prop: str, data: np.ndarray) -> None:
    path = pose_bone.path_from_id(prop)
    current = getattr(pose_bone, prop)
    for index in range(data.shape[1]):
        values[path, index] = data[:, index]
        hold[path, index] = float(current[index])


def new_action(ch: rig_source.Character, joints: np.ndarray, scene, first: int, *, name: str):
    """A NEW action (not assigned) on the character with the 20-fps ``joints`` from scene frame ``first``: the
    mapped bones keyed as Retarget keys them, every unmapped bone at its rest pose."""
    step = bake.scene_fps(scene) / MODEL_FPS
    frames = np.arange(int(np.floor((len(joints) - 1) * step + 1e-6)) + 1, dtype=np.float64)
    turns, location = retarget.solve(armature.MODEL_SKELETON, ch.obj, ch.mapping, _model_pose(joints, frames / step))
    return retarget.write_action(ch.obj, first + frames, turns, location, root_bone=ch.mapping["pelvis"], name=name)
