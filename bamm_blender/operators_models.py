"""The model list's operators (Preferences › Models): Import Published Model, Add Model Folder, Use, Remove.
Thin, like ``operators.py``: read the properties, call ``models``, report one line.

Import Published Model runs as a modal operator polling the import job (progress in the panel, like a
generation) when confirmed in its dialog; called from a script (``execute``, e.g.
``bpy.ops.bamm.import_published(t2m_path=..., ...)``, headless or not) it runs to the end before returning.
"""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import models
from .errors import reports_errors
from .operators import _redraw, _status


class BAMM_OT_import_published(bpy.types.Operator):
    """Import the published HumanML3D models (BAMM, MoMask, CLIP ViT-B/32 files you downloaded) as a new model
    for the bundled runtime: no torch needed. It becomes the active model"""

    bl_idname = "bamm.import_published"
    bl_label = "Import Published Model"
    bl_options = {"REGISTER"}

    t2m_path: StringProperty(name="BAMM Transformer", subtype="FILE_PATH",
                             description="BAMM's latest.tar (entry t2m_transformer)")
    res_path: StringProperty(name="Residual Transformer", subtype="FILE_PATH",
                             description="MoMask's tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw/model/net_best_fid.tar")
    vq_path: StringProperty(name="RVQ-VAE", subtype="FILE_PATH",
                            description="MoMask's rvq_nq6_dc512_nc512_noshare_qdp0.2/model/net_best_fid.tar (its "
                            "meta/mean.npy and std.npy are read from beside model/)")
    clip_path: StringProperty(name="CLIP ViT-B-32.pt", subtype="FILE_PATH",
                              description="OpenAI's ViT-B-32.pt (what clip.load('ViT-B/32') downloads)")
    name: StringProperty(name="Name", default="HumanML3D", description="The model's name in the list")
    precision: EnumProperty(
        name="Precision",
        items=[("INT8", "Fast (int8)", "Token transformers in int8: about 1.7x faster and 70 MB smaller; the "
                "motions differ slightly from the published code's"),
               ("FLOAT32", "Exact (float32)", "The published code's tokens for the same prompt and seed")],
        default="INT8")

    @classmethod
    def poll(cls, context):
        return not context.window_manager.bamm_running

    @reports_errors
    def execute(self, context):
        if getattr(self, "_dialog", False):  # confirmed in the dialog: in the background, progress in the panel
            return self.start_modal(context)
        name = models.import_published(context, **self._paths())
        self.report({"INFO"}, f"BAMM: imported '{name}', now the active model")
        return {"FINISHED"}

    def _paths(self) -> dict:
        return {"t2m_path": self.t2m_path, "res_path": self.res_path, "vq_path": self.vq_path,
                "clip_path": self.clip_path, "name": self.name, "precision": self.precision}

    def invoke(self, context, _event):
        self._dialog = True
        return context.window_manager.invoke_props_dialog(self, width=520)

    def draw(self, _context):
        col = self.layout.column()
        for prop in ("t2m_path", "res_path", "vq_path", "clip_path", "name", "precision"):
            col.prop(self, prop)

    @reports_errors
    def modal(self, context, event):
        wm = context.window_manager
        if wm.bamm_cancel or (event.type == "ESC" and event.value == "PRESS"):
            self._job.cancel()  # the import stops at its next step and removes what it wrote
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        if self._job.poll() == "running":
            wm.bamm_progress, wm.bamm_status = self._job.fraction, f"{self._job.stage} {self._job.fraction:.0%}"
            _status(context, f"BAMM import: {wm.bamm_status} (Esc to cancel)")
            _redraw(context)
            return {"PASS_THROUGH"}
        wm.event_timer_remove(self._timer)
        wm.bamm_running, wm.bamm_cancel, wm.bamm_status = False, False, ""
        _status(context, None)
        _redraw(context)
        self._job.wait(0)  # the job's error, raised as one line
        name = models.finish_import(context, self._job, self._folder)
        self.report({"INFO"}, f"BAMM: imported '{name}', now the active model")
        return {"FINISHED"}

    def start_modal(self, context):
        self._job, _name, self._folder = models.start_import(context, **self._paths())
        wm = context.window_manager
        wm.bamm_running, wm.bamm_cancel, wm.bamm_progress, wm.bamm_status = True, False, 0.0, "Importing"
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}


class BAMM_OT_model_add_folder(bpy.types.Operator):
    """Add a runtime folder (one with runtime.json) to the model list and make it active"""

    bl_idname = "bamm.model_add_folder"
    bl_label = "Add Model Folder"
    bl_options = {"REGISTER"}

    directory: StringProperty(subtype="DIR_PATH")

    def invoke(self, context, _event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    @reports_errors
    def execute(self, context):
        name = models.add_folder(context, self.directory)
        self.report({"INFO"}, f"BAMM: added '{name}', now the active model")
        return {"FINISHED"}


class _ModelIndexOperator:
    """An operator on entry `index` of the model list (-1: the shipped model): `work(context, index)` returns
    the line reported."""

    bl_options = {"REGISTER"}

    index: IntProperty(default=-1)

    @reports_errors
    def execute(self, context):
        self.report({"INFO"}, f"BAMM: {type(self).work(context, self.index)}")
        return {"FINISHED"}


class BAMM_OT_model_remove(_ModelIndexOperator, bpy.types.Operator):
    """Remove the selected model: an imported model's files are deleted, an added folder is only forgotten"""

    bl_idname = "bamm.model_remove"
    bl_label = "Remove Model"
    work = staticmethod(models.remove)


class BAMM_OT_model_activate(_ModelIndexOperator, bpy.types.Operator):
    """Use this model for every generation (-1: the shipped model)"""

    bl_idname = "bamm.model_activate"
    bl_label = "Use Model"
    work = staticmethod(models.activate)


CLASSES = (BAMM_OT_import_published, BAMM_OT_model_add_folder, BAMM_OT_model_remove, BAMM_OT_model_activate)
register, unregister = bpy.utils.register_classes_factory(CLASSES)
