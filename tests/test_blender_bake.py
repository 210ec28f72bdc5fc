"""Baking joints onto the SMPL-22 armature in real Blender (bpy module, headless)."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bamm_blender import armature, axes, bake  # noqa: E402
from model_core.motion import skeleton  # noqa: E402


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    return scene


def world_heads(obj, scene, frames) -> np.ndarray:
    """World positions of the pose bones' heads, frame by frame through the depsgraph (Blender axes)."""
    out = []
    for frame in frames:
        scene.frame_set(int(frame))
        evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        matrix = np.array(evaluated.matrix_world)
        heads = np.array([evaluated.pose.bones[n].head for n in armature.BONE_NAMES])
        out.append(heads @ matrix[:3, :3].T + matrix[:3, 3])
    return np.array(out)


def baked(scene, joints, first=1):
    obj = armature.build_armature(bpy.context)
    action = bake.bake_joints(obj, joints, scene=scene, first_frame=first, name="test")
    bake.assign_action(obj, action)
    return obj, action


def test_armature_matches_reference_skeleton(scene):
    obj = armature.build_armature(bpy.context)
    assert obj.name == "BAMM Skeleton" and obj.type == "ARMATURE"
    assert sorted(b.name for b in obj.data.bones) == sorted(skeleton.JOINT_NAMES)
    for j, name in enumerate(skeleton.JOINT_NAMES):
        parent = obj.data.bones[name].parent
        assert (parent.name if parent else None) == (skeleton.JOINT_NAMES[skeleton.PARENTS[j]] if j else None)
    rest = armature.rest_joints_of(obj)
    np.testing.assert_allclose(rest - rest[0], skeleton.rest_joints() - skeleton.rest_joints()[0], atol=1e-6)
    assert abs(rest[:, 1].min()) < 1e-6  # standing on the floor
    # rolls: the local Z axis of a leg bone points to the character's front (-Y in Blender)
    z_axis = np.array(obj.data.bones["l_knee"].matrix_local)[:3, 2]
    np.testing.assert_allclose(z_axis, axes.to_blender([0.0, 0.0, 1.0]), atol=1e-6)
    armature.check_armature(obj)


def test_bake_accuracy_on_real_clips(scene, hml_dir):
    """Every real HumanML3D clip: baked world joint positions equal the source (mean <= 1 cm, max <= 3 cm)."""
    clips = sorted((hml_dir / "new_joints").glob("*.npy"))
    assert clips
    report = []
    for path in clips:
        joints = np.load(path)
        obj, action = baked(scene, joints)
        got = world_heads(obj, scene, range(1, len(joints) + 1))
        error = np.linalg.norm(got - axes.to_blender(joints), axis=-1)
        report.append(f"{path.stem}: mean {error.mean() * 100:.5f} cm, max {error.max() * 100:.5f} cm")
        assert error.mean() <= 0.01 and error.max() <= 0.03, report[-1]
        bpy.data.objects.remove(obj)
    print("\n".join(report))


def test_bake_resamples_to_scene_fps(scene, hml_dir):
    joints = np.load(sorted((hml_dir / "new_joints").glob("*.npy"))[0])
    scene.render.fps = 30
    obj, action = baked(scene, joints, first=10)
    first, last = bake.key_range(obj, action)
    assert (first, last) == (10, 10 + int(np.floor((len(joints) - 1) * 1.5 + 1e-6)))
    got = world_heads(obj, scene, range(10, last + 1, 3))  # every 3rd scene frame = every 2nd model frame
    error = np.linalg.norm(got - axes.to_blender(joints[::2]), axis=-1)
    assert error.max() < 1e-4, error.max()


def test_bake_writes_a_new_action_in_one_go(scene):
    rng = np.random.default_rng(0)
    joints = np.repeat(armature.reference_rest()[None], 30, axis=0) + rng.normal(0, 0.01, (30, 22, 3))
    obj = armature.build_armature(bpy.context)
    users_action = bpy.data.actions.new("animator's action")
    bake.assign_action(obj, users_action)
    action = bake.bake_joints(obj, joints, scene=scene, first_frame=1, name="BAMM test")
    assert action != users_action and obj.animation_data.action == users_action  # not assigned, not reused
    container = bake.channels(action, obj)
    if bpy.app.version >= (4, 4, 0):
        assert container != action  # slotted actions: a channelbag
    paths = {(fc.data_path, fc.array_index) for fc in container.fcurves}
    assert len(paths) == 22 * 4 + len(bake.LOCATION_BONES) * 3
    assert all(len(fc.keyframe_points) == 30 for fc in container.fcurves)
    group = container.fcurves.find('pose.bones["l_knee"].rotation_quaternion', index=0).group
    assert group is not None and group.name == "l_knee"


def test_read_back_joints(scene, hml_dir):
    joints = np.load(sorted((hml_dir / "new_joints").glob("*.npy"))[2])
    scene.render.fps = 24
    obj, action = baked(scene, joints, first=5)
    back = bake.read_model_joints(obj, action, scene)
    # 199 frames at 20 fps -> keys on 238 frames at 24 fps, covering 197.5 model frames: the last is cut
    assert back.shape == (len(joints) - 1, 22, 3)
    error = np.linalg.norm(back - joints[: len(back)], axis=-1)
    assert error[::5].max() < 1e-4  # model frames that land on a key (every 5th at 24 fps): exact
    assert error.max() < 0.01  # between keys: the F-curves' interpolation


def test_bake_of_generated_motion(scene, tiny_joints):
    """Untrained-model output has bone lengths that change every frame: the bake keeps every bone's
    direction, so a joint's error is at most its parent's error plus the bone's length mismatch."""
    obj, action = baked(scene, tiny_joints)
    got = armature.axes.to_model(world_heads(obj, scene, range(1, len(tiny_joints) + 1)))
    error = np.linalg.norm(got - tiny_joints, axis=-1)
    rest_lengths = skeleton.bone_lengths(armature.rest_joints_of(obj))
    mismatch = np.abs(skeleton.bone_lengths(tiny_joints) - rest_lengths)
    branch = {c for c, p in enumerate(skeleton.PARENTS) if p >= 0 and skeleton.PARENTS.count(p) > 1}
    for j, p in enumerate(skeleton.PARENTS):
        if p < 0:
            assert error[:, j].max() < 1e-5
        else:
            bound = error[:, p] + (0.0 if j in branch else mismatch[:, j])
            assert (error[:, j] <= bound + 1e-4).all(), skeleton.JOINT_NAMES[j]
    print(f"\ngenerated (untrained tiny model): mean {error.mean() * 100:.2f} cm, max {error.max() * 100:.2f} cm")


@pytest.fixture(scope="module")
def tiny_joints():
    torch = pytest.importorskip("torch")
    from model_core.decoding.generate import BAMM

    torch.manual_seed(0)
    model = BAMM.random(preset="tiny", text_encoder="minilm", seed=0)
    return model.generate("a person walks forward", seed=0)[0].joints


@pytest.mark.parametrize("make, message", [
    (lambda: None, "No target armature"),
    (lambda: bpy.data.objects.new("Empty", None), "not an armature"),
    (lambda: bpy.data.objects.new("Other", bpy.data.armatures.new("Other")), "not an SMPL-22 skeleton"),
])
def test_check_armature_errors(scene, make, message):
    with pytest.raises(armature.BammInputError, match=message):
        armature.check_armature(make())
