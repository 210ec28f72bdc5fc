"""The bad-input table: every bad input through the add-on's plain functions and operators gives one line
saying what is wrong, submits no job, and writes, overwrites or deletes nothing (objects, actions, every key
of every action with its handles and easing, files)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from support import rigs

bpy = pytest.importorskip("bpy")

import bamm_blender  # noqa: E402
from bamm_blender import armature, bake, export, headless, retarget_scene  # noqa: E402
from bamm_blender.errors import BammInputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class NoJobs:
    """A backend that must not be reached: bad input is refused before anything is submitted."""

    def submit(self, request):
        raise AssertionError(f"a job was submitted: {request.op} {request.args}")


def walk(frames: int = 40) -> np.ndarray:
    joints = np.repeat(armature.reference_rest()[None], frames, 0)
    joints[:, :, 2] += np.arange(frames)[:, None] / 20.0
    joints[:, 18:22, 1] += 0.05 * np.sin(np.arange(frames))[:, None]  # the arms move
    return joints.astype(np.float32)


def skeleton(context, name="BAMM Skeleton"):
    obj = armature.build_armature(context, name=name)
    action = bake.bake_joints(obj, walk(), scene=context.scene, first_frame=1, name=f"{name} walk")
    bake.assign_action(obj, action)
    return obj


def snapshot(folder: Path) -> dict:
    """Objects, actions with every key attribute, the bone map, and the files in ``folder`` with their bytes."""
    keys = {}
    for action in bpy.data.actions:
        for obj in bpy.data.objects:
            if obj.animation_data and obj.animation_data.action == action:
                container = bake.channels(action, obj)
                keys[action.name] = {(fc.data_path, fc.array_index): [
                    (tuple(k.co), tuple(k.handle_left), tuple(k.handle_right), k.interpolation, k.easing,
                     k.handle_left_type, k.handle_right_type) for k in fc.keyframe_points] for fc in container.fcurves}
    bone_map = [(i.joint, i.bone) for i in bpy.context.scene.bamm_retarget.bone_map]
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    return {"objects": sorted(o.name for o in bpy.data.objects), "actions": sorted(a.name for a in bpy.data.actions),
            "keys": keys, "bone_map": bone_map, "files": files,
            "assigned": {o.name: o.animation_data.action.name for o in bpy.data.objects
                         if o.animation_data and o.animation_data.action}}


@pytest.fixture(scope="module")
def addon():
    bamm_blender.register()
    with headless.use_engine(headless.Engine(NoJobs(), {"weights": str(ROOT / "weights")})):
        yield
    bamm_blender.unregister()


@pytest.fixture
def scene(addon, tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    context = bpy.context
    context.scene.render.fps, context.scene.render.fps_base = 20, 1.0
    source = skeleton(context)
    (tmp_path / "kept.fbx").write_bytes(b"an earlier export")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    return context, source, tmp_path


def no_bones(context, _tmp):
    data = bpy.data.armatures.new("Empty Rig")
    obj = bpy.data.objects.new("Empty Rig", data)
    context.collection.objects.link(obj)
    return obj


def german_without_arms(context, tmp):
    """The German-named rig, arms cut at the upper arm, written to FBX and imported back (as a user would)."""
    rig = rigs.build_rig(context, "german", a_pose=True, name="Figur")
    context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("Unterarm_L", "Hand_L", "Unterarm_R", "Hand_R"):
        rig.data.edit_bones.remove(rig.data.edit_bones[name])
    bpy.ops.object.mode_set(mode="OBJECT")
    path = tmp / "sub" / "figur.fbx"
    path.parent.mkdir()
    for other in context.scene.objects:
        other.select_set(other == rig)
    bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True, object_types={"ARMATURE"}, add_leaf_bones=False)
    bpy.data.objects.remove(rig)
    bpy.ops.import_scene.fbx(filepath=str(path))
    return next(o for o in context.scene.objects if o.type == "ARMATURE" and o.name.startswith("Figur"))


def character(make):
    """Setup: the Retarget section's Character is ``make(context, tmp)``, the Source the BAMM Skeleton."""
    def setup(context, source, tmp):
        s = context.scene.bamm_retarget
        s.source, s.target = source, make(context, tmp)
    return setup


