"""Generate, regenerate a range, extend, results, undo and bad input, through the add-on in real Blender.

Generation runs on an untrained tiny BAMM in this process (``InProcessBackend``), shared by the module.
"""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
torch = pytest.importorskip("torch")

import bamm_blender  # noqa: E402
from bamm_blender import backend, bake, headless, models, preferences, results  # noqa: E402
from bamm_blender.errors import BammCancelled, BammInputError  # noqa: E402

PROMPT = "a person walks forward"


@pytest.fixture(scope="module")
def model():
    from model_core.decoding.generate import BAMM

    return BAMM.random(preset="tiny", text_encoder="minilm", seed=0)


@pytest.fixture(scope="module")
def addon(model):
    bamm_blender.register()
    with headless.use_engine(headless.Engine(backend.InProcessBackend(model=model), {"random": {}})):
        yield
    bamm_blender.unregister()


@pytest.fixture
def ctx(addon):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context


def all_keys(obj, action) -> dict:
    """Every keyframe attribute of every armature F-curve, by (data path, index)."""
    container = bake.channels(action, obj)
    return {(fc.data_path, fc.array_index): bake._read_keys(fc.keyframe_points) for fc in container.fcurves}


def keys_on(keys: dict, keep) -> dict:
    """The keys whose frame passes ``keep(frame)``."""
    return {k: {a: v[keep(kv["co"][:, 0])] for a, v in kv.items()} for k, kv in keys.items()}


