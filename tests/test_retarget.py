"""Retargeting a HumanML3D walk from the BAMM Skeleton onto scripted character rigs (headless Blender)."""

from __future__ import annotations

import numpy as np
import pytest
from support import rigs
from support.rig_edits import world_heads

bpy = pytest.importorskip("bpy")
from mathutils import Matrix  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

import bamm_blender  # noqa: E402
from bamm_blender import armature, bake, bone_map, panel, retarget, retarget_scene  # noqa: E402
from bamm_blender.errors import BammInputError  # noqa: E402
from model_core.motion import foot_contact  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.data]
CLIP = "007005"  # 10 s: stands, then walks 3.3 m
FBX_LIKE = np.array(Matrix.Rotation(np.pi / 2, 4, "X") @ Matrix.Diagonal((0.01, 0.01, 0.01, 1.0)))  # Y-up, cm
TURNED = np.array(Matrix.Translation((2.0, -1.0, 0.3)) @ Matrix.Rotation(0.7, 4, "Z")
                  @ Matrix.Diagonal((1.7, 1.7, 1.7, 1.0)))  # moved, turned 40 degrees, scaled
CONFIGS = {  # style, A-pose, bone roll, object matrix, character turned about Z
    "mixamo_fbx_transform": ("mixamo", False, 0.0, FBX_LIKE, 0.0),
    "rigify_a_pose": ("rigify", True, 0.0, None, 0.0),
    "ue5_roll_scaled_rotated": ("ue5_mannequin", False, 0.6, TURNED, 0.0),
    "bandai_a_pose_roll_turned": ("bandai_namco", True, 1.1, TURNED, 0.9),
}
ONE_CHILD = [j for j, kids in enumerate(armature.CHILDREN) if len(kids) == 1]  # bones with one SMPL child


def new_scene(fps: int = 20):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = fps, 1.0
    return bpy.context


def bamm_skeleton(context, joints):
    source = armature.build_armature(context)
    action = bake.bake_joints(source, joints, scene=context.scene, first_frame=1, name="walk")
    bake.assign_action(source, action)
    return source




def angles(a, b) -> np.ndarray:
    cos = np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def direction_errors(source, target, mapping, frames, turn=0.0) -> dict[str, float]:
    """Worst angle (degrees) over ``frames`` between each mapped one-child bone of the target (head to the
    head of the bone mapped to the SMPL child) and the same SMPL bone of the source, turned by ``turn``."""
    pairs = [(j, armature.CHILDREN[j][0]) for j in ONE_CHILD
             if armature.BONE_NAMES[j] in mapping and armature.BONE_NAMES[armature.CHILDREN[j][0]] in mapping]
    src = world_heads(source, armature.BONE_NAMES, frames) @ rigs.turn_z(turn).T
    tgt = world_heads(target, [mapping[n] for n in armature.BONE_NAMES if n in mapping], frames)
    slot = {n: k for k, n in enumerate(n for n in armature.BONE_NAMES if n in mapping)}
    names = armature.BONE_NAMES
    return {names[j]: float(angles(tgt[:, slot[names[c]]] - tgt[:, slot[names[j]]], src[:, c] - src[:, j]).max())
            for j, c in pairs}


@pytest.fixture
def walk(hml_dir):
    return np.load(hml_dir / "new_joints" / f"{CLIP}.npy")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_bone_directions_follow_the_source_on_every_frame(walk, config):
    style, a_pose, roll, matrix, turn = CONFIGS[config]
    context = new_scene()
    source = bamm_skeleton(context, walk)
    target = rigs.build_rig(context, style, a_pose=a_pose, roll=roll, matrix_world=matrix, turn=turn)
    action = retarget.retarget(context, source, target)
    mapping = rigs.expected(style)
    assert target.animation_data.action == action and bake.key_range(target, action) == (1, len(walk))
    errors = direction_errors(source, target, mapping, range(1, len(walk) + 1), turn)
    assert len(errors) >= 12 and max(errors.values()) < 5.0, errors
    print(f"{config}: worst bone direction error {max(errors.values()):.3f} deg")

    # feet stay on the floor: the lower ankle comes down to the rest ankle height and never goes below it
    up = np.array([0.0, 0.0, 1.0])
    rest = np.array([rigs.points("l", a_pose)["ankle"][2]])
    ankles = world_heads(target, [mapping["l_ankle"], mapping["r_ankle"]], range(1, len(walk) + 1)) @ up
    low = ankles.min(axis=1)
    assert abs(low.min() - rest[0]) < 0.01 and np.percentile(low, 5) < rest[0] + 0.03

    # only mapped bones are keyed (rotation; location on the hips alone)
    bones = {fc.data_path.split('"')[1] for fc in bake.channels(action, target).fcurves}
    assert bones == set(mapping.values())
    located = {fc.data_path.split('"')[1] for fc in bake.channels(action, target).fcurves
               if fc.data_path.endswith("location")}
    assert located == {mapping["pelvis"]}
    assert source.hide_get()


