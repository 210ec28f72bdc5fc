"""Long sequences: one prompt per timeline segment, generated as one motion (BAMM panel > Sequence).

Each timeline marker starts a segment that runs to the next marker (the last one to the scene's end); the
marker's name says what happens in it ("walks forward", "bows", "walks while waving the right hand"), and the
Person words ("an elderly person") go in front of every segment. **Generate Sequence** sends the segments as a
plan (``model_core/plan.py``) to the back end's ``plan`` op: each segment is generated with its own length and
joined with the model's transitions, an arm action "while" walking composed onto the walk
(``model_core/compose.py``), and the result is baked from the first marker on like a generated motion.
**Markers from Prompt** lays out the plan of the panel's prompt as markers (the panel lists that plan), to edit.
"""

from __future__ import annotations

import re

import bpy
from bpy.props import FloatProperty, StringProperty

from . import backend, headless
from .bake import scene_fps
from .core import model_module
from .errors import BammInputError
from .operators import _common, _JobOperator
from .panel import _Panel

MIN_SECONDS, MAX_SECONDS = 0.2, 9.8  # one segment: one token .. the model's context
_DEFAULT_NAME = re.compile(r"^F_\d+$")  # the name Blender gives a new marker


def _plan_module():
    return model_module(".plan")


def segments(scene) -> list[tuple[int, int, str]]:
    """[(first frame, end frame (exclusive), what happens)] from the scene's markers, in time order."""
    markers = sorted(scene.timeline_markers, key=lambda m: m.frame)
    if not markers:
        raise BammInputError("Add timeline markers (M in the timeline): each starts a segment, its name says "
                             "what happens")
    out = []
    for k, m in enumerate(markers):
        end = markers[k + 1].frame if k + 1 < len(markers) else scene.frame_end + 1
        if not m.name.strip() or _DEFAULT_NAME.match(m.name):
            raise BammInputError(f"Marker at frame {m.frame} has no prompt: rename it to what happens from there "
                                 "on (e.g. 'walks forward')")
        if end <= m.frame:
            raise BammInputError(f"Marker '{m.name}' at frame {m.frame} is at or after the scene's end "
                                 f"({scene.frame_end})")
        out.append((m.frame, end, m.name.strip()))
    return out


def segment_prompt(person: str, text: str) -> str:
    person = person.strip()
    return f"{person} {text}" if person and not text.lower().startswith(person.lower()) else text


def plan_of_segments(scene, person: str) -> dict:
    """The plan object (as ``Plan.to_json`` writes it) of the markers' segments."""
    plan_module = _plan_module()
    fps = scene_fps(scene)
    steps = []
    for first, end, text in segments(scene):
        seconds = (end - first) / fps
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
            raise BammInputError(f"Segment '{text}' (frames {first}-{end - 1}) lasts {seconds:.2f} s: each segment "
                                 f"must last {MIN_SECONDS}-{MAX_SECONDS} s")
        prompt = segment_prompt(person, text)
        plan = plan_module.make_plan(prompt)
        one = plan.steps[0] if len(plan.steps) == 1 else plan_module.Step(prompt, plan_module.kind_of(prompt))
        steps.append({"prompt": one.prompt, "kind": one.kind, "seconds": seconds, "together": one.together})
    return {"person": person.strip(), "steps": steps}


def start_sequence(context, *, seed: int = 0, variations: int = 1, cfg=(4.0, 3.0), target=None) -> headless.Task:
    """Submit the markers' segments as one plan job; ``headless.finish`` bakes it from the first marker."""
    scene = context.scene
    plan = plan_of_segments(scene, scene.bamm_sequence_person)
    headless._target(target)
    spec = headless.model_spec(context)
    args = {"plan": plan, "n": int(variations), "seed": int(seed), "cfg": headless._cfg(cfg)}
    job = headless.get_backend(context).submit(backend.Request("plan", spec, args))
    first = min(m.frame for m in scene.timeline_markers)
    prompt = " / ".join(s["prompt"] for s in plan["steps"])
    return headless.Task("generate", job, scene.name, target.name if target else None, first=first, origin=first,
                         seed=int(seed), prompt=prompt, model=headless.model_key(spec))


