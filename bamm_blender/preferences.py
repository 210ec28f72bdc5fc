"""Add-on preferences: weights, text encoder, device, backend and the worker's Python."""

from __future__ import annotations

from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

ADDON_ID = __package__.rpartition(".")[0] or __package__  # the extension (or this package when top level)

DEFAULTS = SimpleNamespace(weights_dir="", text_encoder="WEIGHTS", clip_path="", device="AUTO", int8=False,
                           backend="AUTO", python_path="")


class BAMM_Preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    weights_dir: StringProperty(
        name="Weights Folder", subtype="DIR_PATH", default="",
        description="Folder with bamm.json and the .safetensors files (empty: the weights shipped with the "
        "extension)",
    )
    text_encoder: EnumProperty(
        name="Text Encoder",
        items=[  # numbered: preferences saved by earlier versions keep meaning the same item
            ("WEIGHTS", "As Trained", "The encoder named in the weights' bamm.json (the shipped weights: MiniLM "
             "with word-piece features)", 2),
            ("MINILM", "MiniLM", "all-MiniLM-L6-v2 sentence embeddings (for weights trained with 'minilm')", 0),
            ("CLIP", "CLIP File", "OpenAI CLIP ViT-B/32 from the file below (for weights trained with CLIP)", 1),
        ],
        default="WEIGHTS",
    )
    clip_path: StringProperty(name="CLIP File", subtype="FILE_PATH", default="",
                              description="ViT-B-32.pt (empty: $BAMM_CLIP_PATH or ~/.cache/clip/ViT-B-32.pt)")
    device: EnumProperty(
        name="Device",
        items=[("AUTO", "Auto", "CUDA, then Apple MPS, then CPU"), ("CPU", "CPU", ""), ("CUDA", "CUDA", ""),
               ("MPS", "MPS", "Apple Metal")],
        default="AUTO",
    )
    int8: BoolProperty(
        name="Int8 on CPU", default=False,
        description="Decode with int8 token transformers when generating on the CPU: about 1.8x faster for "
        "paper-size weights, results differ slightly from float32",
    )
    backend: EnumProperty(
        name="Backend",
        items=[
            ("AUTO", "Auto", "In Blender when torch imports there, else the worker process"),
            ("IN_PROCESS", "In Blender", "A background thread in Blender's Python (needs torch installed there)"),
            ("WORKER", "Worker Process", "A separate Python with torch, started on the first request"),
        ],
        default="AUTO",
    )
    python_path: StringProperty(name="Worker Python", subtype="FILE_PATH", default="",
                                description="Python interpreter with torch for the worker (e.g. a .venv's python)")

    def draw(self, _context) -> None:
        layout = self.layout
        layout.prop(self, "weights_dir")
        layout.prop(self, "text_encoder")
        if self.text_encoder == "CLIP":
            layout.prop(self, "clip_path")
        layout.prop(self, "device")
        row = layout.row()
        row.active = self.device in ("AUTO", "CPU")
        row.prop(self, "int8")
        layout.prop(self, "backend")
        row = layout.row()
        row.active = self.backend != "IN_PROCESS"
        row.prop(self, "python_path")


def get(context=None):
    """The preferences, or the defaults when the add-on is registered without being enabled (scripts)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None and addon.preferences is not None else DEFAULTS


def register() -> None:
    bpy.utils.register_class(BAMM_Preferences)


def unregister() -> None:
    bpy.utils.unregister_class(BAMM_Preferences)
