"""The long-sequence mode in Blender (bpy module): markers -> segments -> one plan job on the in-process back end
(a tiny random model) -> one baked action from the first marker; markers laid out from a prompt's plan; bad
markers give one-line errors and change nothing."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("torch")

import bamm_blender  # noqa: E402
from bamm_blender import backend, headless, panel, sequence  # noqa: E402
from bamm_blender.errors import BammInputError  # noqa: E402

TINY = {"random": {"preset": "tiny", "text_encoder": "minilm", "seed": 0}}


@pytest.fixture(scope="module")
def addon():
    bamm_blender.register()
    with headless.use_engine(headless.Engine(backend.InProcessBackend(), TINY)):
        yield
    bamm_blender.unregister()


@pytest.fixture
def scene(addon):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.frame_start, scene.frame_end = 24, 1, 120
    return scene


def test_markers_become_one_motion(scene):
    scene.bamm.sequence_person = "an old man"
    scene.frame_end = 130
    for frame, name in ((11, "walks forward while waving the right hand"), (71, "bows")):
        scene.timeline_markers.new(name, frame=frame)
    plan = sequence.plan_of_segments(scene, scene.bamm.sequence_person)
    assert [(s["prompt"], s["together"]) for s in plan["steps"]] == [
        ("an old man walks forward", "an old man waves the right hand"), ("an old man bows", None)]
    assert [s["seconds"] for s in plan["steps"]] == [2.5, 2.5]
    (action,) = sequence.generate_sequence(bpy.context, seed=1, timeout=300)
    first, last = action.frame_range
    assert first == 11 and last == 11 + (96 - 1) * 24 / 20  # 2 x 48 model frames (whole tokens of 2.5 s) at 24 fps
    assert "bows" in action.name or "walks" in action.name


@pytest.mark.parametrize("markers, message", [
    ((), "Add timeline markers"), (((5, "F_05"),), "has no prompt"),
    (((1, "walks"), (300, "bows")), r"Segment 'a person walks' \(12.46 s\): 'seconds' must be a finite number in "
                                    r"\[0.2, 9.8\], got 12.458"),
])
def test_bad_markers_are_refused(scene, markers, message):
    scene.frame_end = 400 if len(markers) == 2 else 120
    for frame, name in markers:
        scene.timeline_markers.new(name, frame=frame)
    with pytest.raises(BammInputError, match=message):
        sequence.start_sequence(bpy.context)
    assert len(bpy.data.actions) == 0


def test_markers_from_prompt(scene):
    made = sequence.markers_from_prompt(bpy.context, "an elderly person walks forward and waves with the right "
                                                     "hand, then bows", seconds=2.0)
    assert [(m.frame, m.name) for m in made] == [(1, "walks forward while waves with the right hand"),
                                                 (49, "bows")]
    assert scene.bamm.sequence_person == "an elderly person"
    plan = sequence.plan_of_segments(scene, scene.bamm.sequence_person)
    assert plan["steps"][0]["together"] == "an elderly person waves with the right hand"
    with pytest.raises(BammInputError, match="already has timeline markers"):
        sequence.markers_from_prompt(bpy.context, "a person bows")
    assert len(scene.timeline_markers) == 2


@pytest.mark.parametrize("state", ["empty", "prompt", "markers"])
def test_sequence_panel_draws(scene, state):
    from test_blender_panels import draw, labels_in, operators_in, props_in  # the recording stand-in layout

    if state != "empty":
        scene.bamm.prompt = "a man walks forward, then bows"
    if state == "markers":
        sequence.markers_from_prompt(bpy.context, scene.bamm.prompt)
    calls = draw(panel.BAMM_PT_sequence, bpy.context)
    assert "bamm.generate_sequence" in operators_in(calls)
    assert ("bamm.markers_from_prompt" in operators_in(calls)) == (state != "empty")
    labels = " ".join(labels_in(calls))
    assert ("1. a man walks forward" in labels) == (state != "empty")
    assert props_in(calls).count("name") == (2 if state == "markers" else 0)


def test_operators_report_bad_markers_in_one_line(scene):
    """The operators (``operators.py``, ``errors.reports_errors``): a bad input is one report line, no action."""
    with pytest.raises(RuntimeError, match=r"^Error: Add timeline markers"):
        bpy.ops.bamm.generate_sequence("EXEC_DEFAULT")
    assert bpy.context.window_manager.bamm_error_kind == "input" and len(bpy.data.actions) == 0
    scene.bamm.prompt = "a man walks forward, then bows"
    assert bpy.ops.bamm.markers_from_prompt(seconds=2.0) == {"FINISHED"}
    assert [m.name for m in sorted(scene.timeline_markers, key=lambda m: m.frame)] == ["walks forward", "bows"]
    with pytest.raises(RuntimeError, match=r"^Error: The scene already has timeline markers"):
        bpy.ops.bamm.markers_from_prompt(seconds=2.0)
    assert len(scene.timeline_markers) == 2