def generate_sequence(context, *, timeout: float | None = None, **kwargs) -> list[bpy.types.Action]:
    """``start_sequence`` + wait + ``finish`` (blocking)."""
    return headless.run(context, start_sequence(context, **kwargs), timeout=timeout)


def markers_from_prompt(context, prompt: str, *, seconds: float = 3.0) -> list[bpy.types.TimelineMarker]:
    """Lay out the prompt's plan as markers from the scene start, ``seconds`` per step (or the step's own);
    the person words go to the Person field. Refuses when the scene already has markers (they are the user's)."""
    scene = context.scene
    if not prompt or not prompt.strip():
        raise BammInputError("Type a prompt first (e.g. 'an elderly person walks forward, then bows')")
    if len(scene.timeline_markers):
        raise BammInputError("The scene already has timeline markers: remove them first, or edit them")
    plan = _plan_module().make_plan(prompt)
    fps = scene_fps(scene)
    scene.bamm_sequence_person = plan.person
    frame, made = scene.frame_start, []
    for s in plan.steps:
        text = s.prompt[len(plan.person):].strip() if s.prompt.startswith(plan.person) else s.prompt
        if s.together:
            arm = s.together[len(plan.person):].strip() if s.together.startswith(plan.person) else s.together
            text = f"{text} while {arm}"
        made.append(scene.timeline_markers.new(text[:63], frame=frame))
        frame += int(round((s.seconds or seconds) * fps))
    scene.frame_end = max(scene.frame_end, frame - 1)
    return made


class BAMM_OT_generate_sequence(_JobOperator, bpy.types.Operator):
    """Generate one motion from the timeline markers: each marker's name is what happens until the next one"""

    bl_idname = "bamm.generate_sequence"
    bl_label = "Generate Sequence"

    def start(self, context):
        s = context.scene.bamm
        return start_sequence(context, target=s.target, **_common(s))


class BAMM_OT_markers_from_prompt(bpy.types.Operator):
    """Lay out the plan of the prompt as timeline markers (one per step), to edit before Generate Sequence"""

    bl_idname = "bamm.markers_from_prompt"
    bl_label = "Markers from Prompt"
    bl_options = {"REGISTER", "UNDO"}

    seconds: FloatProperty(name="Seconds per Step", default=3.0, min=MIN_SECONDS, max=MAX_SECONDS)

    def execute(self, context):
        try:
            made = markers_from_prompt(context, context.scene.bamm.prompt, seconds=self.seconds)
        except BammInputError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"BAMM: {len(made)} marker(s)")
        return {"FINISHED"}


class BAMM_PT_sequence(_Panel, bpy.types.Panel):
    bl_label = "Sequence"
    bl_parent_id = "BAMM_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        prompt = scene.bamm.prompt
        if prompt.strip():
            box = layout.box()
            for line in _plan_module().make_plan(prompt).describe().splitlines():
                box.label(text=line.strip())
            layout.operator("bamm.markers_from_prompt", icon="MARKER_HLT")
        layout.prop(scene, "bamm_sequence_person")
        markers = sorted(scene.timeline_markers, key=lambda m: m.frame)
        fps = scene_fps(scene)
        col = layout.column(align=True)
        for k, m in enumerate(markers):
            end = markers[k + 1].frame if k + 1 < len(markers) else scene.frame_end + 1
            row = col.row(align=True)
            row.label(text=f"{m.frame}-{end - 1} ({(end - m.frame) / fps:.1f} s)")
            row.prop(m, "name", text="")
        if not markers:
            layout.label(text="Add markers: each one's name is a segment's prompt", icon="INFO")
        layout.operator("bamm.generate_sequence", icon="SEQUENCE")


CLASSES = (BAMM_OT_generate_sequence, BAMM_OT_markers_from_prompt, BAMM_PT_sequence)


def register() -> None:
    bpy.types.Scene.bamm_sequence_person = StringProperty(
        name="Person", default="a person", description="Words that describe the person, put before every segment")
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    del bpy.types.Scene.bamm_sequence_person