def without_action(context, source, tmp):
    character(lambda c, _t: rigs.build_rig(c, "mixamo", name="Hero"))(context, source, tmp)
    source.animation_data.action = None


def press_retarget(_context, _source, _tmp):
    return bpy.ops.bamm.retarget()


def hero_with_map(context, _source, _tmp):
    context.scene.bamm_retarget.target = rigs.build_rig(context, "mixamo", name="Hero")
    retarget_scene.fill_bone_map(context)


def generate(**kwargs):
    return lambda context, _source, _tmp: headless.start_generate(context, **{"prompt": "a person walks", **kwargs})


def extend(**kwargs):
    return lambda context, source, _tmp: headless.start_extend(context, target=source, **{"side": "AFTER", **kwargs})


def regenerate(first, last):
    return lambda context, source, _tmp: headless.start_regenerate(context, target=source, first=first, last=last)


def load_map(name):
    return lambda _context, _source, tmp: bpy.ops.bamm.bone_map_load(filepath=str(tmp / name), builtin="")


def export_to(relative, fmt="fbx"):
    def run(context, source, tmp):
        context.scene.bamm_retarget.source, context.scene.bamm_retarget.export_format = source, fmt
        return bpy.ops.bamm.export(filepath=str(tmp / relative))
    return run


def export_joints_to(name, **kwargs):
    return lambda _context, _source, tmp: export.export_joints(walk(), tmp / name, **kwargs)


