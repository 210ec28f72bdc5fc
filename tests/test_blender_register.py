"""Registering the add-on in real Blender (bpy module), and the extension's root shim."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import bamm_blender  # noqa: E402
from bamm_blender import (backend, core, headless, models, operators, operators_models, panel,  # noqa: E402
                          preferences, props)
from bamm_blender.errors import BammBackendError, BammInputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OPERATORS = ("generate", "regenerate_range", "extend", "cancel", "dismiss_error", "apply_result", "clear_results",
             "generate_sequence", "markers_from_prompt", "import_published", "model_add_folder", "model_remove",
             "model_activate")


def registered() -> dict[str, bool]:
    return {
        "settings": hasattr(bpy.types.Scene, "bamm"),
        "status": hasattr(bpy.types.WindowManager, "bamm_progress"),
        "panel": hasattr(bpy.types, "BAMM_PT_main"),
        "list": hasattr(bpy.types, "BAMM_UL_results"),
        "preferences": preferences.BAMM_Preferences.is_registered,
        "classes": [c.is_registered for c in props.CLASSES + operators.CLASSES + operators_models.CLASSES
                    + panel.CLASSES + preferences.CLASSES],
        **{op: hasattr(bpy.ops.bamm, op) and hasattr(bpy.types, f"BAMM_OT_{op}") for op in OPERATORS},
    }


def test_register_unregister_twice():
    assert not registered()["settings"]
    for _ in range(2):
        bamm_blender.register()
        assert all(v if not isinstance(v, list) else all(v) for v in registered().values()), registered()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        settings = bpy.context.scene.bamm
        assert (settings.seed, settings.variations, settings.cfg_ar, settings.cfg_refine) == (0, 1, 2.0, 1.0)
        assert settings.length_mode == "AUTO" and settings.range_source == "PREVIEW"
        bamm_blender.unregister()
        assert not any(v if not isinstance(v, list) else any(v) for v in registered().values()), registered()


def test_panel_layout_in_the_sidebar():
    assert (panel.BAMM_PT_main.bl_space_type, panel.BAMM_PT_main.bl_region_type) == ("VIEW_3D", "UI")
    assert panel.BAMM_PT_main.bl_category == "BAMM"
    assert {p.bl_parent_id for p in (panel.BAMM_PT_edit, panel.BAMM_PT_results)} == {"BAMM_PT_main"}
    for cls in operators.CLASSES[:3]:
        assert {"REGISTER", "UNDO"} <= cls.bl_options


def test_preferences_defaults_without_enabling():
    bamm_blender.register()
    try:
        prefs = preferences.get(bpy.context)  # registered by hand, not enabled: the defaults
        assert prefs is preferences.DEFAULTS
        assert (prefs.text_encoder, prefs.device, prefs.backend) == ("WEIGHTS", "AUTO", "RUNTIME")
        assert prefs.weights_dir == prefs.python_path == ""
        rna = preferences.BAMM_Preferences.bl_rna.properties
        for name in ("weights_dir", "text_encoder", "clip_path", "device", "int8", "backend", "python_path"):
            assert name in rna
        encoders = rna["text_encoder"]
        assert encoders.default == "WEIGHTS"  # the weights name their encoder; an override is a choice
        # preferences store the item's number: saved ones keep meaning what they meant before the reorder
        assert {e.identifier: e.value for e in encoders.enum_items} == {"MINILM": 0, "CLIP": 1, "WEIGHTS": 2}
        assert props.BAMM_Settings.bl_rna.properties["results"].fixed_type.identifier == "BAMM_Result"
        # saved preferences store the item's number: 0 was 'Auto' (torch in Blender, else a worker) and now
        # means the bundled runtime; the torch choices keep theirs
        backends = rna["backend"]
        assert backends.default == "RUNTIME"
        assert {e.identifier: e.value for e in backends.enum_items} == {"RUNTIME": 0, "IN_PROCESS": 1, "WORKER": 2}
    finally:
        bamm_blender.unregister()


def test_enabled_add_on_defaults_to_the_bundled_runtime(monkeypatch, tmp_path):
    """Enabled like an installed add-on, untouched preferences pick the runtime worker (Blender's own Python,
    the wheels' folders on its PYTHONPATH) and the bundled runtime folder."""
    monkeypatch.setattr(backend, "_BACKENDS", {})
    assert bpy.ops.preferences.addon_enable(module=preferences.ADDON_ID) == {"FINISHED"}
    try:
        prefs = preferences.get(bpy.context)
        assert prefs is not preferences.DEFAULTS and prefs.backend == "RUNTIME" and prefs.python_path == ""
        runner = headless.get_backend(bpy.context)
        assert isinstance(runner, backend.WorkerBackend) and runner.python == sys.executable
        for package in backend.WHEEL_PACKAGES:
            origin = Path(importlib.util.find_spec(package).origin).resolve()
            assert any(origin.is_relative_to(folder) for folder in runner.paths), (package, runner.paths)
        assert not runner.alive()  # started on the first request only
        runtime = tmp_path / "runtime"
        monkeypatch.setattr(models, "RUNTIME_DIR", runtime)
        with pytest.raises(BammInputError, match="No bundled runtime.*zip built for your platform"):
            headless.model_spec(bpy.context)
        runtime.mkdir()
        (runtime / "runtime.json").write_text("{}")
        spec = headless.model_spec(bpy.context)
        assert spec == {"backend": "onnx", "runtime": str(runtime), "device": "auto"}
        prefs.backend = "WORKER"
        with pytest.raises(BammBackendError, match="No worker Python is set"):
            headless.get_backend(bpy.context)
        assert headless.model_spec(bpy.context)["weights"] == str(core.WEIGHTS_DIR)
    finally:
        prefs.backend = "RUNTIME"
        bpy.ops.preferences.addon_disable(module=preferences.ADDON_ID)
    assert not registered()["settings"]


@pytest.mark.parametrize("files, frames", [
    ({"bamm.json": {"max_frames": 120}}, 120),
    ({"runtime.json": {"nets": {"max_tokens": 31, "frames_per_token": 4, "fps": 20.0}}}, 120),  # 30 motion tokens + [END]
    ({"runtime.json": {"nets": {"max_tokens": 21, "frames_per_token": 4, "fps": 20.0}}, "bamm.json": {"max_frames": 120}}, 80),
    ({"runtime.json": {"format_version": 1}}, core.DEFAULT_MAX_FRAMES),
    ({"bamm.json": {"fps": 20}}, core.DEFAULT_MAX_FRAMES),
    ({}, core.DEFAULT_MAX_FRAMES),
])
def test_frame_limit_from_a_model_config(tmp_path, files, frames):
    for name, config in files.items():
        (tmp_path / name).write_text(json.dumps(config))
    assert core.max_frames(tmp_path) == frames


def test_seconds_fields_stop_at_the_shipped_limit():
    shipped = json.loads((ROOT / "weights" / "bamm.json").read_text())["max_frames"]
    assert core.max_frames() == shipped == 196
    bamm_blender.register()
    try:
        for name in ("seconds", "extend_seconds"):
            assert props.BAMM_Settings.bl_rna.properties[name].hard_max == pytest.approx(shipped / 20.0)
    finally:
        bamm_blender.unregister()


def test_seconds_over_the_limit_is_refused():
    bamm_blender.register()
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        settings = bpy.context.scene.bamm
        settings.seconds = 10.0  # clamped by the property
        assert settings.seconds == pytest.approx(core.max_seconds())
        engine = headless.Engine(spec={"weights": str(ROOT / "weights")})
        with pytest.raises(BammInputError, match=r"10 s is over the model's limit of 9.8 s \(196 frames\)"):
            headless.start_generate(bpy.context, prompt="walk", seconds=10.0, engine=engine)
    finally:
        bamm_blender.unregister()


def test_root_shim_is_harmless_outside_a_package():
    spec = importlib.util.spec_from_file_location("extension_root", ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # nothing registered on import
    assert callable(module.register) and callable(module.unregister)
    assert not registered()["settings"]
    with pytest.raises(ImportError):
        module.register()  # a relative import: only works inside the extension package
