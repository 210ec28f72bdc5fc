"""Retarget & Export section of the BAMM panel: the editable bone map (SMPL joint -> character bone), presets,
the Retarget and Export buttons. Settings live on ``scene.bamm_retarget``.

The operators' work is in plain functions (``fill_bone_map``, ``load_bone_map``, ``save_bone_map``,
``run_retarget``, ``run_export``) that scripts and tests call directly.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, PointerProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import armature, bone_map, export, results, retarget
from .errors import BammError, BammInputError

PRESET_ITEMS = [(stem, stem.replace("_", " ").title(), f"Built-in bone map: {path.name}")
                for stem, path in bone_map.builtin_presets().items()]


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


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


# ------------------------------------------------------------------------------------ plain functions
def settings(context) -> BAMM_RetargetSettings:
    return context.scene.bamm_retarget


def source_of(context):
    """The motion's armature: the Source field, else the BAMM panel's armature, else the BAMM Skeleton."""
    s = settings(context)
    panel = getattr(context.scene, "bamm", None)
    for obj in (s.source, getattr(panel, "target", None), bpy.data.objects.get(armature.ARMATURE_NAME)):
        if obj is not None and obj.type == "ARMATURE" and obj != s.target:
            return armature.check_armature(obj)
    raise BammInputError("No source motion: generate a motion first or pick the BAMM Skeleton as Source")


def _target(context):
    target = settings(context).target
    if target is None:
        raise BammInputError("Pick the character's armature (Character) first")
    return target


def set_bone_map(context, mapping: dict[str, str]) -> None:
    s = settings(context)
    s.bone_map.clear()
    for joint in bone_map.JOINTS:
        item = s.bone_map.add()
        item.joint, item.bone = joint, mapping.get(joint, "")
    s.bone_map_target = s.target.name if s.target else ""


def mapping_of(context) -> dict[str, str]:
    """The panel's bone map (auto-filled first when it is empty or was made for another armature)."""
    s = settings(context)
    if not len(s.bone_map) or s.bone_map_target != getattr(s.target, "name", ""):
        fill_bone_map(context)
    return {item.joint: item.bone for item in s.bone_map if item.bone}


def fill_bone_map(context) -> list[str]:
    """Auto-map the Character; returns the joints left without a bone."""
    mapping = bone_map.auto_map(bone_map.Rig.from_armature(_target(context)))
    set_bone_map(context, mapping)
    return [j for j in bone_map.JOINTS if j not in mapping]


def load_bone_map(context, path) -> list[str]:
    """Load a preset file onto the Character; returns the joints whose bone the character lacks."""
    kept, dropped = bone_map.fit_preset(bone_map.Rig.from_armature(_target(context)), bone_map.load_preset(path))
    set_bone_map(context, kept)
    return dropped


def save_bone_map(context, path) -> Path:
    return bone_map.save_preset(path, mapping_of(context), name=Path(path).stem)


def run_retarget(context):
    """Retarget the source motion onto the Character with the panel's map and options (a new action)."""
    s = settings(context)
    options = retarget.RetargetOptions(in_place=s.in_place, keep_root=s.keep_root, loop=s.loop,
                                       foot_lock=s.foot_lock, partial=s.partial)
    return retarget.retarget(context, source_of(context), _target(context), mapping_of(context), options=options)


def run_export(context, filepath, fmt: str | None = None) -> Path:
    """Export the Character when it has an action, else the source armature."""
    s = settings(context)
    obj = s.target if s.target is not None and s.target.animation_data and s.target.animation_data.action \
        else source_of(context)
    return export.export_armature(context, obj, filepath, fmt=fmt or s.export_format)


# ------------------------------------------------------------------------------------------ operators
class _Reporting:
    def fail(self, error: Exception) -> set:
        self.report({"ERROR"}, str(error) if isinstance(error, BammError) else f"{type(error).__name__}: {error}")
        return {"CANCELLED"}


class BAMM_OT_bone_map_auto(_Reporting, bpy.types.Operator):
    """Fill the bone map from the Character's bone names (or its bone chains)"""

    bl_idname = "bamm.bone_map_auto"
    bl_label = "Auto Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            missing = fill_bone_map(context)
        except Exception as e:
            return self.fail(e)
        self.report({"INFO"}, f"Bone map: {22 - len(missing)} of 22 joints mapped"
                    + (f" (none for {', '.join(missing)})" if missing else ""))
        return {"FINISHED"}


class BAMM_OT_bone_map_load(_Reporting, bpy.types.Operator, ImportHelper):
    """Load a bone-map preset (built-in, or a JSON file)"""

    bl_idname = "bamm.bone_map_load"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})
    builtin: StringProperty(name="Built-in Preset", description="Name of a built-in preset (empty: the file)")

    def invoke(self, context, event):
        if self.builtin:
            return self.execute(context)
        self.filepath = (results.user_dir("bone_maps") or "") + "/"
        return ImportHelper.invoke(self, context, event)

    def execute(self, context):
        try:
            path = bone_map.builtin_presets().get(self.builtin) if self.builtin else self.filepath
            if path is None:
                raise BammInputError(f"No built-in bone map '{self.builtin}'")
            dropped = load_bone_map(context, path)
        except Exception as e:
            return self.fail(e)
        self.report({"WARNING"} if dropped else {"INFO"}, f"Loaded bone map {Path(path).stem}"
                    + (f"; the character has no bone for {', '.join(dropped)}" if dropped else ""))
        return {"FINISHED"}


