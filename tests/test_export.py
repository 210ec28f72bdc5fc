"""Export round trips (FBX, BVH, GLB re-imported into a fresh scene) and the exporter command (``python -m bamm_blender``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import rigs

bpy = pytest.importorskip("bpy")
from mathutils import Matrix  # noqa: E402

from bamm_blender import armature, bake, export, retarget  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.data]
ROOT = Path(__file__).resolve().parents[1]
CLIP = "007005"
FRAMES = 120
CHECK = [1, 2, 37, 60, 91, 119, 120]
TURNED = np.array(Matrix.Translation((2.0, -1.0, 0.3)) @ Matrix.Rotation(0.7, 4, "Z")
                  @ Matrix.Diagonal((1.7, 1.7, 1.7, 1.0)))  # moved, turned 40 degrees, scaled
LIMITS = {"fbx": 1e-3, "bvh": 1e-3, "glb": 1e-3}  # metres


def new_scene(fps: int = 20):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = fps, 1.0
    return bpy.context


def heads(obj, names, frames, *, armature_space=False) -> np.ndarray:
    world = np.eye(4) if armature_space else np.array(obj.matrix_world)
    out = []
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        out.append([world[:3, :3] @ np.array(obj.pose.bones[n].head) + world[:3, 3] for n in names])
    return np.array(out)


def import_file(path: Path, fmt: str):
    new_scene(fps=20)  # glTF times are seconds, read with the scene's frame rate
    if fmt == "fbx":
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    elif fmt == "bvh":
        bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="Y", axis_up="Z")
    else:
        bpy.ops.import_scene.gltf(filepath=str(path))
    (obj,) = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    return obj


@pytest.fixture(scope="module")
def exported(hml_dir, tmp_path_factory):
    """A walk retargeted onto a UE-named rig (rolled bones, scaled and rotated object), written in each format,
    with the reference bone heads (world and armature space) at the CHECK frames."""
    out = tmp_path_factory.mktemp("export")
    context = new_scene()
    joints = np.load(hml_dir / "new_joints" / f"{CLIP}.npy")[:FRAMES]
    source = armature.build_armature(context)
    bake.assign_action(source, bake.bake_joints(source, joints, scene=context.scene, first_frame=1, name="walk"))
    target = rigs.build_rig(context, "ue5_mannequin", roll=0.6, matrix_world=TURNED)
    retarget.retarget(context, source, target)
    names = [b.name for b in target.data.bones]
    reference = {"world": heads(target, names, CHECK), "armature": heads(target, names, CHECK, armature_space=True)}
    paths = {fmt: export.export_armature(context, target, out / f"walk.{fmt}") for fmt in export.FORMATS}
    assert context.scene.frame_start == 1 and context.scene.frame_end == 250  # the scene range is put back
    return paths, names, reference


@pytest.mark.parametrize("fmt", list(export.FORMATS))
def test_round_trip_keeps_world_joint_positions(exported, fmt):
    paths, names, reference = exported
    obj = import_file(paths[fmt], fmt)
    action = obj.animation_data.action
    curves = bake.channels(action, obj).fcurves
    assert {len(fc.keyframe_points) for fc in curves} == {FRAMES}  # every frame keyed, nothing simplified
    assert tuple(action.frame_range) == (1.0, float(FRAMES))  # no one-frame offset, right length
    space = "armature" if fmt == "bvh" else "world"  # BVH holds the armature's own space only
    got = heads(obj, names, CHECK, armature_space=space == "armature")
    error = float(np.linalg.norm(got - reference[space], axis=-1).max())
    print(f"{fmt}: max joint error after the round trip {error * 1000:.4f} mm")
    assert error < LIMITS[fmt]


def test_fbx_carries_the_frame_rate(exported):
    paths, _names, _reference = exported
    new_scene(fps=24)
    bpy.ops.import_scene.fbx(filepath=str(paths["fbx"]), anim_offset=0.0)
    assert bpy.context.scene.render.fps == 20


def test_export_refuses_an_armature_without_action(tmp_path):
    context = new_scene()
    obj = rigs.build_rig(context, "smpl")
    with pytest.raises(export.BammInputError, match="has no action to export"):
        export.export_armature(context, obj, tmp_path / "x.fbx")
    obj.animation_data_create().action = bpy.data.actions.new("empty")
    with pytest.raises(export.BammInputError, match="Unknown export format 'abc'"):
        export.export_armature(context, obj, tmp_path / "x.abc")


def _run(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bamm_blender", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_command_line_exports_onto_a_target(hml_dir, tmp_path):
    context = new_scene()
    from mathutils import Matrix as M

    fbx_like = np.array(M.Rotation(np.pi / 2, 4, "X") @ M.Diagonal((0.01, 0.01, 0.01, 1.0)))
    rigs.build_rig(context, "mixamo", name="Hero", a_pose=True, matrix_world=fbx_like)
    rigs.build_rig(context, "smpl", name="Extra")
    blend = tmp_path / "hero.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    joints = tmp_path / "walk.npy"
    np.save(joints, np.load(hml_dir / "new_joints" / f"{CLIP}.npy")[:60])

    result = _run(joints, "--format", "fbx", "--out", tmp_path / "hero", "--target", blend, "--armature", "Hero",
                  "--foot-lock", "--loop")
    assert result.returncode == 0, result.stderr[-2000:]
    written = Path(result.stdout.strip())
    assert written == tmp_path / "hero.fbx" and written.is_file()
    obj = import_file(written, "fbx")
    assert obj.name == "Hero" and "BAMM Skeleton" not in bpy.data.objects  # the BAMM Skeleton is not exported
    assert tuple(obj.animation_data.action.frame_range) == (1.0, 60.0)

    result = _run(joints, "--out", tmp_path / "hero.bvh", "--target", blend)
    assert result.returncode == 2 and "has 2 armatures (Hero, Extra): name one with --armature" in result.stderr


def test_command_line_without_target_and_bad_input(hml_dir, tmp_path, capsys):
    joints = tmp_path / "walk.npy"
    np.save(joints, np.load(hml_dir / "new_joints" / f"{CLIP}.npy")[:40])
    assert export.main([str(joints), "--out", str(tmp_path / "walk.glb"), "--in-place"]) == 0
    assert capsys.readouterr().out.strip().endswith("walk.glb")
    obj = import_file(tmp_path / "walk.glb", "glb")
    path = heads(obj, ["pelvis"], [1, 40])[:, 0]
    np.testing.assert_allclose(path[0, :2], path[1, :2], atol=1e-4)  # in place: no horizontal root motion

    np.save(tmp_path / "vecs.npy", np.zeros((40, 263), np.float32))
    cases = [([str(tmp_path / "missing.npy"), "--out", str(tmp_path / "x.fbx")], "does not exist"),
             ([str(tmp_path / "vecs.npy"), "--out", str(tmp_path / "x.fbx")], r"must have shape \(T >= 2, 22, 3\)"),
             ([str(joints), "--out", str(tmp_path / "x.abc")], "Unknown export format"),
             ([str(joints), "--out", str(tmp_path / "nowhere" / "x.fbx")], "folder .* does not exist"),
             ([str(joints), "--out", str(tmp_path / "x.fbx"), "--target", str(tmp_path / "rig.obj")], ".blend or .fbx")]
    for argv, message in cases:
        assert export.main(argv) == 2
        assert re.search(message, capsys.readouterr().err), argv


def test_command_line_with_an_fbx_target(exported, hml_dir, tmp_path, capsys):
    """An FBX character (here the exported UE rig, which has an action of its own) as the target."""
    paths, _names, _reference = exported
    joints = tmp_path / "walk.npy"
    np.save(joints, np.load(hml_dir / "new_joints" / f"{CLIP}.npy")[:30])
    argv = [str(joints), "--out", str(tmp_path / "ue.bvh"), "--target", str(paths["fbx"]), "--keep-root"]
    assert export.main(argv) == 0
    assert capsys.readouterr().out.strip().endswith("ue.bvh")
    text = (tmp_path / "ue.bvh").read_text()
    assert "ROOT root" in text and "JOINT thigh_l" in text and "Frames: 30" in text and "Frame Time: 0.050000" in text
