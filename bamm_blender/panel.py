"""3D Viewport > Sidebar > BAMM: prompt (and what it asks for outside the model's vocabulary), length, seed,
guidance, target, the buttons, the last operation's error, the results (marked when made from such a prompt),
the Sequence section (the prompt's plan, timeline markers as segments) and the Retarget & Export section (bone
map, options, Retarget and Export buttons)."""

from __future__ import annotations

import textwrap

import bpy

from . import models, sequence, vocab
from .bake import scene_fps

ERROR_WIDTH, ERROR_LINES = 42, 6  # characters per line and lines of the error box


class BAMM_UL_results(bpy.types.UIList):
    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_prop, _index=0, _flt_flag=0):
        icon = {"generate": "ARMATURE_DATA", "regenerate": "MOD_MASK", "extend": "NEXT_KEYFRAME"}.get(item.kind, "DOT")
        row = layout.row(align=True)
        row.label(text=item.action.name if item.action else "(deleted)", icon=icon)
        # marked: its prompt asked for something outside the model's vocabulary
        row.label(text=f"{item.frames} fr", icon="QUESTION" if item.vocab_note else "NONE")


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "BAMM"


class BAMM_PT_main(_Panel, bpy.types.Panel):
    bl_label = "BAMM Motion"

    def draw(self, context):
        layout = self.layout
        s = context.scene.bamm
        wm = context.window_manager
        row = layout.row()
        row.label(text=f"Model: {models.active_name(context)}", icon="ARMATURE_DATA")
        row.operator("bamm.import_published", text="", icon="IMPORT")
        layout.prop(s, "prompt", text="")
        note = vocab.line(s.prompt, context)
        if note:
            draw_vocab_note(layout, note)
        row = layout.row(align=True)
        row.prop(s, "length_mode", expand=True)
        if s.length_mode == "SECONDS":
            layout.prop(s, "seconds")
        col = layout.column(align=True)
        col.prop(s, "seed")
        col.prop(s, "variations")
        col = layout.column(align=True)
        col.prop(s, "cfg_ar")
        col.prop(s, "cfg_refine")
        layout.prop(s, "target")
        layout.prop(s, "set_scene_range")
        if wm.bamm_running:
            layout.progress(factor=wm.bamm_progress, type="BAR", text=wm.bamm_status or "Working")
            layout.operator("bamm.cancel", icon="CANCEL")
            return
        layout.operator("bamm.generate", icon="PLAY")
        if wm.bamm_error:
            draw_error(layout, wm.bamm_error, wm.bamm_error_kind)


def draw_vocab_note(layout, note: str) -> None:
    """What the prompt asks for outside the model's vocabulary and the closest it knows, a few lines."""
    col = layout.column(align=True)
    lines = textwrap.wrap(note, ERROR_WIDTH)[:ERROR_LINES]
    col.label(text=lines[0], icon="QUESTION")
    for line in lines[1:]:
        col.label(text=line)


def draw_error(layout, message: str, kind: str = "") -> None:
    """The last operation's error, wrapped over a few lines, with a Dismiss button: the user's input (what to
    change) or a failure of BAMM itself."""
    box = layout.box()
    box.alert = kind != "input"
    lines = textwrap.wrap(message, ERROR_WIDTH)[:ERROR_LINES] or [""]
    row = box.row()
    row.label(text="Check the input:" if kind == "input" else lines.pop(0), icon="INFO" if kind == "input" else "ERROR")
    row.operator("bamm.dismiss_error", text="", icon="X", emboss=False)
    for line in lines:
        box.label(text=line)


class BAMM_PT_edit(_Panel, bpy.types.Panel):
    bl_label = "Edit"
    bl_parent_id = "BAMM_PT_main"

    def draw(self, context):
        layout = self.layout
        s = context.scene.bamm
        layout.prop(s, "edit_prompt", text="", placeholder="New prompt (optional)")
        layout.prop(s, "range_source")
        if s.range_source == "MANUAL":
            row = layout.row(align=True)
            row.prop(s, "range_start")
            row.prop(s, "range_end")
        layout.operator("bamm.regenerate_range", icon="FILE_REFRESH")
        layout.prop(s, "extend_seconds")
        row = layout.row(align=True)
        row.operator("bamm.extend", text="Extend Before", icon="TRIA_LEFT").side = "BEFORE"
        row.operator("bamm.extend", text="Extend After", icon="TRIA_RIGHT").side = "AFTER"
        layout.operator("bamm.fill_gap", icon="SEQ_STRIP_META")


class BAMM_PT_results(_Panel, bpy.types.Panel):
    bl_label = "Results"
    bl_parent_id = "BAMM_PT_main"

    def draw(self, context):
        layout = self.layout
        s = context.scene.bamm
        layout.template_list("BAMM_UL_results", "", s, "results", s, "results_index", rows=3)
        row = layout.row(align=True)
        row.operator("bamm.apply_result", icon="CHECKMARK")
        row.operator("bamm.clear_results", icon="TRASH")


class BAMM_PT_sequence(_Panel, bpy.types.Panel):
    bl_label = "Sequence"
    bl_parent_id = "BAMM_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        if scene.bamm.prompt.strip():
            box = layout.box()
            for line in sequence.plan_lines(scene.bamm.prompt):
                box.label(text=line)
            layout.operator("bamm.markers_from_prompt", icon="MARKER_HLT")
        layout.prop(scene.bamm, "sequence_person")
        spans = sequence.marker_spans(scene)
        fps = scene_fps(scene)
        col = layout.column(align=True)
        for m, end in spans:
            row = col.row(align=True)
            row.label(text=f"{m.frame}-{end - 1} ({(end - m.frame) / fps:.1f} s)")
            row.prop(m, "name", text="")
        if not spans:
            layout.label(text="Add markers: each one's name is a segment's prompt", icon="INFO")
        layout.operator("bamm.generate_sequence", icon="SEQUENCE")


class BAMM_UL_bone_map(bpy.types.UIList):
    def draw_item(self, context, layout, _data, item, _icon, _active_data, _active_prop, _index=0, _flt_flag=0):
        row = layout.row(align=True)
        split = row.split(factor=0.35)
        split.label(text=item.joint)
        target = context.scene.bamm_retarget.target
        if target is not None and target.type == "ARMATURE":
            split.prop_search(item, "bone", target.data, "bones", text="", icon="BONE_DATA")
        else:
            split.prop(item, "bone", text="")


def draw_retarget(layout, context) -> None:
    """The Retarget & Export section."""
    s = context.scene.bamm_retarget
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


class BAMM_PT_retarget(_Panel, bpy.types.Panel):
    bl_label = "Retarget & Export"
    bl_parent_id = "BAMM_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        draw_retarget(self.layout, context)


CLASSES = (BAMM_UL_results, BAMM_UL_bone_map, BAMM_PT_main, BAMM_PT_edit, BAMM_PT_results, BAMM_PT_sequence,
           BAMM_PT_retarget)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
