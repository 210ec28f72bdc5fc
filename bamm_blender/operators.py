"""Every operator of the add-on: thin ones that read the settings, call a work function (``headless`` for
generation, ``sequence`` for timeline-marker sequences, ``retarget_scene`` for the bone map, Retarget and
Export, ``results`` for the result list) and
report. Each ``execute`` / ``invoke`` / ``modal`` is decorated with ``errors.reports_errors``: any error is one
report line (never a traceback in the UI), also shown in the panel until the next operation.

Generation runs as a modal operator polling a backend job on a timer, so Blender never blocks; called from a
script (``execute``) the same operation runs to the end, blocking. The running job is held by its modal
operator; the window manager says that one runs (``bamm_running``, its progress) and carries a Cancel request
(``bamm_cancel``). Each operator that changes the scene is one undo step.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import export, fill_gap, headless, results, retarget_scene, sequence
from .core import max_seconds
from .errors import BammInputError, reports_errors


def _target(context, settings):
    obj = settings.target
    if obj is None and context.active_object is not None and context.active_object.type == "ARMATURE":
        obj = context.active_object
    if obj is None:
        raise BammInputError("No armature selected: pick the target armature in the BAMM panel")
    return obj


def _common(settings) -> dict:
    return {"seed": settings.seed, "variations": settings.variations, "cfg": (settings.cfg_ar, settings.cfg_refine)}


def _redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "STATUSBAR"):
                area.tag_redraw()


def _status(context, text: str | None) -> None:
    if context.workspace is not None:
        context.workspace.status_text_set(text)


# --------------------------------------------------------------------------------------------- generation
class _JobOperator:
    """Shared modal / blocking flow; subclasses implement ``start(context) -> headless.Task``."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not context.window_manager.bamm_running

    def _done(self, actions, task) -> set:
        ready = f"BAMM: {len(actions)} motion(s) ready: {', '.join(a.name for a in actions)}"
        self.report({"WARNING"} if task.note else {"INFO"}, f"{ready}; {task.note}" if task.note else ready)
        return {"FINISHED"}

    @reports_errors
    def execute(self, context):
        task = self.start(context)
        return self._done(headless.run(context, task), task)

    @reports_errors
    def invoke(self, context, _event):
        self._task = self.start(context)
        wm = context.window_manager
        wm.bamm_running, wm.bamm_cancel, wm.bamm_progress, wm.bamm_status = True, False, 0.0, "Starting"
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _stop(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.bamm_running, wm.bamm_cancel, wm.bamm_status = False, False, ""
        _status(context, None)
        _redraw(context)

    @reports_errors
    def modal(self, context, event):
        wm, job = context.window_manager, self._task.job
        if wm.bamm_cancel or (event.type == "ESC" and event.value == "PRESS"):
            job.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        if job.poll() == "running":
            wm.bamm_progress, wm.bamm_status = job.fraction, f"{job.stage} {job.fraction:.0%}"
            _status(context, f"BAMM {self._task.kind}: {wm.bamm_status} (Esc to cancel)")
            _redraw(context)
            return {"PASS_THROUGH"}
        self._stop(context)
        return self._done(headless.finish(context, self._task), self._task)


class BAMM_OT_generate(_JobOperator, bpy.types.Operator):
    """Generate motion from the prompt"""

    bl_idname = "bamm.generate"
    bl_label = "Generate"

    def start(self, context):
        s = context.scene.bamm
        return headless.start_generate(context, prompt=s.prompt, target=s.target,
                                       seconds=None if s.length_mode == "AUTO" else s.seconds, **_common(s))


class BAMM_OT_regenerate_range(_JobOperator, bpy.types.Operator):
    """Regenerate a frame range of the armature's action (inpainting), keeping every key outside it"""

    bl_idname = "bamm.regenerate_range"
    bl_label = "Regenerate Range"

    def start(self, context):
        s = context.scene.bamm
        target = _target(context, s)
        first, last = headless.frame_range(context, s.range_source, (s.range_start, s.range_end))
        return headless.start_regenerate(context, target=target, first=first, last=last,
                                         prompt=s.edit_prompt or None, **_common(s))


class BAMM_OT_extend(_JobOperator, bpy.types.Operator):
    """Add generated motion before or after the armature's action"""

    bl_idname = "bamm.extend"
    bl_label = "Extend"

    side: EnumProperty(name="Side", items=[("BEFORE", "Before", ""), ("AFTER", "After", "")], default="AFTER")

    def start(self, context):
        s = context.scene.bamm
        return headless.start_extend(context, target=_target(context, s), side=self.side, seconds=s.extend_seconds,
                                     prompt=s.edit_prompt or None, **_common(s))


class BAMM_OT_fill_gap(_JobOperator, bpy.types.Operator):
    """Generate the motion in the gap under the playhead (or the longest one): frames without keys between two
    animated parts of the armature's action, both kept"""

    bl_idname = "bamm.fill_gap"
    bl_label = "Fill Gap"

    def start(self, context):
        s = context.scene.bamm
        return fill_gap.start_fill_gap(context, target=_target(context, s), prompt=s.edit_prompt or None, **_common(s))


class BAMM_OT_generate_sequence(_JobOperator, bpy.types.Operator):
    """Generate one motion from the timeline markers: each marker's name is what happens until the next one"""

    bl_idname = "bamm.generate_sequence"
    bl_label = "Generate Sequence"

    def start(self, context):
        s = context.scene.bamm
        return sequence.start_sequence(context, target=s.target, **_common(s))


class BAMM_OT_markers_from_prompt(bpy.types.Operator):
    """Lay out the plan of the prompt as timeline markers (one per step), to edit before Generate Sequence"""

    bl_idname = "bamm.markers_from_prompt"
    bl_label = "Markers from Prompt"
    bl_options = {"REGISTER", "UNDO"}

    seconds: FloatProperty(name="Seconds per Step", default=3.0, min=0.2, max=max_seconds())

    @reports_errors
    def execute(self, context):
        made = sequence.markers_from_prompt(context, context.scene.bamm.prompt, seconds=self.seconds)
        self.report({"INFO"}, f"BAMM: {len(made)} marker(s)")
        return {"FINISHED"}


class BAMM_OT_cancel(bpy.types.Operator):
    """Cancel the running generation"""

    bl_idname = "bamm.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return context.window_manager.bamm_running

    @reports_errors
    def execute(self, context):
        context.window_manager.bamm_cancel = True  # the running job's modal operator cancels it
        return {"FINISHED"}


class BAMM_OT_dismiss_error(bpy.types.Operator):
    """Hide the last operation's error message"""

    bl_idname = "bamm.dismiss_error"
    bl_label = "Dismiss"

    @reports_errors
    def execute(self, _context):
        return {"FINISHED"}  # reports_errors clears the error


class BAMM_OT_apply_result(bpy.types.Operator):
    """Keep the selected result on its armature and delete the other results"""

    bl_idname = "bamm.apply_result"
    bl_label = "Apply"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        s = context.scene.bamm
        return 0 <= s.results_index < len(s.results)

    @reports_errors
    def execute(self, context):
        action = headless.apply_result(context, context.scene.bamm.results_index)
        self.report({"INFO"}, f"BAMM: kept '{action.name}'")
        return {"FINISHED"}


class BAMM_OT_clear_results(bpy.types.Operator):
    """Delete every result that no armature uses and empty the list"""

    bl_idname = "bamm.clear_results"
    bl_label = "Clear Results"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return len(context.scene.bamm.results) > 0

    @reports_errors
    def execute(self, context):
        headless.clear_results(context)
        return {"FINISHED"}


# ----------------------------------------------------------------------------------- retarget and export
class BAMM_OT_bone_map_auto(bpy.types.Operator):
    """Fill the bone map from the Character's bone names (or its bone chains)"""

    bl_idname = "bamm.bone_map_auto"
    bl_label = "Auto Map"
    bl_options = {"REGISTER", "UNDO"}

    @reports_errors
    def execute(self, context):
        missing = retarget_scene.fill_bone_map(context)
        self.report({"WARNING"} if missing else {"INFO"}, f"Bone map: {22 - len(missing)} of 22 joints mapped"
                    + (f" (none for {', '.join(missing)}: pick their bones in the list)" if missing else ""))
        return {"FINISHED"}


class BAMM_OT_bone_map_load(bpy.types.Operator, ImportHelper):
    """Load a bone-map preset (built-in, or a JSON file)"""

    bl_idname = "bamm.bone_map_load"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})
    builtin: StringProperty(name="Built-in Preset", description="Name of a built-in preset (empty: the file)")

    @reports_errors
    def invoke(self, context, event):
        if self.builtin:
            return self.execute(context)
        self.filepath = (results.user_dir("bone_maps") or "") + "/"
        return ImportHelper.invoke(self, context, event)

    @reports_errors
    def execute(self, context):
        if self.builtin:
            path, dropped = retarget_scene.load_builtin_bone_map(context, self.builtin)
        else:
            path, dropped = self.filepath, retarget_scene.load_bone_map(context, self.filepath)
        self.report({"WARNING"} if dropped else {"INFO"}, f"Loaded bone map {Path(path).stem}"
                    + (f"; the character has no bone for {', '.join(dropped)}" if dropped else ""))
        return {"FINISHED"}


