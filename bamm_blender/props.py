"""Scene settings of the BAMM panel (``scene.bamm``), of its Retarget & Export section
(``scene.bamm_retarget``) and the job status (``window_manager.bamm_*``).

Settings live on the scene (saved, undoable); whether a job runs, its progress, a cancel request and the last
operation's error live on the window manager (not part of undo; reset when a file is loaded).
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import bone_map
from .core import max_seconds, model_module

MAX_SECONDS = max_seconds()  # the bundled model's frame limit (196 frames = 9.8 s at 20 fps)
DEFAULT_CFG = model_module(".contract.request").DEFAULT_CFG  # the request contract's guidance defaults


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
    vocab_note: StringProperty(name="Vocabulary", description="What the prompt asked for outside the model's "
                               "vocabulary when the result was made (empty: nothing)")


class BAMM_Settings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="What the character does, in plain English",
                           options={"TEXTEDIT_UPDATE"})  # the vocabulary line under it follows the typing
    length_mode: EnumProperty(
        name="Length",
        items=[("AUTO", "Auto", "The model predicts the length"), ("SECONDS", "Seconds", "A fixed length")],
        default="AUTO",
    )
    seconds: FloatProperty(name="Seconds", default=4.0, min=0.2, max=MAX_SECONDS, unit="TIME_ABSOLUTE",
                           description=f"Length of the motion (at most {MAX_SECONDS:g} s, the model's limit)")
    seed: IntProperty(name="Seed", default=0, min=0)
    variations: IntProperty(name="Variations", default=1, min=1, max=8, description="Motions to generate")
    cfg_ar: FloatProperty(name="Guidance", default=DEFAULT_CFG[0], min=0.0, soft_max=10.0,
                          description="Classifier-free guidance of the first (autoregressive) pass")
    cfg_refine: FloatProperty(name="Refine Guidance", default=DEFAULT_CFG[1], min=0.0, soft_max=10.0,
                              description="Classifier-free guidance of the refinement passes")
    target: PointerProperty(type=bpy.types.Object, name="Armature", poll=_is_armature,
                            description="Armature to animate: a BAMM Skeleton or your character, whose own "
                            "action Regenerate, Extend and Fill Gap edit (empty: create a new BAMM Skeleton)")
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
    sequence_person: StringProperty(name="Person", default="a person",
                                    description="Words that describe the person, put before every segment")
    results: CollectionProperty(type=BAMM_Result)
    results_index: IntProperty(name="Result", default=-1, update=_preview_active)


PRESET_ITEMS = [(stem, stem.replace("_", " ").title(), f"Built-in bone map: {path.name}")
                for stem, path in bone_map.builtin_presets().items()]


class BAMM_BoneMapItem(bpy.types.PropertyGroup):
    joint: StringProperty(name="Joint", description="SMPL joint")
    bone: StringProperty(name="Bone", description="Bone of the character that follows this joint (empty: none)")


class BAMM_RetargetSettings(bpy.types.PropertyGroup):
    source: PointerProperty(type=bpy.types.Object, name="Source", poll=_is_armature,
                            description="BAMM Skeleton with the motion (empty: the BAMM panel's armature)")
    target: PointerProperty(type=bpy.types.Object, name="Character", poll=_is_armature,
                            description="The character's armature to retarget onto")
    bone_map: CollectionProperty(type=BAMM_BoneMapItem)
    bone_map_index: IntProperty(name="Joint", default=0)
    bone_map_target: StringProperty(name="Mapped Armature", description="Armature the bone map was made for")
    preset: EnumProperty(name="Preset", items=PRESET_ITEMS or [("none", "None", "")])
    in_place: BoolProperty(name="In Place", description="Remove the root's horizontal motion")
    keep_root: BoolProperty(name="Keep Root", description="No root translation keys: rotations only")
    loop: BoolProperty(name="Loop", description="Blend so the last pose matches the first (root-relative)")
    foot_lock: BoolProperty(name="Foot Lock", description="Pin the feet while they touch the floor")
    partial: BoolProperty(name="Partial Map", description="Retarget although the map has no bone for an arm "
                          "joint (those bones keep their rest pose); otherwise such a map is refused")
    export_format: EnumProperty(name="Format", default="fbx", items=[
        ("fbx", "FBX", "Autodesk FBX: armature, meshes and the baked action"),
        ("bvh", "BVH", "Biovision hierarchy: the armature and its motion"),
        ("glb", "glTF (GLB)", "glTF binary: armature, meshes and the baked action")])


CLASSES = (BAMM_Result, BAMM_Settings, BAMM_BoneMapItem, BAMM_RetargetSettings)
STATUS = {  # window-manager properties: the running job and the last operation's error
    "bamm_running": lambda: BoolProperty(default=False, description="A generation job is running"),
    "bamm_cancel": lambda: BoolProperty(default=False, description="Cancel asked for the running job"),
    "bamm_progress": lambda: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR"),
    "bamm_status": lambda: StringProperty(default=""),
    "bamm_error": lambda: StringProperty(default="", description="The last operation's error"),
    "bamm_error_kind": lambda: StringProperty(default="", description="input, failure or internal"),
}


@persistent
def reset_status(_file=None) -> None:
    """A loaded file runs no job (its modal operator is gone): clear the job status."""
    wm = getattr(bpy.context, "window_manager", None)
    if wm is not None and hasattr(wm, "bamm_running"):
        wm.bamm_running, wm.bamm_cancel, wm.bamm_progress, wm.bamm_status = False, False, 0.0, ""


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.bamm = PointerProperty(type=BAMM_Settings)
    bpy.types.Scene.bamm_retarget = PointerProperty(type=BAMM_RetargetSettings)
    for name, make in STATUS.items():
        setattr(bpy.types.WindowManager, name, make())
    bpy.app.handlers.load_post.append(reset_status)


def unregister() -> None:
    if reset_status in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(reset_status)
    for name in STATUS:
        delattr(bpy.types.WindowManager, name)
    del bpy.types.Scene.bamm_retarget
    del bpy.types.Scene.bamm
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