def assert_same_keys(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for channel in a:
        for attr in a[channel]:
            assert np.array_equal(a[channel][attr], b[channel][attr]), (channel, attr)


def generated(ctx, **kwargs):
    actions = headless.generate(ctx, prompt=PROMPT, seed=0, timeout=120, **kwargs)
    return ctx.scene.bamm.target, actions


def test_generate_makes_armature_with_predicted_length(ctx, model):
    obj, actions = generated(ctx)
    predicted = len(model.generate(PROMPT, seed=0)[0].joints)  # same seed, same motion
    assert obj.name == "BAMM Skeleton" and obj.animation_data.action == actions[0]
    first, last = bake.key_range(obj, actions[0])
    fps = bake.scene_fps(ctx.scene)
    assert first == ctx.scene.frame_start
    assert last - first + 1 == int(np.floor((predicted - 1) * fps / 20 + 1e-6)) + 1
    assert (ctx.scene.frame_start, ctx.scene.frame_end) == (first, last)
    assert actions[0][results.PROMPT_KEY] == PROMPT
    assert len(ctx.scene.bamm.results) == 1


def test_fixed_length_variations_preview_and_apply(ctx):
    obj, actions = generated(ctx, seconds=2.0, variations=3)
    settings = ctx.scene.bamm
    assert len(actions) == 3 and len(settings.results) == 3
    for action in actions:
        first, last = bake.key_range(obj, action)
        assert last - first + 1 == int(np.floor(39 * bake.scene_fps(ctx.scene) / 20 + 1e-6)) + 1
    settings.results_index = 2  # selecting a result previews it
    assert obj.animation_data.action == actions[2]
    names = [a.name for a in actions]
    kept = headless.apply_result(ctx, 2)
    assert kept.name == names[2] and obj.animation_data.action == kept and kept.users == 1
    assert names[0] not in bpy.data.actions and names[1] not in bpy.data.actions
    assert len(settings.results) == 0


def test_regenerate_range_keeps_every_key_outside(ctx):
    obj, (source,) = generated(ctx)
    before = all_keys(obj, source)
    first, last = 20, 40
    (edited,) = headless.regenerate_range(ctx, target=obj, first=first, last=last, prompt="jump", timeout=120)
    assert edited != source and obj.animation_data.action == edited
    after = all_keys(obj, edited)
    outside = lambda x: (x < first) | (x > last)  # noqa: E731
    assert_same_keys(keys_on(before, outside), keys_on(after, outside))
    assert_same_keys(before, all_keys(obj, source))  # the source action itself is untouched
    inside = keys_on(after, lambda x: (x >= first) & (x <= last))
    assert all(np.array_equal(v["co"][:, 0], np.arange(first, last + 1)) for v in inside.values())
    changed = [not np.allclose(v["co"], keys_on(before, lambda x: (x >= first) & (x <= last))[k]["co"])
               for k, v in inside.items()]
    assert any(changed)
    assert edited[results.PROMPT_KEY] == "jump"


def test_regenerate_sees_the_animators_edits(ctx):
    obj, (action,) = generated(ctx)
    stored = np.asarray(action[results.JOINTS_KEY], np.float32).reshape(-1, 22, 3)
    joints, first, last = results.source_joints(obj, action, ctx.scene)
    assert np.array_equal(joints, stored)  # unchanged keys: the exact model output
    unedited = bake.read_model_joints(obj, action, ctx.scene)
    fcurve = bake.channels(action, obj).fcurves.find('pose.bones["l_shoulder"].rotation_quaternion', index=1)
    point = fcurve.keyframe_points[12]  # scene frame 13 = model frame 10 at 24 fps
    point.co.y += 0.5
    fcurve.update()
    edited, _, _ = results.source_joints(obj, action, ctx.scene)  # changed keys: read back by FK
    np.testing.assert_allclose(edited, bake.read_model_joints(obj, action, ctx.scene), atol=1e-6)
    moved = np.linalg.norm(edited - unedited, axis=-1)[10]
    below = [18, 20]  # l_elbow, l_wrist: moved by the l_shoulder key
    assert moved[below].min() > 0.01
    assert np.delete(moved, below).max() < 1e-6


class Recording:
    """Passes requests to the module's backend and keeps them."""

    def __init__(self, inner):
        self.inner, self.requests = inner, []

    def submit(self, request):
        self.requests.append(request)
        return self.inner.submit(request)


@pytest.mark.parametrize("op", ["regenerate", "extend"])
def test_tokens_travel_while_the_motion_is_unchanged(ctx, op):
    obj, (action,) = generated(ctx)
    key = headless.model_key({"random": {}})
    stored = results.source(obj, action, ctx.scene, model=key)
    assert stored.tokens is not None and stored.tokens.shape == (-(-len(stored.joints) // 4), 3)  # tiny: Q = 3
    assert results.source(obj, action, ctx.scene, model=headless.model_key({"weights": "other"})).tokens is None
    runner = Recording(headless.backend_of(ctx))
    with headless.use_engine(headless.Engine(runner, {"random": {}})):
        def edit(target):
            if op == "regenerate":
                return headless.regenerate_range(ctx, target=target, first=10, last=30, timeout=120)
            return headless.extend(ctx, target=target, side="AFTER", seconds=1.0, timeout=120)

        (result,) = edit(obj)
        sent = runner.requests[-1].args
        np.testing.assert_array_equal(sent["source_tokens"], stored.tokens)
        np.testing.assert_array_equal(sent["source"], stored.joints)
        assert sent["source_prompt"] == action[results.PROMPT_KEY]  # a blank New Prompt: the source leads
        again = results.source(obj, result, ctx.scene, model=key)  # the result's own tokens, not its source's
        assert again.tokens is not None and len(again.tokens) == -(-len(again.joints) // 4)
        bake.assign_action(obj, action)
        fcurve = bake.channels(action, obj).fcurves.find('pose.bones["pelvis"].location', index=0)
        fcurve.keyframe_points[5].co.y += 0.2  # an animator's edit: the joints come from the keys, no tokens
        fcurve.update()
        edit(obj)
        assert "source_tokens" not in runner.requests[-1].args
        assert not np.array_equal(runner.requests[-1].args["source"], stored.joints)


@pytest.mark.parametrize("side", ["BEFORE", "AFTER"])
def test_extend_keeps_existing_keys(ctx, side):
    obj, (source,) = generated(ctx)
    before = all_keys(obj, source)
    first, last = bake.key_range(obj, source)
    (extended,) = headless.extend(ctx, target=obj, side=side, seconds=1.0, timeout=120)
    new_first, new_last = bake.key_range(obj, extended)
    fps = bake.scene_fps(ctx.scene)
    if side == "BEFORE":
        assert new_last == last and first - new_first == int(np.ceil(fps - 1e-6))
    else:
        assert new_first == first and new_last > last
    old_span = lambda x: (x >= first) & (x <= last)  # noqa: E731
    assert_same_keys(before, keys_on(all_keys(obj, extended), old_span))


def test_cancel_writes_nothing(ctx, model):
    obj, _ = generated(ctx)
    n_actions = len(bpy.data.actions)
    runner = headless.backend_of(ctx)
    with runner.lock:  # the job waits for the lock, so it is still queued when cancelled
        task = headless.start_regenerate(ctx, target=obj, first=10, last=30)
        task.job.cancel()
    with pytest.raises(BammCancelled):
        headless.finish(ctx, task)
    assert len(bpy.data.actions) == n_actions


def test_operators_are_one_undo_step_each(ctx):
    settings = ctx.scene.bamm
    settings.prompt = PROMPT
    bpy.ops.ed.undo_push(message="empty scene")
    # ("EXEC_DEFAULT", True): run with an undo push, as a button press does (scripts default to no push)
    assert bpy.ops.bamm.generate("EXEC_DEFAULT", True) == {"FINISHED"}
    assert "BAMM Skeleton" in bpy.data.objects
    source = bpy.data.objects["BAMM Skeleton"].animation_data.action.name
    settings.range_source, settings.range_start, settings.range_end = "MANUAL", 10, 30
    assert bpy.ops.bamm.regenerate_range("EXEC_DEFAULT", True) == {"FINISHED"}
    edited = bpy.data.objects["BAMM Skeleton"].animation_data.action.name
    assert edited != source
    bpy.ops.ed.undo()  # undo the regenerate: the source action is back, the edited one is gone
    assert bpy.data.objects["BAMM Skeleton"].animation_data.action.name == source
    assert edited not in bpy.data.actions
    bpy.ops.ed.undo()  # undo the generate
    assert "BAMM Skeleton" not in bpy.data.objects and source not in bpy.data.actions


def test_range_sources(ctx):
    scene = ctx.scene
    with pytest.raises(BammInputError, match="preview range is off"):
        headless.frame_range(ctx, "PREVIEW")
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 12, 30
    assert headless.frame_range(ctx, "PREVIEW") == (12, 30)
    for frame, select in ((40, True), (5, False), (25, True)):
        scene.timeline_markers.new(f"m{frame}", frame=frame).select = select
    assert headless.frame_range(ctx, "MARKERS") == (25, 40)
    assert headless.frame_range(ctx, "MANUAL", (3, 9)) == (3, 9)


@pytest.mark.parametrize("first, last, message", [
    (30, 20, "reversed"),
    (20, 22, "shorter than 4 frames"),
    (-10, 20, "outside the action"),
    (20, 5000, "outside the action"),
])
def test_bad_ranges(ctx, first, last, message):
    obj, _ = generated(ctx)
    with pytest.raises(BammInputError, match=message):
        headless.start_regenerate(ctx, target=obj, first=first, last=last)


def test_bad_input_through_plain_functions(ctx, tmp_path, monkeypatch):
    with pytest.raises(BammInputError, match="Type a prompt"):
        headless.start_generate(ctx, prompt="   ")
    with pytest.raises(BammInputError, match="No target armature"):
        headless.start_regenerate(ctx, target=None, first=1, last=20)
    obj, _ = generated(ctx)
    with pytest.raises(BammInputError, match="add nothing once rounded to whole tokens of 0.2 s: extend by at least 0.2 s"):
        headless.start_extend(ctx, target=obj, side="AFTER", seconds=0.05)
    obj.animation_data.action = None
    with pytest.raises(BammInputError, match="no action"):
        headless.start_extend(ctx, target=obj, side="AFTER", seconds=1.0)
    with headless.use_engine(headless.Engine(backend=headless.backend_of(ctx))):  # the preferences' weights
        monkeypatch.setattr(models, "RUNTIME_DIR", tmp_path / "no-runtime")
        with pytest.raises(BammInputError, match="No bundled runtime"):  # the default: the runtime back end
            headless.start_generate(ctx, prompt=PROMPT)
        monkeypatch.setattr(preferences.DEFAULTS, "backend", "WORKER")
        monkeypatch.setattr(preferences.DEFAULTS, "weights_dir", str(tmp_path))
        with pytest.raises(BammInputError, match="No BAMM weights"):
            headless.start_generate(ctx, prompt=PROMPT)


def test_bad_input_through_operators(ctx):
    objects, actions = len(bpy.data.objects), len(bpy.data.actions)
    ctx.scene.bamm.prompt = ""
    with pytest.raises(RuntimeError, match="Type a prompt"):
        bpy.ops.bamm.generate()
    with pytest.raises(RuntimeError, match="No armature selected"):
        bpy.ops.bamm.regenerate_range()
    obj, _ = generated(ctx)
    settings = ctx.scene.bamm
    settings.target, settings.range_source, settings.range_start, settings.range_end = obj, "MANUAL", 30, 10
    with pytest.raises(RuntimeError, match="reversed"):
        bpy.ops.bamm.regenerate_range()
    assert len(bpy.data.objects) == objects + 1 and len(bpy.data.actions) == actions + 1  # only generated()