class BAMM_OT_bone_map_save(_Reporting, bpy.types.Operator, ExportHelper):
    """Save the bone map as a JSON preset"""

    bl_idname = "bamm.bone_map_save"
    bl_label = "Save Bone Map"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        folder = results.user_dir("bone_maps")
        target = settings(context).target
        self.filepath = str(Path(folder or "") / f"{bpy.path.clean_name(target.name if target else 'bone_map')}.json")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            path = save_bone_map(context, self.filepath)
        except Exception as e:
            return self.fail(e)
        self.report({"INFO"}, f"Saved bone map {path}")
        return {"FINISHED"}


class BAMM_OT_retarget(_Reporting, bpy.types.Operator):
    """Bake the motion onto the Character as a new action (its other actions are left untouched)"""

    bl_idname = "bamm.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            action = run_retarget(context)
        except Exception as e:
            return self.fail(e)
        self.report({"INFO"}, f"Retargeted onto '{settings(context).target.name}': action '{action.name}'")
        return {"FINISHED"}


class BAMM_OT_export(_Reporting, bpy.types.Operator, ExportHelper):
    """Export the Character (or the BAMM Skeleton) with its animation"""

    bl_idname = "bamm.export"
    bl_label = "Export Motion"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx;*.bvh;*.glb", options={"HIDDEN"})

    def invoke(self, context, event):
        self.filename_ext = export.FORMATS[settings(context).export_format]
        return ExportHelper.invoke(self, context, event)

    def execute(self, context):
        try:
            path = run_export(context, self.filepath)
        except Exception as e:
            return self.fail(e)
        self.report({"INFO"}, f"Exported {path}")
        return {"FINISHED"}


# ----------------------------------------------------------------------------------------------- panel
class BAMM_UL_bone_map(bpy.types.UIList):
    def draw_item(self, context, layout, _data, item, _icon, _active_data, _active_prop, _index=0, _flt_flag=0):
        row = layout.row(align=True)
        split = row.split(factor=0.35)
        split.label(text=item.joint)
        target = settings(context).target
        if target is not None and target.type == "ARMATURE":
            split.prop_search(item, "bone", target.data, "bones", text="", icon="BONE_DATA")
        else:
            split.prop(item, "bone", text="")


def draw_retarget(layout, context) -> None:
    """The Retarget & Export section (for the BAMM panel's own panels, or ``BAMM_PT_retarget``)."""
    s = settings(context)
    col = layout.column(align=True)
    col.prop(s, "source")
    col.prop(s, "target")
    row = layout.row(align=True)
    row.operator("bamm.bone_map_auto", icon="AUTO")
    row.prop(s, "preset", text="")
    row.operator("bamm.bone_map_load", text="", icon="IMPORT").builtin = s.preset
    row = layout.row(align=True)
    row.operator("bamm.bone_map_load", text="Load…", icon="FILE_FOLDER").builtin = ""
    row.operator("bamm.bone_map_save", text="Save…", icon="FILE_TICK")
    layout.template_list("BAMM_UL_bone_map", "", s, "bone_map", s, "bone_map_index", rows=6)
    grid = layout.grid_flow(columns=2, align=True)
    for name in ("in_place", "keep_root", "loop", "foot_lock", "partial"):
        grid.prop(s, name)
    layout.operator("bamm.retarget", icon="ARMATURE_DATA")
    row = layout.row(align=True)
    row.prop(s, "export_format", text="")
    row.operator("bamm.export", icon="EXPORT")


class BAMM_PT_retarget(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "BAMM"
    bl_label = "Retarget & Export"
    bl_parent_id = "BAMM_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        draw_retarget(self.layout, context)


CLASSES = (BAMM_BoneMapItem, BAMM_RetargetSettings, BAMM_OT_bone_map_auto, BAMM_OT_bone_map_load,
           BAMM_OT_bone_map_save, BAMM_OT_retarget, BAMM_OT_export, BAMM_UL_bone_map, BAMM_PT_retarget)


def register(*, panel: bool = True) -> None:
    """Register the classes (``panel=False``: all but ``BAMM_PT_retarget``) and ``Scene.bamm_retarget``."""
    for cls in CLASSES:
        if panel or cls is not BAMM_PT_retarget:
            bpy.utils.register_class(cls)
    bpy.types.Scene.bamm_retarget = PointerProperty(type=BAMM_RetargetSettings)


def unregister() -> None:
    del bpy.types.Scene.bamm_retarget
    for cls in reversed(CLASSES):
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)
