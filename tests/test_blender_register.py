"""Registering the add-on in real Blender (bpy module), and the extension's root shim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import bamm_blender  # noqa: E402
from bamm_blender import headless, operators, panel, preferences, props  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OPERATORS = ("generate", "regenerate_range", "extend", "cancel", "apply_result", "clear_results")


def registered() -> dict[str, bool]:
    return {
        "settings": hasattr(bpy.types.Scene, "bamm"),
        "status": hasattr(bpy.types.WindowManager, "bamm_progress"),
        "panel": hasattr(bpy.types, "BAMM_PT_main"),
        "list": hasattr(bpy.types, "BAMM_UL_results"),
        "preferences": preferences.BAMM_Preferences.is_registered,
        "classes": [c.is_registered for c in props.CLASSES + operators.CLASSES + panel.CLASSES],
        **{op: hasattr(bpy.ops.bamm, op) and hasattr(bpy.types, f"BAMM_OT_{op}") for op in OPERATORS},
    }


def test_register_unregister_twice():
    assert not registered()["settings"]
    for _ in range(2):
        bamm_blender.register()
        assert all(v if not isinstance(v, list) else all(v) for v in registered().values()), registered()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        settings = bpy.context.scene.bamm
        assert (settings.seed, settings.variations, settings.cfg_ar, settings.cfg_refine) == (0, 1, 4.0, 3.0)
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
        assert (prefs.text_encoder, prefs.device, prefs.backend, prefs.weights_dir) == ("WEIGHTS", "AUTO", "AUTO", "")
        assert headless.model_spec(bpy.context)["int8"] is False
        rna = preferences.BAMM_Preferences.bl_rna.properties
        for name in ("weights_dir", "text_encoder", "clip_path", "device", "int8", "backend", "python_path"):
            assert name in rna
        encoders = rna["text_encoder"]
        assert encoders.default == "WEIGHTS"  # the weights name their encoder; an override is a choice
        # preferences store the item's number: saved ones keep meaning what they meant before the reorder
        assert {e.identifier: e.value for e in encoders.enum_items} == {"MINILM": 0, "CLIP": 1, "WEIGHTS": 2}
        assert props.BAMM_Settings.bl_rna.properties["results"].fixed_type.identifier == "BAMM_Result"
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
