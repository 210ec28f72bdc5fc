"""Scene settings of the BAMM panel (``scene.bamm``) and the job status (``window_manager.bamm_*``).

Settings live on the scene (saved, undoable); the running job's progress and the last job's error live on the
window manager (not saved, not part of undo).
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .core import max_seconds

MAX_SECONDS = max_seconds()  # the bundled model's frame limit (196 frames = 9.8 s at 20 fps)


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


def _preview_active(self, context) -> None:
    from . import headless  # late: headless imports this module

    if 0 <= self.results_index < len(self.results):
        headless.preview_result(context, self.results_index, scene=self.id_data)


class BAMM_Result(bpy.types.PropertyGroup):
    """One generated motion, baked into its own action."""

    action: PointerProperty(type=bpy.types.Action, name="Action")
    target: PointerProperty(type=bpy.types.Object, name="Armature")
    prompt: StringProperty(name="Prompt")
    kind: StringProperty(name="Kind", description="generate, regenerate or extend")
    seed: IntProperty(name="Seed")
    frames: IntProperty(name="Frames", description="Keys in the action (scene frames)")


class BAMM_Settings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="What the character does, in plain English")
    length_mode: EnumProperty(
        name="Length",
        items=[("AUTO", "Auto", "The model predicts the length"), ("SECONDS", "Seconds", "A fixed length")],
        default="AUTO",
    )
    seconds: FloatProperty(name="Seconds", default=4.0, min=0.2, max=MAX_SECONDS, unit="TIME_ABSOLUTE",
                           description=f"Length of the motion (at most {MAX_SECONDS:g} s, the model's limit)")
    seed: IntProperty(name="Seed", default=0, min=0)
    variations: IntProperty(name="Variations", default=1, min=1, max=8, description="Motions to generate")
    cfg_ar: FloatProperty(name="Guidance", default=4.0, min=0.0, soft_max=10.0,
                          description="Classifier-free guidance of the first (autoregressive) pass")
    cfg_refine: FloatProperty(name="Refine Guidance", default=3.0, min=0.0, soft_max=10.0,
                              description="Classifier-free guidance of the refinement passes")
    target: PointerProperty(type=bpy.types.Object, name="Armature", poll=_is_armature,
                            description="SMPL-22 armature to animate (empty: create a new BAMM Skeleton)")
    edit_prompt: StringProperty(name="New Prompt",
                                description="Prompt for Regenerate / Extend (empty: the action's own prompt)")
    range_source: EnumProperty(
        name="Range",
        items=[
            ("PREVIEW", "Preview Range", "The scene's preview range"),
            ("MARKERS", "Markers", "The first and last selected timeline markers"),
            ("MANUAL", "Frames", "The two frame fields below"),
        ],
        default="PREVIEW",
    )
    range_start: IntProperty(name="Start", default=1)
    range_end: IntProperty(name="End", default=40)
    extend_seconds: FloatProperty(name="Extend By", default=2.0, min=0.2, max=MAX_SECONDS, unit="TIME_ABSOLUTE",
                                  description="Seconds of motion to add before or after the action")
    set_scene_range: BoolProperty(name="Fit Scene Range", default=True,
                                  description="Set the scene's frame range to the previewed motion")
    results: CollectionProperty(type=BAMM_Result)
    results_index: IntProperty(name="Result", default=-1, update=_preview_active)


CLASSES = (BAMM_Result, BAMM_Settings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.bamm = PointerProperty(type=BAMM_Settings)
    bpy.types.WindowManager.bamm_running = BoolProperty(default=False)
    bpy.types.WindowManager.bamm_progress = FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    bpy.types.WindowManager.bamm_status = StringProperty(default="")
    bpy.types.WindowManager.bamm_error = StringProperty(default="", description="The last job's error")


def unregister() -> None:
    for name in ("bamm_running", "bamm_progress", "bamm_status", "bamm_error"):
        delattr(bpy.types.WindowManager, name)
    del bpy.types.Scene.bamm
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