def test_a_pose_and_t_pose_targets_give_the_same_world_motion(walk):
    """The arms of an A-pose rig end up where those of a T-pose rig do: rest offsets are compensated."""
    context = new_scene()
    source = bamm_skeleton(context, walk[:60])
    t_rig = rigs.build_rig(context, "mixamo", name="t")
    a_rig = rigs.build_rig(context, "mixamo", name="a", a_pose=True, roll=0.8)
    retarget.retarget(context, source, t_rig, hide_source=False)
    retarget.retarget(context, source, a_rig)
    names = [rigs.expected("mixamo")[j] for j in ("l_elbow", "l_wrist", "r_elbow", "r_wrist", "head")]
    np.testing.assert_allclose(world_heads(a_rig, names, range(1, 61, 6)), world_heads(t_rig, names, range(1, 61, 6)),
                               atol=1e-4)


@pytest.mark.parametrize("mode", ["XYZ", "ZXY", "AXIS_ANGLE"])
def test_euler_and_axis_angle_bones_are_keyed_in_their_own_mode(walk, mode):
    context = new_scene()
    source = bamm_skeleton(context, walk[:80])
    target = rigs.build_rig(context, "ue4_mannequin", roll=0.3)
    for pose_bone in target.pose.bones:
        pose_bone.rotation_mode = mode
    action = retarget.retarget(context, source, target)
    prop = "rotation_euler" if mode != "AXIS_ANGLE" else "rotation_axis_angle"
    assert {fc.data_path.rsplit(".", 1)[1] for fc in bake.channels(action, target).fcurves} == {prop, "location"}
    errors = direction_errors(source, target, rigs.expected("ue4_mannequin"), range(1, 81))
    assert max(errors.values()) < 5.0, errors


def test_existing_action_is_left_untouched(walk):
    context = new_scene()
    source = bamm_skeleton(context, walk[:40])
    target = rigs.build_rig(context, "mixamo")
    hand = target.pose.bones["mixamorig:LeftHand"]
    for frame, angle in ((1, 0.0), (10, 0.5), (30, -0.3)):
        hand.rotation_mode = "XYZ"
        hand.rotation_euler = (angle, 0.0, 0.0)
        hand.keyframe_insert("rotation_euler", frame=frame)
    user_action = target.animation_data.action
    before = [[tuple(k.co) + tuple(k.handle_left) + tuple(k.handle_right) for k in fc.keyframe_points]
              for fc in bake.channels(user_action, target).fcurves]
    actions_before = set(bpy.data.actions)
    new = retarget.retarget(context, source, target)
    assert set(bpy.data.actions) == actions_before | {new} and new != user_action
    after = [[tuple(k.co) + tuple(k.handle_left) + tuple(k.handle_right) for k in fc.keyframe_points]
             for fc in bake.channels(user_action, target).fcurves]
    assert after == before
    assert target.animation_data.action == new
    assert not any(o.animation_data and o.animation_data.action == user_action for o in bpy.data.objects)
    assert user_action.use_fake_user  # kept in the file although nothing uses it now


def test_unmappable_armature_is_reported(walk):
    context = new_scene()
    source = bamm_skeleton(context, walk[:20])
    data = bpy.data.armatures.new("stick")
    stick = bpy.data.objects.new("stick", data)
    context.collection.objects.link(stick)
    context.view_layer.objects.active = stick
    bpy.ops.object.mode_set(mode="EDIT")
    previous = None
    for k in range(3):
        bone = data.edit_bones.new(f"Bone.{k:03d}")
        bone.head, bone.tail, bone.parent = (0, 0, k), (0, 0, k + 1), previous
        previous = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    message = r"Cannot retarget onto armature 'stick' \(3 bones\): no bone found for pelvis"
    with pytest.raises(BammInputError, match=message):
        retarget.retarget(context, source, stick)
    assert stick.animation_data is None and not source.hide_get()


