"""Regenerate Range, Extend, Fill Gap and Generate on the animator's own character (headless Blender, the shipped
weights on the CPU): a real walk (HumanML3D, which the shipped model never saw) retargeted onto scripted rigs is
the animator's animation (``support/rig_edits.py``: Mixamo names at the FBX importer's 0.01 scale, a Rigify-like
deform rig, a rig with an unmapped bone between the chest and the neck; fingers, a custom property and the extra
bone keyed too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import rig_edits

bpy = pytest.importorskip("bpy")
pytest.importorskip("torch")

import bamm_blender  # noqa: E402
from bamm_blender import (  # noqa: E402
    armature, backend, bake, fill_gap, headless, results, retarget_scene, rig_source, sequence,
)
from bamm_blender.errors import BammInputError  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.data]
WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
CLIP = "007005"  # 10 s: stands, then walks
PROMPT = "a person waves with the right hand above the head"


@pytest.fixture(scope="module")
def engine():
    from model_core.decoding.generate import BAMM

    model = BAMM.from_pretrained(WEIGHTS)
    bamm_blender.register()
    with headless.use_engine(headless.Engine(backend.InProcessBackend(model=model), {"weights": str(WEIGHTS)})):
        yield
    bamm_blender.unregister()


@pytest.fixture(scope="module")
def walk(hml_dir):
    return np.load(hml_dir / "new_joints" / f"{CLIP}.npy")[:160]


def scene(fps: int):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = fps, 1.0
    return bpy.context


def mapped_bones(context, rig) -> list[str]:
    mapping = rig_source.character(context, rig).mapping
    return [mapping[n] for n in armature.BONE_NAMES]


def channel_bone(channel) -> str:
    return channel[0].split('"')[1] if channel[0].startswith('pose.bones["') else ""


def model_at(joints: np.ndarray, frames: np.ndarray, origin: float, fps: float) -> np.ndarray:
    """The 20-fps joints at scene ``frames``, sampled as the add-on samples them (slerp per bone)."""
    rest = armature.MODEL_SKELETON.rest
    pose = headless.ik.sample(headless.ik.solve(joints, rest=rest), (frames - origin) * 20.0 / fps)
    return headless.ik.forward(pose, rest=rest)


@pytest.mark.parametrize("style", list(rig_edits.STYLES))
def test_a_character_reads_as_the_model_joints_retargeted_onto_it(engine, walk, style):
    context = scene(20)
    rig, action = rig_edits.animated_character(context, style, walk)
    ch = rig_source.character(context, rig)
    joints, first, last = rig_source.model_joints(ch, action, context.scene)
    assert (first, last) == (1, len(walk)) and joints.shape == walk.shape and joints.dtype == np.float32
    rest = armature.MODEL_SKELETON.rest  # the walk as the model skeleton holds it (hips and collars at rest)
    pose = headless.ik.solve(walk, rest=rest)
    pose.offsets[:] = 0.0
    expected = headless.ik.forward(pose, rest=rest)
    limbs = [(j, kids[0]) for j, kids in enumerate(armature.CHILDREN) if len(kids) == 1 and j not in (3, 6, 9, 12)]
    a = np.stack([joints[:, c] - joints[:, j] for j, c in limbs], 1)
    b = np.stack([expected[:, c] - expected[:, j] for j, c in limbs], 1)
    angle = np.degrees(np.arccos(np.clip(np.sum(a * b, -1) / np.linalg.norm(a, axis=-1)
                                         / np.linalg.norm(b, axis=-1), -1, 1)))
    assert angle.max() < 2.0, angle.max(axis=0)
    bones = np.linalg.norm(joints[:, 1:] - joints[:, list(armature.PARENTS[1:])], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(np.linalg.norm(rest[1:] - rest[list(armature.PARENTS[1:])],
                                                                     axis=-1), bones.shape), atol=1e-4)
    travel = np.linalg.norm(joints[-1, 0, [0, 2]] - joints[0, 0, [0, 2]])
    assert abs(travel - np.linalg.norm(walk[-1, 0, [0, 2]] - walk[0, 0, [0, 2]])) < 0.1


@pytest.mark.parametrize("style, fps", [("mixamo_cm", 24), ("rigify", 20), ("extra_spine", 30), ("rigify", 30)])
def test_regenerate_range_on_a_character_keeps_everything_outside(engine, walk, style, fps):
    context = scene(fps)
    rig, action = rig_edits.animated_character(context, style, walk)
    before = rig_edits.all_keys(rig, action)
    key_first, key_last = bake.key_range(rig, action)
    first, last = key_first + int(0.35 * (key_last - key_first)), key_first + int(0.6 * (key_last - key_first))
    task = headless.start_regenerate(context, target=rig, first=first, last=last, prompt=PROMPT, seed=1)
    (motion,) = task.job.wait(120)
    (edited,) = headless.finish(context, task)
    assert rig.animation_data.action == edited and edited != action
    assert edited[results.PROMPT_KEY] == PROMPT and action.use_fake_user
    after = rig_edits.all_keys(rig, edited)
    assert rig_edits.outside_differences(before, after, first, last) == []
    assert set(after) == set(before)
    bones = mapped_bones(context, rig)
    for channel, keys in before.items():  # unmapped bones and custom properties: every key, inside too
        if channel_bone(channel) not in bones:
            assert all(np.array_equal(keys[a], after[channel][a]) for a in keys), channel
    rotated = [c for c in after if channel_bone(c) in bones and "rotation" in c[0]]
    for channel in rotated:
        x = after[channel]["co"][:, 0]
        assert np.array_equal(x[(x >= first) & (x <= last)], np.arange(first, last + 1)), channel
    assert rig_edits.all_keys(rig, action).keys() == before.keys()  # the source action itself is untouched

    frames = np.arange(key_first, key_last + 1)
    heads = rig_edits.world_heads(rig, bones, frames)
    ch = rig_source.character(context, rig)
    blend = int(round(headless.SEAM_BLEND_S * fps))
    middle = np.arange(first + blend + 1, last - blend)
    errors = rig_edits.direction_errors(heads[middle - key_first], model_at(motion.joints, middle, task.origin, fps),
                                        ch.plan.facing)
    print(f"{style} @ {fps} fps: limb direction error in the range: mean {errors.mean():.2f}, "
          f"max {errors.max():.2f} deg")
    assert errors.max() < 3.0  # as Retarget (test_retarget: < 5 deg)
    bake.assign_action(rig, action)
    median = np.median(rig_edits.speeds(rig_edits.world_heads(rig, bones, frames)))
    jumps = np.array(rig_edits.seam_jumps(heads, frames, first, last)) / median
    print(f"  seam steps {np.round(jumps, 2)} x the clip's median frame-to-frame joint speed")
    assert len(jumps) == 2 and jumps.max() <= 1.5


@pytest.mark.parametrize("mode", ["XYZ", "ZXY"])
def test_euler_bones_are_edited_in_their_own_mode(engine, walk, mode):
    context = scene(24)
    rig, action = rig_edits.animated_character(context, "mixamo_cm", walk, mode=mode)
    before = rig_edits.all_keys(rig, action)
    (edited,) = headless.regenerate_range(context, target=rig, first=80, last=130, prompt=PROMPT, timeout=120)
    after = rig_edits.all_keys(rig, edited)
    assert rig_edits.outside_differences(before, after, 80, 130) == [] and set(after) == set(before)
    assert not any("quaternion" in c[0] for c in after)
    bones = mapped_bones(context, rig)
    frames = np.arange(*bake.key_range(rig, edited))
    heads = rig_edits.world_heads(rig, bones, frames)
    bake.assign_action(rig, action)
    jumps = np.array(rig_edits.seam_jumps(heads, frames, 80, 130))
    assert jumps.max() <= 1.5 * np.median(rig_edits.speeds(rig_edits.world_heads(rig, bones, frames)))
    for channel in (c for c in after if "rotation_euler" in c[0] and channel_bone(c) in bones):  # no 2 pi turn
        x, y = after[channel]["co"][:, 0], after[channel]["co"][:, 1]
        for seam in (79, 130):
            assert abs(y[x == seam + 1][0] - y[x == seam][0]) < 0.5, (channel, seam)


@pytest.mark.parametrize("side", ["BEFORE", "AFTER"])
def test_extend_a_character(engine, walk, side):
    context = scene(24)
    rig, action = rig_edits.animated_character(context, "mixamo_cm", walk[:100])
    before = rig_edits.all_keys(rig, action)
    key_first, key_last = bake.key_range(rig, action)
    (extended,) = headless.extend(context, target=rig, side=side, seconds=1.0, prompt="a person bows", timeout=120)
    new_first, new_last = bake.key_range(rig, extended)
    assert (new_first < key_first and new_last == key_last) if side == "BEFORE" else \
        (new_first == key_first and new_last > key_last)
    after = rig_edits.all_keys(rig, extended)

    def on_old_span(keys):  # every key of the old span is kept bit for bit
        return {c: {a: v[(k["co"][:, 0] >= key_first) & (k["co"][:, 0] <= key_last)] for a, v in k.items()}
                for c, k in keys.items()}

    old, new = on_old_span(before), on_old_span(after)
    assert old.keys() == new.keys() and all(np.array_equal(old[c][a], new[c][a]) for c in old for a in old[c])
    bones = mapped_bones(context, rig)
    grown = {c for c in after if len(after[c]["co"]) != len(before[c]["co"])}
    assert grown and all(channel_bone(c) in bones for c in grown)
    frames = np.arange(new_first, new_last + 1)
    heads = rig_edits.world_heads(rig, bones, frames)
    speeds = rig_edits.speeds(heads)  # step k: frame new_first + k -> + k + 1
    seam = key_first - 1 if side == "BEFORE" else key_last
    kept = speeds[seam - new_first + 1:seam - new_first + 11] if side == "BEFORE" else \
        speeds[seam - new_first - 10:seam - new_first]
    print(f"extend {side}: step across the seam {speeds[seam - new_first] / np.median(kept):.2f} x the kept "
          "motion's median frame-to-frame joint speed there")
    assert speeds[seam - new_first] <= 1.5 * np.median(kept)


@pytest.mark.parametrize("who", ["character", "skeleton"])
def test_fill_gap_between_two_held_poses(engine, walk, who):
    context = scene(24)
    if who == "character":
        rig, action = rig_edits.animated_character(context, "rigify", walk[:140])
    else:
        rig = armature.build_armature(context)
        action = bake.bake_joints(rig, walk[:140], scene=context.scene, first_frame=1, name="walk")
        bake.assign_action(rig, action)
        context.scene.bamm.target = rig
    with pytest.raises(BammInputError, match="No gap"):
        fill_gap.find_gap(context, rig)
    bones = set(armature.BONE_NAMES) if who == "skeleton" else set(mapped_bones(context, rig))
    hole = (60, 110)
    for fcurve in bake.channels(action, rig).fcurves:  # delete the body's keys in between: two animated parts
        if channel_bone((fcurve.data_path,)) in bones:
            for point in reversed(list(fcurve.keyframe_points)):
                if hole[0] <= point.co.x <= hole[1]:
                    fcurve.keyframe_points.remove(point, fast=True)
            fcurve.update()
    before = rig_edits.all_keys(rig, action)
    context.scene.frame_current = 1  # not in the gap: the longest one is taken
    assert fill_gap.find_gap(context, rig) == hole and fill_gap.gaps(context, rig) == [hole]
    (filled,) = fill_gap.fill_gap(context, target=rig, prompt="a person jumps", timeout=120)
    after = rig_edits.all_keys(rig, filled)
    assert rig_edits.outside_differences(before, after, *hole) == []
    for channel, keys in after.items():
        x = keys["co"][:, 0]
        if channel_bone(channel) in bones and ("rotation" in channel[0]):
            assert np.array_equal(x[(x >= hole[0]) & (x <= hole[1])], np.arange(hole[0], hole[1] + 1)), channel
    assert fill_gap.gaps(context, rig, filled) == []


def test_drivers_and_constraints_are_refused_in_one_line(engine, walk):
    context = scene(20)
    rig, action = rig_edits.animated_character(context, "mixamo_cm", walk[:60])
    actions = len(bpy.data.actions)
    arm = rig.pose.bones["mixamorig:LeftArm"]
    driver = arm.driver_add("rotation_quaternion", 1)
    with pytest.raises(BammInputError, match=r"Bone 'mixamorig:LeftArm' of 'Character' is moved by a driver"):
        headless.start_regenerate(context, target=rig, first=10, last=30)
    rig.driver_remove(driver.data_path, 1)
    constraint = rig.pose.bones["mixamorig:Spine1"].constraints.new("COPY_ROTATION")
    with pytest.raises(BammInputError, match=r"moved by its constraint 'Copy Rotation'.*Bake Action") as error:
        headless.start_extend(context, target=rig, side="AFTER", seconds=1.0)
    assert "\n" not in str(error.value)
    constraint.mute = True
    headless.start_regenerate(context, target=rig, first=10, last=30).job.wait(120)  # muted: editable
    assert len(bpy.data.actions) == actions and rig.animation_data.action == action


def test_operators_on_a_character_are_one_undo_step(engine, walk):
    context = scene(24)
    rig, action = rig_edits.animated_character(context, "mixamo_cm", walk[:100])
    s = context.scene.bamm
    s.target, s.range_source, s.range_start, s.range_end = rig, "MANUAL", 30, 60
    s.edit_prompt, source = PROMPT, action.name
    bpy.ops.ed.undo_push(message="animated character")
    assert bpy.ops.bamm.regenerate_range("EXEC_DEFAULT", True) == {"FINISHED"}
    edited = rig.animation_data.action.name
    assert edited != source
    assert bpy.ops.bamm.extend("EXEC_DEFAULT", True, side="AFTER") == {"FINISHED"}
    extended = bpy.data.objects["Character"].animation_data.action.name
    bpy.ops.ed.undo()  # the extension is gone, the regenerated range is back
    assert bpy.data.objects["Character"].animation_data.action.name == edited and extended not in bpy.data.actions
    bpy.ops.ed.undo()  # and the animator's own action
    assert bpy.data.objects["Character"].animation_data.action.name == source and edited not in bpy.data.actions


def test_a_range_the_character_walks_through_says_when_the_action_slides(engine, walk):
    """The clip stands for 2 s, then walks: a bow asked for where it walks has to slide to the keys after the range,
    and the result says so; an arm action is done on the way, and where it stands nothing needs saying."""
    context = scene(20)
    rig, _ = rig_edits.animated_character(context, "mixamo_cm", walk)
    key_first, _ = bake.key_range(rig, rig.animation_data.action)
    tasks = {name: headless.start_regenerate(context, target=rig, first=key_first + a, last=key_first + b,
                                             prompt=prompt, seed=0)
             for name, (a, b, prompt) in {"walking": (60, 99, "a person bows"), "arms": (60, 99, PROMPT),
                                          "standing": (5, 30, "a person bows")}.items()}
    for task in tasks.values():
        task.job.wait(120)
    assert "slides" in tasks["walking"].note and "'a person bows'" in tasks["walking"].note
    assert tasks["arms"].note == "" and tasks["standing"].note == ""


def test_the_retarget_sections_map_is_the_characters_map(engine, walk):
    context = scene(20)
    rig, _action = rig_edits.animated_character(context, "mixamo_cm", walk[:40])
    assert rig_source.mapping_of(context, rig) == rig_edits.rigs.expected("mixamo")  # Auto Map
    s = context.scene.bamm_retarget
    s.target = rig
    retarget_scene.fill_bone_map(context)
    next(item for item in s.bone_map if item.joint == "l_foot").bone = ""  # the animator's own choice
    assert "l_foot" not in rig_source.mapping_of(context, rig)
    s.bone_map_target = "another rig"  # a map made for another armature is not this one's
    assert "l_foot" in rig_source.mapping_of(context, rig)


def test_generate_onto_a_character(engine, walk):
    context = scene(20)
    rig, action = rig_edits.animated_character(context, "extra_spine", walk[:40])
    (made,) = headless.generate(context, prompt="a person walks forward", seconds=2.0, target=rig, timeout=120)
    assert rig.animation_data.action == made and action.use_fake_user
    keyed = {c[0].split('"')[1] for c in rig_edits.all_keys(rig, made)}
    assert keyed == set(mapped_bones(context, rig)) and rig_edits.EXTRA not in keyed
    assert bake.key_range(rig, made) == (context.scene.frame_start, context.scene.frame_start + 39)
    for frame, text in ((1, "walks forward"), (41, "bows")):  # Sequence segments onto the character
        context.scene.timeline_markers.new(text, frame=frame)
    context.scene.frame_end = 80
    (made,) = sequence.generate_sequence(context, target=rig, timeout=120)
    assert rig.animation_data.action == made and bake.key_range(rig, made)[0] == 1
    assert {c[0].split('"')[1] for c in rig_edits.all_keys(rig, made)} == keyed
