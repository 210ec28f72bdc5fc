"""Add-on preferences: the back end (bundled runtime by default), the own-Python worker's interpreter, and for
the torch back ends the weights and text encoder; the device for all."""

from __future__ import annotations

from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from .core import has_runtime

ADDON_ID = __package__.rpartition(".")[0] or __package__  # the extension (or this package when top level)

DEFAULTS = SimpleNamespace(weights_dir="", text_encoder="WEIGHTS", clip_path="", device="AUTO", int8=False,
                           backend="RUNTIME", python_path="")


class BAMM_Preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    weights_dir: StringProperty(
        name="Weights Folder", subtype="DIR_PATH", default="",
        description="Torch back ends: folder with bamm.json and the .safetensors files, e.g. a source "
        "checkout's weights/ (empty: a weights/ folder next to the add-on; the extension zip carries none)",
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
        items=[("AUTO", "Auto", "A GPU when one is usable (CUDA, Apple MPS, or a GPU provider of ONNX Runtime), "
                "else the CPU"),
               ("CPU", "CPU", ""), ("CUDA", "CUDA", "An NVIDIA GPU"), ("MPS", "MPS", "Apple Metal (torch back ends)")],
        default="AUTO",
    )
    int8: BoolProperty(
        name="Int8 on CPU", default=False,
        description="Decode with int8 token transformers when generating on the CPU: about 1.8x faster for "
        "paper-size weights, results differ slightly from float32",
    )
    backend: EnumProperty(
        name="Back End",
        items=[  # numbered: preferences saved by earlier versions keep a valid item
            ("RUNTIME", "Bundled Runtime", "ONNX Runtime shipped with the extension, in a separate process started "
             "with Blender's own Python: nothing to install", 0),
            ("WORKER", "Own Python (torch)", "A separate Python with torch that you pick below: for a GPU (CUDA "
             "torch) or weights larger than the shipped ones", 2),
            ("IN_PROCESS", "Torch in Blender", "A background thread in Blender's Python (needs torch installed "
             "there)", 1),
        ],
        default="RUNTIME",
    )
    python_path: StringProperty(name="Worker Python", subtype="FILE_PATH", default="",
                                description="Python interpreter with torch for the Own Python back end (e.g. a "
                                "virtual environment's python)")

    def draw(self, _context) -> None:
        layout = self.layout
        layout.prop(self, "backend")
        torch_backend = self.backend != "RUNTIME"
        if self.backend == "WORKER":
            row = layout.row()
            row.alert = not self.python_path
            row.prop(self, "python_path")
        elif self.backend == "RUNTIME" and not has_runtime():
            layout.label(text="No bundled runtime in this installation: install the zip for your platform",
                         icon="ERROR")
        col = layout.column()
        col.active = torch_backend
        col.prop(self, "weights_dir")
        col.prop(self, "text_encoder")
        if self.text_encoder == "CLIP":
            col.prop(self, "clip_path")
        layout.prop(self, "device")
        row = layout.row()
        row.active = torch_backend and self.device in ("AUTO", "CPU")
        row.prop(self, "int8")


def get(context=None):
    """The preferences, or the defaults when the add-on is registered without being enabled (scripts)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None and addon.preferences is not None else DEFAULTS


def register() -> None:
    bpy.utils.register_class(BAMM_Preferences)


def unregister() -> None:
    bpy.utils.unregister_class(BAMM_Preferences)