def test_options_in_place_keep_root_loop(walk):
    context = new_scene()
    source = bamm_skeleton(context, walk)
    target = rigs.build_rig(context, "mixamo")
    hips = rigs.expected("mixamo")["pelvis"]
    frames = range(1, len(walk) + 1)
    options = retarget.RetargetOptions
    retarget.retarget(context, source, target, options=options(in_place=True), hide_source=False)
    path = world_heads(target, [hips], frames)[:, 0]
    np.testing.assert_allclose(path[:, :2], np.broadcast_to(rigs.P["pelvis"][:2], (len(walk), 2)), atol=1e-5)
    assert np.ptp(path[:, 2]) > 0.02  # the hips still bob up and down

    action = retarget.retarget(context, source, target, options=options(keep_root=True), hide_source=False)
    assert not any(fc.data_path.endswith("location") for fc in bake.channels(action, target).fcurves)

    retarget.retarget(context, source, target, options=options(loop=True))
    names = [b.name for b in target.data.bones]
    first, last = world_heads(target, names, [1, len(walk)])
    hip = names.index(hips)
    assert np.abs(first[hip] - last[hip]).max() > 1.0  # it still walks away
    relative = lambda p: p - p[hip] * [1, 1, 0]  # noqa: E731
    left, right = names.index("mixamorig:LeftUpLeg"), names.index("mixamorig:RightUpLeg")
    heading = lambda p: np.arctan2(p[left, 1] - p[right, 1], p[left, 0] - p[right, 0])  # noqa: E731
    np.testing.assert_allclose(relative(last) @ rigs.turn_z(heading(first) - heading(last)).T, relative(first),
                               atol=2e-3)


def test_foot_lock_reduces_target_foot_skate(walk):
    context = new_scene()
    source = bamm_skeleton(context, walk)
    contacts = foot_contact.contacts_from_joints(walk)
    mapping = rigs.expected("ue5_mannequin")
    feet = [mapping[j] for j in ("l_ankle", "l_foot", "r_ankle", "r_foot")]
    skate = {}
    for lock in (False, True):
        target = rigs.build_rig(context, "ue5_mannequin", name=f"lock_{lock}")
        retarget.retarget(context, source, target, options=retarget.RetargetOptions(foot_lock=lock), hide_source=False)
        heads = world_heads(target, feet, range(1, len(walk) + 1))
        speed = np.linalg.norm(np.diff(heads[..., :2], axis=0), axis=-1) * 20 * 100  # cm/s
        skate[lock] = float(speed[contacts].mean())
    print(f"target foot skate: {skate[False]:.2f} -> {skate[True]:.2f} cm/s")
    assert skate[True] < 0.5 * skate[False]


def test_panel_functions_and_operators(walk, tmp_path):
    context = new_scene()
    bamm_blender.register()
    try:
        source = bamm_skeleton(context, walk[:40])
        target = rigs.build_rig(context, "rigify", a_pose=True)
        s = context.scene.bamm_retarget
        s.target = target
        assert bpy.ops.bamm.bone_map_auto() == {"FINISHED"}
        assert {i.joint: i.bone for i in s.bone_map if i.bone} == rigs.expected("rigify")
        s.bone_map[bone_map.JOINTS.index("head")].bone = ""  # edited in the list: head not retargeted
        preset = tmp_path / "rigify_no_head.json"
        assert bpy.ops.bamm.bone_map_save(filepath=str(preset)) == {"FINISHED"}
        assert bpy.ops.bamm.bone_map_load("EXEC_DEFAULT", builtin="mixamo") == {"FINISHED"}  # bones missing here
        assert not any(i.bone for i in s.bone_map)
        assert bpy.ops.bamm.bone_map_load(filepath=str(preset), builtin="") == {"FINISHED"}
        assert bpy.ops.bamm.retarget() == {"FINISHED"}
        keyed = {fc.data_path.split('"')[1] for fc in bake.channels(target.animation_data.action, target).fcurves}
        assert "DEF-spine.006" not in keyed and "DEF-spine.004" in keyed
        assert retarget_scene.source_of(context) == source

        class Recorder:  # checks that every property and operator the panel draws exists
            def __getattr__(self, name):
                return lambda *args, **kwargs: self._check(name, args, kwargs)

            def _check(self, name, args, kwargs):
                if name in ("prop", "prop_search"):
                    assert hasattr(args[0], args[1]), args[1]
                if name == "operator":
                    assert hasattr(getattr(bpy.ops, args[0].split(".")[0]), args[0].split(".")[1]), args[0]
                if name == "template_list":
                    assert hasattr(args[2], args[3]) and hasattr(args[4], args[5])
                return self

        panel.draw_retarget(Recorder(), context)
    finally:
        bamm_blender.unregister()


