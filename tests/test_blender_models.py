"""The add-on's model list (Preferences › Models, `bamm_blender/models.py`) in Blender: Import Published Model
from small templates, the active model handed to the worker, cancelling, adding and removing folders, and the
one-line errors of bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("onnxruntime")

from bamm_blender import backend, headless, models, preferences  # noqa: E402
from bamm_blender.errors import BammCancelled, BammInputError  # noqa: E402


@pytest.fixture
def addon(monkeypatch, tmp_path, small_templates):
    monkeypatch.setattr(backend, "_BACKENDS", {})
    monkeypatch.setattr(models, "TEMPLATES_DIR", small_templates)
    monkeypatch.setattr(models, "user_models_dir", lambda: tmp_path / "models")
    (tmp_path / "models").mkdir()
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "runtime.json").write_text("{}")  # stands in for the zip's runtime/
    monkeypatch.setattr(models, "RUNTIME_DIR", tmp_path / "shipped")
    assert bpy.ops.preferences.addon_enable(module=preferences.ADDON_ID) == {"FINISHED"}
    prefs = preferences.get(bpy.context)
    try:
        yield prefs
    finally:
        prefs.models.clear()
        prefs.active_model = ""
        bpy.ops.preferences.addon_disable(module=preferences.ADDON_ID)


def _paths(files, **override):
    return {"t2m_path": str(files["t2m"]), "res_path": str(files["res"]), "vq_path": str(files["vq"]),
            "clip_path": str(files["clip"]), **override}


def test_import_activates_the_model_and_the_worker_gets_its_folder(addon, small_checkpoints, tmp_path):
    result = bpy.ops.bamm.import_published(name="Everyday", precision="INT8", **_paths(small_checkpoints))
    assert result == {"FINISHED"}
    (item,) = addon.models
    folder = tmp_path / "models" / "Everyday"
    assert (item.name, item.folder, item.written_by_addon) == ("Everyday", str(folder), True)
    assert addon.active_model == str(folder) and models.active_name(bpy.context) == "Everyday"
    assert "non-commercial" in item.licence and item.size_mb > 1
    assert headless.model_spec(bpy.context)["runtime"] == str(folder)
    assert headless.limits(headless.model_spec(bpy.context)).max_frames == 196
    assert json.loads((folder / "runtime.json").read_text())["about"]["name"] == "Everyday"
    assert bpy.ops.bamm.model_activate(index=-1) == {"FINISHED"}
    assert models.active_name(bpy.context) == models.SHIPPED_NAME
    assert headless.model_spec(bpy.context)["runtime"] == str(models.RUNTIME_DIR)
    assert bpy.ops.bamm.model_remove(index=0) == {"FINISHED"}
    assert not folder.exists() and len(addon.models) == 0


def test_cancelled_import_leaves_nothing(addon, small_checkpoints, tmp_path):
    job, _name, folder = models.start_import(bpy.context, name="Cancelled", **_paths(small_checkpoints))
    job.cancel()
    with pytest.raises(BammCancelled):
        job.wait(60)
    deadline = time.time() + 60
    while any((tmp_path / "models").iterdir()) and time.time() < deadline:  # the thread stops at its next step
        time.sleep(0.1)
    assert list((tmp_path / "models").iterdir()) == [] and len(addon.models) == 0


def test_added_folder_is_only_forgotten_on_removal(addon, small_checkpoints, small_templates, tmp_path):
    from model_core.runtime.published import import_published

    outside = tmp_path / "elsewhere" / "mine"
    import_published(t2m=small_checkpoints["t2m"], res=small_checkpoints["res"], vq=small_checkpoints["vq"],
                     clip=small_checkpoints["clip"], out=outside, templates=small_templates, name="Mine")
    assert bpy.ops.bamm.model_add_folder(directory=str(outside)) == {"FINISHED"}
    assert addon.models[0].written_by_addon is False and models.active_name(bpy.context) == "Mine"
    assert bpy.ops.bamm.model_remove(index=0) == {"FINISHED"}
    assert (outside / "runtime.json").is_file() and models.active_name(bpy.context) == models.SHIPPED_NAME


@pytest.mark.parametrize("case, override, pattern", [
    ("missing", {"t2m_path": "/nowhere/latest.tar"}, "BAMM transformer file not found: /nowhere/latest.tar"),
    ("empty", {"clip_path": ""}, r"CLIP ViT-B-32.pt file not found: \(not given\)"),
    ("name", {"name": "../../etc"}, "use letters, digits"),
])
def test_bad_input_is_one_line(addon, small_checkpoints, tmp_path, case, override, pattern):
    with pytest.raises(BammInputError, match=pattern) as error:
        models.start_import(bpy.context, **{"name": "Model", **_paths(small_checkpoints, **override)})
    assert "\n" not in str(error.value) and list((tmp_path / "models").iterdir()) == []


def test_a_refused_file_is_reported_through_the_operator(addon, small_checkpoints, tmp_path):
    bad = tmp_path / "latest.tar"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RuntimeError, match="latest.tar: truncated or damaged zip archive"):
        bpy.ops.bamm.import_published(name="Bad", **_paths(small_checkpoints, t2m_path=str(bad)))
    assert list((tmp_path / "models").iterdir()) == [] and len(addon.models) == 0
    assert "latest.tar" in bpy.context.window_manager.bamm_error


def test_preferences_draw_the_model_list(addon, small_checkpoints):
    bpy.ops.bamm.import_published(name="Drawn", **_paths(small_checkpoints))
    assert isinstance(Path(addon.models[0].folder), Path)
    rna = preferences.BAMM_Preferences.bl_rna.properties
    assert {"models", "models_index", "active_model"} <= set(rna.keys())
