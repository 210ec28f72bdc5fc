"""Long sequences: one prompt per timeline segment, generated as one motion (BAMM panel > Sequence). Plain
functions (the work module of the **Generate Sequence** and **Markers from Prompt** operators).

Each timeline marker starts a segment that runs to the next marker (the last one to the scene's end); the
marker's name says what happens in it ("walks forward", "bows", "walks while waving the right hand"), and the
Person words (``scene.bamm.sequence_person``, "an elderly person") go in front of every segment.
`start_sequence` sends the segments as a plan (``model_core/contract/plan.py``), checked by the request contract
(``Request(op="plan")``) before anything is submitted, to the back end's ``plan`` op: each segment is generated
with its own length and joined with the model's transitions, an arm action "while" walking composed onto the
walk (``model_core/decoding/compose.py``), and the result is baked from the first marker on like a generated motion.
`markers_from_prompt` lays out the plan of the panel's prompt as markers (the panel lists that plan), to edit.
"""

from __future__ import annotations

import re

import bpy

from . import backend, headless
from .bake import scene_fps
from .core import model_module
from .errors import BammInputError

_DEFAULT_NAME = re.compile(r"^F_\d+$")  # the name Blender gives a new marker


def _plan_module():
    return model_module(".contract.plan")


def marker_spans(scene) -> list[tuple[bpy.types.TimelineMarker, int]]:
    """[(marker, end frame (exclusive))] in time order: a marker's segment runs to the next marker, the last
    one's to the scene's end."""
    markers = sorted(scene.timeline_markers, key=lambda m: m.frame)
    return [(m, markers[k + 1].frame if k + 1 < len(markers) else scene.frame_end + 1) for k, m in enumerate(markers)]


def segments(scene) -> list[tuple[int, int, str]]:
    """[(first frame, end frame (exclusive), what happens)] from the scene's markers, in time order."""
    spans = marker_spans(scene)
    if not spans:
        raise BammInputError("Add timeline markers (M in the timeline): each starts a segment, its name says "
                             "what happens")
    out = []
    for m, end in spans:
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


def _without_person(person: str, prompt: str) -> str:
    """A step's prompt without the plan's person words in front (what a marker's name says)."""
    return prompt[len(person):].strip() if prompt.startswith(person) else prompt


def plan_of_segments(scene, person: str) -> dict:
    """The plan object (as ``Plan.to_data`` writes it) of the markers' segments; its seconds are checked by
    the request contract when it is submitted."""
    plan_module, kinds = _plan_module(), model_module(".contract.kinds")
    fps = scene_fps(scene)
    steps = []
    for first, end, text in segments(scene):
        prompt = segment_prompt(person, text)
        plan = plan_module.make_plan(prompt)
        one = plan.steps[0] if len(plan.steps) == 1 else plan_module.Step(prompt, kinds.kind_of(prompt))
        steps.append({"prompt": one.prompt, "kind": one.kind, "seconds": (end - first) / fps,
                      "together": one.together})
    return {"person": person.strip(), "steps": steps}


def start_sequence(context, *, seed: int = 0, variations: int = 1, cfg=headless.request.DEFAULT_CFG, target=None,
                   engine: headless.Engine | None = None) -> headless.Task:
    """Submit the markers' segments as one plan job; ``headless.finish`` bakes it from the first marker."""
    scene = context.scene
    plan = plan_of_segments(scene, scene.bamm.sequence_person)
    rig = headless._target(target, context)  # a character: the motion is retargeted onto it
    spec = headless.spec_of(context, engine)
    try:
        req = headless.checked(spec, op="plan", plan=plan, n=variations, seed=seed, cfg=tuple(cfg))
    except BammInputError as e:  # name the segment: "plan step 2: ..." -> the marker the user sees
        raise BammInputError(_segment_message(str(e), plan)) from None
    job = headless.backend_of(context, engine).submit(backend.Request("plan", spec, req.to_args()))
    first = min(m.frame for m in scene.timeline_markers)
    prompt = " / ".join(s.prompt for s in req.plan.steps)
    return headless.Task("generate", job, scene.name, target.name if target else None, first=first, origin=first,
                         seed=req.seed, prompt=prompt, model=headless.model_key(spec), rig=rig)


def _segment_message(message: str, plan: dict) -> str:
    m = re.match(r"plan step (\d+): (.*)$", message)
    if not m or not 1 <= int(m[1]) <= len(plan["steps"]):
        return message
    step = plan["steps"][int(m[1]) - 1]
    return f"Segment '{step['prompt']}' ({step['seconds']:.2f} s): {m[2]}"


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
    scene.bamm.sequence_person = plan.person
    frame, made = scene.frame_start, []
    for s in plan.steps:
        text = _without_person(plan.person, s.prompt)
        if s.together:
            text = f"{text} while {_without_person(plan.person, s.together)}"
        made.append(scene.timeline_markers.new(text[:63], frame=frame))
        frame += int(round((s.seconds or seconds) * fps))
    scene.frame_end = max(scene.frame_end, frame - 1)
    return made


def plan_lines(prompt: str) -> list[str]:
    """The panel's view of the prompt's plan (``Plan.describe``), one line each."""
    return [line.strip() for line in _plan_module().make_plan(prompt).describe().splitlines()]