def test_scene_at_30_fps(walk):
    context = new_scene(fps=30)
    source = bamm_skeleton(context, walk[:41])  # 2 s
    target = rigs.build_rig(context, "smplx")
    action = retarget.retarget(context, source, target)
    assert bake.key_range(target, action) == (1, 61)
    errors = direction_errors(source, target, rigs.expected("smplx"), range(1, 62, 3))
    assert max(errors.values()) < 5.0, errors


def test_loop_pose_matches_ends():
    rng = np.random.default_rng(1)
    pose = retarget.ik.Pose(Rotation.random(30 * 22, random_state=1).as_quat().reshape(30, 22, 4),
                            rng.normal(size=(30, 3)), rng.normal(size=(30, 22, 3)) * 0.01)
    looped = retarget.loop_pose(pose)
    end, start = Rotation.from_quat(looped.rotations[-1, 1:]), Rotation.from_quat(looped.rotations[0, 1:])
    assert (end.inv() * start).magnitude().max() < 1e-9
    np.testing.assert_allclose(looped.root[[0, -1], 1], pose.root[[0, 0], 1])
    np.testing.assert_allclose(looped.root[:, [0, 2]], pose.root[:, [0, 2]])
    np.testing.assert_allclose(looped.rotations[0], pose.rotations[0], atol=1e-12)


def imported_german(tmp_path, *, a_pose=True, arms=True):
    """The German-named rig (A-pose) written to FBX and imported back: leaf hands as long as the forearms.
    ``arms`` False: the arms stop at the upper arm (no limb the bone chains can find)."""
    context = new_scene()
    rig = rigs.build_rig(context, "german", a_pose=a_pose)
    if not arms:
        context.view_layer.objects.active = rig
        bpy.ops.object.mode_set(mode="EDIT")
        for name in ("Unterarm_L", "Hand_L", "Unterarm_R", "Hand_R"):
            rig.data.edit_bones.remove(rig.data.edit_bones[name])
        bpy.ops.object.mode_set(mode="OBJECT")
    target = rigs.fbx_round_trip(context, rig, tmp_path / "figur.fbx")
    context.scene.render.fps, context.scene.render.fps_base = 20, 1.0
    return bpy.context, target


def test_unknown_names_from_fbx_map_every_limb_by_the_bone_chains(walk, tmp_path):
    context, target = imported_german(tmp_path)
    hand, forearm = (target.data.bones[n] for n in ("Hand_L", "Unterarm_L"))
    assert abs(hand.length - forearm.length) < 0.01 * forearm.length  # the importer's leaf length
    mapping = bone_map.auto_map(bone_map.Rig.from_armature(target))
    expected = rigs.expected("german")
    assert {j: b for j, b in mapping.items() if j in expected} == expected
    source = bamm_skeleton(context, walk[:80])
    retarget.retarget(context, source, target)
    errors = direction_errors(source, target, mapping, range(1, 81))
    arms = {j: e for j, e in errors.items() if j.endswith(("shoulder", "elbow"))}
    assert len(arms) == 4 and max(errors.values()) < 5.0, errors
    print(f"German rig from FBX: {len(mapping)} joints mapped, worst bone direction error "
          f"{max(errors.values()):.3f} deg (arms {max(arms.values()):.3f} deg)")


