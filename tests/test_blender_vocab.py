"""The panel's vocabulary line under the prompt and the result list's mark for results made from a prompt
outside the model's vocabulary (drawn on the recording layout of test_blender_panels)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import bamm_blender  # noqa: E402
from bamm_blender import headless, panel, vocab  # noqa: E402
from test_blender_panels import FakeBackend, draw, labels_in  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


@pytest.fixture(scope="module")
def addon():
    bamm_blender.register()
    yield
    bamm_blender.unregister()


@pytest.fixture
def ctx(addon):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with headless.use_engine(headless.Engine(FakeBackend(), {"weights": str(WEIGHTS)})):
        yield bpy.context


def marks(calls) -> list[str]:
    return [bound.get("icon") for name, bound in calls if name == "label" and bound.get("icon") == "QUESTION"]


def test_the_line_under_the_prompt_follows_the_prompt(ctx):
    s = ctx.scene.bamm
    s.prompt = "a person sits down on a chair"
    text = " ".join(labels_in(draw(panel.BAMM_PT_main, ctx)))
    assert "not in this model's vocabulary: 'sits'," in text and "'bow', 'walk'" in text
    assert marks(draw(panel.BAMM_PT_main, ctx)) == ["QUESTION"]
    s.prompt = "a person walks forward and waves"
    assert "vocabulary" not in " ".join(labels_in(draw(panel.BAMM_PT_main, ctx)))
    s.prompt = ""
    assert not marks(draw(panel.BAMM_PT_main, ctx))


def test_results_made_from_such_a_prompt_are_marked(ctx):
    headless.generate(ctx, prompt="a person does a cartwheel", seconds=2.0, timeout=10)
    headless.generate(ctx, prompt="a person bows", seconds=2.0, timeout=10)
    items = ctx.scene.bamm.results
    assert items[0].vocab_note.startswith("not in this model's vocabulary: 'cartwheel'")
    assert items[1].vocab_note == ""
    assert marks(draw(panel.BAMM_PT_results, ctx)) == ["QUESTION"]


def test_an_open_vocabulary_model_shows_no_line(ctx, tmp_path):
    runtime = tmp_path / "published"
    runtime.mkdir()
    (runtime / "runtime.json").write_text(json.dumps({"text_encoder": "clip"}))
    with headless.use_engine(headless.Engine(FakeBackend(), {"backend": "onnx", "runtime": str(runtime)})):
        assert vocab.line("a person sits down on a chair") == ""
        ctx.scene.bamm.prompt = "a person sits down on a chair"
        assert not marks(draw(panel.BAMM_PT_main, ctx))
    assert vocab.line("a person sits down on a chair").startswith("not in this model's vocabulary")
