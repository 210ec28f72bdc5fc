"""Operators of the BAMM panel. Generation runs as a modal operator polling a backend job on a timer, so
Blender never blocks; called from a script (``execute``) the same operation runs to the end, blocking.
The work itself is in ``headless`` (plain functions); each operator is one undo step."""

from __future__ import annotations

import traceback

import bpy
from bpy.props import EnumProperty

from . import headless
from .errors import BammCancelled, BammError, BammInputError

_STATE = {"task": None}  # the one running task


def running_task():
    return _STATE["task"]


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


def _clear_error(context) -> None:
    if context.window_manager is not None:
        context.window_manager.bamm_error = ""


def _status(context, text: str | None) -> None:
    if context.workspace is not None:
        context.workspace.status_text_set(text)


class _JobOperator:
    """Shared modal / blocking flow; subclasses implement ``start(context) -> headless.Task``."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return running_task() is None and context.scene is not None

    def _fail(self, context, error: Exception) -> set:
        if not isinstance(error, BammError):
            traceback.print_exc()
        message = str(error) or repr(error)
        if context.window_manager is not None:  # shown in the panel until the next job or Dismiss
            context.window_manager.bamm_error = "" if isinstance(error, BammCancelled) else message
        self.report({"WARNING"} if isinstance(error, BammCancelled) else {"ERROR"}, message)
        return {"CANCELLED"}

    def _done(self, actions) -> set:
        self.report({"INFO"}, f"BAMM: {len(actions)} motion(s) ready: {', '.join(a.name for a in actions)}")
        return {"FINISHED"}

    def execute(self, context):
        _clear_error(context)
        try:
            return self._done(headless.run(context, self.start(context)))
        except Exception as e:  # reported, never a traceback in the UI
            return self._fail(context, e)

    def invoke(self, context, _event):
        _clear_error(context)
        try:
            task = self.start(context)
        except Exception as e:
            return self._fail(context, e)
        _STATE["task"] = task
        wm = context.window_manager
        wm.bamm_running, wm.bamm_progress, wm.bamm_status = True, 0.0, "Starting"
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _stop(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.bamm_running, wm.bamm_status = False, ""
        _STATE["task"] = None
        _status(context, None)
        _redraw(context)

    def modal(self, context, event):
        task = _STATE["task"]
        if event.type == "ESC" and event.value == "PRESS":
            task.job.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        wm = context.window_manager
        state = task.job.poll()
        if state == "running":
            wm.bamm_progress, wm.bamm_status = task.job.fraction, f"{task.job.stage} {task.job.fraction:.0%}"
            _status(context, f"BAMM {task.kind}: {wm.bamm_status} (Esc to cancel)")
            _redraw(context)
            return {"PASS_THROUGH"}
        self._stop(context)
        try:
            return self._done(headless.finish(context, task))
        except Exception as e:
            return self._fail(context, e)


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


class BAMM_OT_cancel(bpy.types.Operator):
    """Cancel the running generation"""

    bl_idname = "bamm.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, _context):
        return running_task() is not None

    def execute(self, _context):
        running_task().job.cancel()
        return {"FINISHED"}


class BAMM_OT_dismiss_error(bpy.types.Operator):
    """Hide the last job's error message"""

    bl_idname = "bamm.dismiss_error"
    bl_label = "Dismiss"

    def execute(self, context):
        _clear_error(context)
        return {"FINISHED"}


class BAMM_OT_apply_result(bpy.types.Operator):
    """Keep the selected result on its armature and delete the other results"""

    bl_idname = "bamm.apply_result"
    bl_label = "Apply"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        s = context.scene.bamm
        return 0 <= s.results_index < len(s.results)

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

    def execute(self, context):
        headless.clear_results(context)
        return {"FINISHED"}


CLASSES = (BAMM_OT_generate, BAMM_OT_regenerate_range, BAMM_OT_extend, BAMM_OT_cancel, BAMM_OT_dismiss_error,
           BAMM_OT_apply_result, BAMM_OT_clear_results)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    task = running_task()
    if task is not None:
        task.job.cancel()
        _STATE["task"] = None
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