def test_unknown_names_without_arms_are_refused_naming_the_joints(walk, tmp_path):
    context, target = imported_german(tmp_path, arms=False)
    source = bamm_skeleton(context, walk[:20])
    actions = set(bpy.data.actions)
    message = (r"^Cannot retarget onto armature 'german' \(\d+ bones\): no bone found for l_shoulder, l_elbow, "
               r"l_wrist, r_shoulder, r_elbow, r_wrist; .*bone map.*preset.*Partial Map")
    with pytest.raises(BammInputError, match=message) as error:
        retarget.retarget(context, source, target)
    assert "\n" not in str(error.value)
    assert target.animation_data is None and set(bpy.data.actions) == actions and not source.hide_get()
    action = retarget.retarget(context, source, target, options=retarget.RetargetOptions(partial=True))
    keyed = {fc.data_path.split('"')[1] for fc in bake.channels(action, target).fcurves}
    assert "Oberschenkel_L" in keyed and "Oberarm_L" not in keyed  # unmapped: left in its rest pose


def test_export_command_onto_an_fbx_rig_with_unknown_names(walk, tmp_path):
    """``bamm export --target figur.fbx``: all limbs when the chains give them; else exit 2 naming the joints, no
    file; a bone-map preset then maps them."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    joints = tmp_path / "walk.npy"
    np.save(joints, walk[:40])

    def run(*args):
        env = {**os.environ, "PYTHONPATH": str(root)}
        return subprocess.run([sys.executable, "-m", "bamm_blender", str(joints), *map(str, args)], cwd=root, env=env,
                              capture_output=True, text=True, timeout=240)

    for arms in (True, False):
        context = new_scene()
        rig = rigs.build_rig(context, "german", a_pose=True, name="Figur")
        if not arms:
            context.view_layer.objects.active = rig
            bpy.ops.object.mode_set(mode="EDIT")
            for name in ("Hand_L", "Hand_R"):
                rig.data.edit_bones.remove(rig.data.edit_bones[name])
            bpy.ops.object.mode_set(mode="OBJECT")
        bpy.ops.export_scene.fbx(filepath=str(tmp_path / f"figur_{arms}.fbx"), object_types={"ARMATURE"},
                                 add_leaf_bones=False)
    done = run("--target", tmp_path / "figur_True.fbx", "--out", tmp_path / "ok.fbx")
    assert done.returncode == 0 and (tmp_path / "ok.fbx").is_file(), done.stderr[-1500:]
    refused = run("--target", tmp_path / "figur_False.fbx", "--out", tmp_path / "armless.fbx")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and not (tmp_path / "armless.fbx").exists()
    assert lines[-1].startswith("bamm export: error: Cannot retarget onto armature") and "l_elbow" in lines[-1]
    preset = {"format": "bamm-bone-map", "version": 1, "bones": {**rigs.expected("german"),
                                                                  "l_wrist": "Unterarm_L", "r_wrist": "Unterarm_R",
                                                                  "l_elbow": "Oberarm_L", "r_elbow": "Oberarm_R",
                                                                  "l_shoulder": "Schlüsselbein_L",
                                                                  "r_shoulder": "Schlüsselbein_R"}}
    for j in ("l_collar", "r_collar"):
        del preset["bones"][j]
    (tmp_path / "figur.json").write_text(json.dumps(preset), encoding="utf-8")
    mapped = run("--target", tmp_path / "figur_False.fbx", "--bone-map", tmp_path / "figur.json",
                 "--out", tmp_path / "armless.fbx")
    assert mapped.returncode == 0 and (tmp_path / "armless.fbx").is_file(), mapped.stderr[-1500:]

    bpy.ops.wm.read_factory_settings(use_empty=True)  # the written file's arms are not in the rig's A-pose
    bpy.ops.import_scene.fbx(filepath=str(tmp_path / "ok.fbx"), anim_offset=0.0)
    (figur,) = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    posed = world_heads(figur, ["Oberarm_L", "Hand_L", "Oberarm_R", "Hand_R"], range(1, 41))
    for k, side in enumerate("lr"):
        a_pose = rigs.points(side, True)
        gap = np.linalg.norm(posed[:, 2 * k + 1] - posed[:, 2 * k] - (a_pose["wrist"] - a_pose["shoulder"]), axis=-1)
        assert gap.min() > 0.1, (side, gap.min())
