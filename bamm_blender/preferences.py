"""Add-on preferences: the models (the shipped one and added runtime folders, one active; `models.py`), the
back end (bundled runtime by default), the own-Python worker's interpreter, and for the torch back ends the
weights and text encoder; the device for all."""

from __future__ import annotations

from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .core import has_runtime

ADDON_ID = __package__.rpartition(".")[0] or __package__  # the extension (or this package when top level)

DEFAULTS = SimpleNamespace(weights_dir="", text_encoder="WEIGHTS", clip_path="", device="AUTO", int8=False,
                           backend="RUNTIME", python_path="", active_model="")


class BAMM_ModelItem(bpy.types.PropertyGroup):
    """An added model: a runtime folder (an imported published model, or one the user added)."""

    name: StringProperty(name="Name")
    folder: StringProperty(name="Folder", subtype="DIR_PATH")
    source: StringProperty(name="Made From")
    licence: StringProperty(name="Licence")
    size_mb: FloatProperty(name="Size (MB)")
    written_by_addon: BoolProperty(name="Imported", description="The add-on wrote this folder: removing the "
                                   "model deletes the files it wrote")


class BAMM_UL_models(bpy.types.UIList):
    def draw_item(self, context, layout, _data, item, _icon, _active_data, _active_prop, _index=0, _flt_flag=0):
        active = get(context).active_model == item.folder
        row = layout.row(align=True)
        row.label(text=item.name, icon="CHECKMARK" if active else "BLANK1")
        row.label(text=f"{item.size_mb:.0f} MB")


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
    models: CollectionProperty(type=BAMM_ModelItem)
    models_index: IntProperty(default=-1)
    active_model: StringProperty(name="Active Model", default="",
                                 description="The active model's runtime folder (empty: the shipped model)")

    def draw(self, context) -> None:
        layout = self.layout
        _draw_models(self, layout.box())
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


def _draw_models(self, box) -> None:
    """Preferences › Models: the shipped model, the added ones, which one is active, import / add / remove."""
    from .models import SHIPPED_LICENCE, SHIPPED_NAME, SHIPPED_SOURCE

    box.label(text="Models", icon="ARMATURE_DATA")
    row = box.row(align=True)
    row.label(text=SHIPPED_NAME, icon="CHECKMARK" if not self.active_model else "BLANK1")
    row.operator("bamm.model_activate", text="Use").index = -1
    row = box.row()
    row.template_list("BAMM_UL_models", "", self, "models", self, "models_index", rows=3)
    col = row.column(align=True)
    col.operator("bamm.import_published", text="", icon="IMPORT")
    col.operator("bamm.model_add_folder", text="", icon="FILE_FOLDER")
    col.operator("bamm.model_remove", text="", icon="REMOVE").index = self.models_index
    col.operator("bamm.model_activate", text="", icon="CHECKMARK").index = self.models_index
    if 0 <= self.models_index < len(self.models):
        item = self.models[self.models_index]
        source, licence, folder = item.source, item.licence, item.folder
    else:
        source, licence, folder = SHIPPED_SOURCE, SHIPPED_LICENCE, ""
    col = box.column(align=True)
    for label, text in (("Made from", source), ("Licence", licence), ("Folder", folder)):
        if text:
            col.label(text=f"{label}: {text}")



def get(context=None):
    """The preferences, or the defaults when the add-on is registered without being enabled (scripts)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None and addon.preferences is not None else DEFAULTS


CLASSES = (BAMM_ModelItem, BAMM_UL_models, BAMM_Preferences)
register, unregister = bpy.utils.register_classes_factory(CLASSES)