class BAMM_OT_bone_map_save(bpy.types.Operator, ExportHelper):
    """Save the bone map as a JSON preset"""

    bl_idname = "bamm.bone_map_save"
    bl_label = "Save Bone Map"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    @reports_errors
    def invoke(self, context, event):
        folder = results.user_dir("bone_maps")
        target = retarget_scene.settings(context).target
        self.filepath = str(Path(folder or "") / f"{bpy.path.clean_name(target.name if target else 'bone_map')}.json")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    @reports_errors
    def execute(self, context):
        self.report({"INFO"}, f"Saved bone map {retarget_scene.save_bone_map(context, self.filepath)}")
        return {"FINISHED"}


class BAMM_OT_retarget(bpy.types.Operator):
    """Bake the motion onto the Character as a new action (its other actions are left untouched)"""

    bl_idname = "bamm.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    @reports_errors
    def execute(self, context):
        action = retarget_scene.run_retarget(context)
        self.report({"INFO"}, f"Retargeted onto '{retarget_scene.settings(context).target.name}': "
                              f"action '{action.name}'")
        return {"FINISHED"}


class BAMM_OT_export(bpy.types.Operator, ExportHelper):
    """Export the Character (or the BAMM Skeleton) with its animation"""

    bl_idname = "bamm.export"
    bl_label = "Export Motion"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx;*.bvh;*.glb", options={"HIDDEN"})

    @reports_errors
    def invoke(self, context, event):
        self.filename_ext = export.FORMATS[retarget_scene.settings(context).export_format]
        return ExportHelper.invoke(self, context, event)

    @reports_errors
    def execute(self, context):
        self.report({"INFO"}, f"Exported {retarget_scene.run_export(context, self.filepath)}")
        return {"FINISHED"}


CLASSES = (BAMM_OT_generate, BAMM_OT_regenerate_range, BAMM_OT_extend, BAMM_OT_fill_gap,
           BAMM_OT_generate_sequence, BAMM_OT_markers_from_prompt, BAMM_OT_cancel, BAMM_OT_dismiss_error,
           BAMM_OT_apply_result, BAMM_OT_clear_results, BAMM_OT_bone_map_auto, BAMM_OT_bone_map_load,
           BAMM_OT_bone_map_save, BAMM_OT_retarget, BAMM_OT_export)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