CASES = {  # id: (call, message)
    "generate: NaN seconds": (generate(seconds=math.nan), r"seconds must be a finite number > 0, got nan"),
    "generate: infinite seconds": (generate(seconds=math.inf), r"seconds must be a finite number > 0, got inf"),
    "generate: negative seconds": (generate(seconds=-2.0), r"seconds must be a finite number > 0, got -2.0"),
    "generate: over the weights' limit": (generate(seconds=10.0), r"10 s is over the model's limit of 9.8 s"),
    "generate: empty prompt": (generate(prompt="  "), r"Type a prompt first"),
    "generate: NaN guidance": (generate(cfg=(math.nan, 3.0)), r"cfg \(guidance\) must be a finite number"),
    "generate: character without arms": (lambda c, s, t: headless.start_generate(
        c, prompt="walk", target=c.scene.bamm_retarget.target), r"no bone found for l_shoulder, l_elbow",
        character(german_without_arms)),
    "regenerate: character without arms": (lambda c, s, t: headless.start_regenerate(
        c, target=c.scene.bamm_retarget.target, first=5, last=20), r"no bone found for l_shoulder, l_elbow",
        character(german_without_arms)),
    "extend: NaN seconds": (extend(seconds=math.nan), r"after_s .* must be a finite number"),
    "extend: infinite seconds before": (extend(side="BEFORE", seconds=math.inf), r"before_s .* must be a finite"),
    "extend: nothing added": (extend(seconds=0.01), r"add nothing"),
    "regenerate: reversed range": (regenerate(30, 10), r"reversed"),
    "regenerate: outside the action": (regenerate(30, 500), r"outside the action"),
    "retarget: armature without bones": (press_retarget, r"Armature 'Empty Rig' has no bones", character(no_bones)),
    "retarget: unknown names, no arms (FBX)": (press_retarget, r"no bone found for l_shoulder, l_elbow, l_wrist, "
                                               r"r_shoulder, r_elbow, r_wrist; .*bone map.*preset",
                                               character(german_without_arms)),
    "retarget: source without action": (press_retarget, r"has no action to retarget", without_action),
    "bone map: not JSON": (load_map("broken.json"), r"is not valid JSON \(line 1\)", hero_with_map),
    "bone map: missing file": (load_map("none.json"), r"Cannot read bone-map preset", hero_with_map),
    "export: missing folder": (export_to("no/such/folder/out.fbx"), r"folder .* does not exist"),
    "export command: existing file": (export_joints_to("kept.fbx"), r"kept.fbx already exists: pass --overwrite"),
    "export command: unknown format": (export_joints_to("out.obj"), r"Unknown export format 'obj'"),
    "export command: bone map without target": (export_joints_to("out.fbx", bone_map_file="x.json"),
                                                r"--bone-map needs --target"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_loses_nothing(scene, case):
    context, source, tmp = scene
    call, message, *setup = CASES[case]
    for prepare in setup:
        prepare(context, source, tmp)
    if case.startswith("export command"):  # the command replaces the open file: compare the folder only
        before = sorted((p.name, p.read_bytes()) for p in tmp.iterdir() if p.is_file())
        with pytest.raises(BammInputError, match=message) as error:
            call(context, source, tmp)
        assert "\n" not in str(error.value)
        assert sorted((p.name, p.read_bytes()) for p in tmp.iterdir() if p.is_file()) == before
        return
    before = snapshot(tmp)
    with pytest.raises((BammInputError, RuntimeError)) as error:  # operators report: bpy.ops raises the report
        call(context, source, tmp)
    text = str(error.value).strip()
    if isinstance(error.value, RuntimeError):
        assert text.startswith("Error: "), text
        text = text[len("Error: "):]
        assert context.window_manager.bamm_error_kind == "input"
        assert context.window_manager.bamm_error == text
    assert "\n" not in text and "Traceback" not in text, text
    assert re.search(message, text), (message, text)
    after = snapshot(tmp)
    if case.startswith("retarget") and not before["bone_map"]:  # Retarget fills an empty map with what it found,
        assert len(after["bone_map"]) in (0, 22)  # for the user to complete (the message points there)
        before["bone_map"] = after["bone_map"]
    assert after == before


class Refusing:
    """A backend whose jobs end as the worker ends them: an input error (the request was wrong) or a failure."""

    def __init__(self, kind: str, message: str):
        self.kind, self.message = kind, message

    def submit(self, request):
        from bamm_blender import backend

        job = backend.Job(request)
        job.finish("error", error=self.message, kind=self.kind)
        return job


@pytest.mark.parametrize("kind, shown, level", [
    ("input", "the source joints hold NaN or infinite values", "input"),
    ("failure", "BAMM failed: RuntimeError: CUDA out of memory", "failure"),
])
def test_worker_errors_keep_their_kind_in_the_operator(scene, kind, shown, level):
    context, _source, tmp = scene
    message = shown.removeprefix("BAMM failed: ")
    context.scene.bamm.prompt, context.scene.bamm.length_mode = "a person walks", "SECONDS"
    before = snapshot(tmp)
    with headless.use_engine(headless.Engine(Refusing(kind, message), {"random": {}})):
        with pytest.raises(RuntimeError, match=re.escape(shown)):
            bpy.ops.bamm.generate("EXEC_DEFAULT")
    wm = context.window_manager
    assert (wm.bamm_error, wm.bamm_error_kind) == (shown, level)
    assert snapshot(tmp) == before and not wm.bamm_running
    assert bpy.ops.bamm.dismiss_error() == {"FINISHED"} and not wm.bamm_error


def test_an_internal_error_is_one_line_too(scene, monkeypatch, capsys):
    context, source, _tmp = scene
    context.scene.bamm_retarget.source = source
    context.scene.bamm_retarget.target = rigs.build_rig(context, "mixamo", name="Hero")
    monkeypatch.setattr(retarget_scene, "run_retarget", lambda _context: 1 / 0)
    with pytest.raises(RuntimeError, match=r"^Error: Internal error, please report it: ZeroDivisionError: division by "
                                           r"zero \(traceback in the console\)\n?$"):
        bpy.ops.bamm.retarget()
    assert context.window_manager.bamm_error_kind == "internal"
    assert "Traceback" in capsys.readouterr().err
