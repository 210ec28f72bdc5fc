"""The plain functions behind the operators, for scripts, the command line and tests.

Each operation is ``start_*`` (checks the input on the main thread, then submits a backend job) and
``finish`` (main thread, after the job succeeded: writes everything into the scene in one go). The modal
operators poll the job in between; ``generate``, ``regenerate_range`` and ``extend`` do all three steps,
blocking (``bpy.app.timers`` never fire in the bpy module). Bad input raises ``BammInputError`` (the request
fields are checked by the request contract, ``model_core.contract.request``, against the model's limits before anything
is submitted), a failed job ``BammBackendError``, a cancelled one ``BammCancelled``.

The armature is a BAMM Skeleton (its keys are model joints) or the animator's own character: then its action is
read as model joints through its bone map (``rig_source``) and the result is retargeted back with the same map and
spliced into a copy of its action, or made a new action on it (``rig_edit``).

Who runs the model is an ``Engine`` (a backend and the MODEL spec it is given): the add-on preferences' by
default; scripts and tests pass ``engine=`` to each function, or run operators inside ``use_engine(engine)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import armature, bake, backend, models, preferences, results, rig_edit, rig_source
from .core import MODEL_FPS, WEIGHTS_DIR, has_runtime, ik, model_module
from .errors import BammInputError

request = model_module(".contract.request")  # the request contract: every check of a request's fields
contract_limits = model_module(".contract.limits")  # its limits (Limits) and its error for bad input (InputError)
editing = model_module(".decoding.editing")  # numpy only: what an edit will do with its range (``travel_note``)

SEAM_BLEND_S = 0.3  # ease from the kept keys into the new motion at each seam, seconds (bake.seam_weights)
MIN_RANGE = 4  # scene frames
FRAMES_PER_TOKEN = results.FRAMES_PER_TOKEN  # edits and extensions come in these steps


@dataclass(frozen=True)
class Engine:
    """Who runs the model: ``backend`` (an object with ``submit(backend.Request) -> backend.Job``) and the MODEL
    ``spec`` it is given (see ``model_core/serving/worker.py``). A None field: the preferences' one."""

    backend: object = None
    spec: dict | None = None


_HOOKS: list[Engine] = []  # engines set by ``use_engine`` (innermost last); empty: the preferences


@contextlib.contextmanager
def use_engine(engine: Engine):
    """Scripts and tests: run every operation inside the block (the operators too) on ``engine``."""
    _HOOKS.append(engine)
    try:
        yield engine
    finally:
        _HOOKS.remove(engine)


def _engine(engine: Engine | None) -> Engine:
    return engine or (_HOOKS[-1] if _HOOKS else Engine())


def spec_of(context, engine: Engine | None = None) -> dict:
    """The MODEL spec the operation uses: ``engine``'s, else the preferences' (``model_spec``)."""
    spec = _engine(engine).spec
    return model_spec(context) if spec is None else spec


def backend_of(context, engine: Engine | None = None):
    """The backend the operation submits to: ``engine``'s, else the preferences' (``get_backend``)."""
    return _engine(engine).backend or get_backend(context)


def model_spec(context=None) -> dict:
    """The MODEL spec (see ``model_core/serving/worker.py``) from the preferences: the bundled runtime (``RUNTIME``
    back end: the active model of Preferences › Models, `models.active_folder`) or the torch weights; a
    missing runtime or weights folder -> BammInputError."""
    prefs = preferences.get(context)
    if prefs.backend == "RUNTIME":
        folder = models.active_folder(context)
        if not has_runtime(folder):
            raise BammInputError(f"No bundled runtime in '{folder}': install the BAMM zip built for your "
                                 "platform, or choose the Own Python (torch) back end in the add-on preferences")
        return {"backend": "onnx", "runtime": str(folder), "device": prefs.device.lower()}
    weights = Path(bpy.path.abspath(prefs.weights_dir)) if prefs.weights_dir else WEIGHTS_DIR
    if not (weights / "bamm.json").is_file():
        raise BammInputError(f"No BAMM weights in '{weights}' (bamm.json missing): set the Weights Folder of the "
                             "torch back end in the add-on preferences")
    encoder = {"MINILM": "minilm", "WEIGHTS": None}.get(prefs.text_encoder)
    if prefs.text_encoder == "CLIP":
        encoder = f"clip:{bpy.path.abspath(prefs.clip_path)}" if prefs.clip_path else "clip"
    return {"weights": str(weights), "text_encoder": encoder, "device": prefs.device.lower(),
            "int8": bool(prefs.int8)}


def model_key(spec: dict) -> str:
    """Names the codebook a MODEL spec's tokens index (its runtime or weights folder), so stored tokens are
    only sent back to the model that made them."""
    return json.dumps({k: spec.get(k) for k in ("backend", "runtime", "weights", "random")}, sort_keys=True)


def limits(spec: dict):
    """The request contract's limits of a spec's runtime or weights folder (a test model: the defaults; the
    worker checks again against the loaded model)."""
    folder = spec.get("runtime") or spec.get("weights")
    try:
        return contract_limits.Limits.from_folder(folder) if folder else contract_limits.Limits()
    except contract_limits.InputError as e:
        raise BammInputError(str(e)) from None


def checked(spec: dict, source_frames: int | None = None, **fields):
    """``request.Request(**fields)`` checked against the spec's limits; bad input -> BammInputError."""
    try:
        return request.Request(**fields).check(limits(spec), source_frames=source_frames)
    except contract_limits.InputError as e:
        raise BammInputError(str(e)) from None


def wheel_paths() -> list[str]:
    """The bundled wheels' folders for the runtime worker: where this Python finds them, and the shared
    ``extensions/.local/lib/pythonX.Y/site-packages`` Blender installs extension wheels into."""
    paths = backend.wheel_paths()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    try:
        local = bpy.utils.user_resource("EXTENSIONS", path=f".local/lib/{version}/site-packages")
    except (ValueError, RuntimeError, TypeError):
        local = ""
    if local and Path(local).is_dir() and str(Path(local).resolve()) not in paths:
        paths.append(str(Path(local).resolve()))
    return paths


def get_backend(context=None):
    """The backend of the add-on preferences (a running worker is reused)."""
    prefs = preferences.get(context)
    python = bpy.path.abspath(prefs.python_path) if prefs.python_path else ""
    return backend.get_backend(prefs.backend, python=python, exchange_dir=results.user_dir("exchange"),
                               paths=wheel_paths() if prefs.backend == "RUNTIME" else None)


@dataclass
class Task:
    """A submitted operation and what ``finish`` needs to write its result."""

    kind: str  # "generate" | "regenerate" | "extend"
    job: backend.Job
    scene: str
    target: str | None  # armature object name; None: create one when finishing
    action: str | None = None  # the source action (regenerate, extend)
    first: int = 1  # scene frame of the action's first key (model frame 0 of a source)
    span: tuple[int, int] | None = None  # scene frames written (inclusive)
    origin: float = 0.0  # scene frame of model frame 0 of the job's joints
    seed: int = 0
    prompt: str = ""
    model: str = ""  # ``model_key`` of the job's spec (stored with the result's tokens)
    rig: dict | None = None  # a character's bone map (``rig_source``); None: a BAMM Skeleton
    note: str = ""  # one line the user should read with the result (``editing.travel_note``)


def _target(obj, context=None) -> dict | None:
    """None for no armature or a BAMM Skeleton; a character's checked bone map (``rig_source.character``)."""
    if obj is None or armature.is_skeleton(obj):
        return None
    if obj.type != "ARMATURE":
        armature.check_armature(obj)  # says what the object is
    return rig_source.character(context or bpy.context, obj).mapping


def start_generate(context, *, prompt: str, seconds: float | None = None, seed: int = 0, variations: int = 1,
                   cfg=request.DEFAULT_CFG, target=None, engine: Engine | None = None) -> Task:
    """Submit a text-to-motion job. ``seconds`` None: the model picks the length. ``target`` None: a new
    BAMM Skeleton is created when the job finishes."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise BammInputError("Type a prompt first (what the character should do)")
    rig = _target(target, context)
    spec = spec_of(context, engine)
    req = checked(spec, op="generate", prompt=prompt, seconds=seconds, n=variations, seed=seed, cfg=tuple(cfg))
    job = backend_of(context, engine).submit(backend.Request("generate", spec, req.to_args()))
    return Task("generate", job, context.scene.name, target.name if target else None, first=context.scene.frame_start,
                origin=context.scene.frame_start, seed=req.seed, prompt=req.prompt, model=model_key(spec), rig=rig)


def frame_range(context, source: str = "PREVIEW", manual: tuple[int, int] | None = None) -> tuple[int, int]:
    """Scene frames (inclusive) from the preview range, the selected markers or ``manual``."""
    scene = context.scene
    if source == "PREVIEW":
        if not scene.use_preview_range:
            raise BammInputError("The preview range is off: set one in the timeline, or pick another range source")
        return scene.frame_preview_start, scene.frame_preview_end
    if source == "MARKERS":
        frames = sorted(m.frame for m in scene.timeline_markers if m.select)
        if len(frames) < 2:
            raise BammInputError("Select two timeline markers to mark the range")
        return frames[0], frames[-1]
    if manual is None:
        raise BammInputError("No frame range given")
    return int(manual[0]), int(manual[1])


def _source(context, target, spec: dict) -> tuple[bpy.types.Object, bpy.types.Action, results.Source, dict | None]:
    """The armature, its action, the motion the edit starts from and (a character) its bone map."""
    obj = armature.check_armature(target) if target is None else target  # None: "No target armature ..."
    rig = _target(obj, context)
    action = obj.animation_data.action if obj.animation_data else None
    if action is None:
        raise BammInputError(f"'{obj.name}' has no action to edit: generate one first")
    if rig is None:
        return obj, action, results.source(obj, action, context.scene, model=model_key(spec)), rig
    joints, first, last = rig_source.model_joints(rig_source.character(context, obj, rig), action, context.scene)
    return obj, action, results.Source(joints, None, first, last), rig


def _source_args(found: results.Source, action) -> dict:
    """The edit's source: the joints, their tokens when the motion is unchanged since generation, and the prompt
    the action was made from (the same prompt regenerates with the source leading, a new one leads the range)."""
    stored = action.get(results.PROMPT_KEY)
    return {"source": found.joints, **({"source_tokens": found.tokens} if found.tokens is not None else {}),
            **({"source_prompt": str(stored)} if stored else {})}


def start_regenerate(context, *, target, first: int, last: int, prompt: str | None = None, seed: int = 0,
                     variations: int = 1, cfg=request.DEFAULT_CFG, engine: Engine | None = None) -> Task:
    """Submit an inpainting job for scene frames ``first .. last`` (inclusive) of the target's action."""
    if first > last:
        raise BammInputError(f"The range {first}-{last} is reversed: the start must come before the end")
    if last - first + 1 < MIN_RANGE:
        raise BammInputError(f"The range {first}-{last} is shorter than {MIN_RANGE} frames")
    spec = spec_of(context, engine)
    obj, action, found, rig = _source(context, target, spec)
    joints, key_first, key_last = found.joints, found.first, found.last
    if first < key_first or last > key_last:
        raise BammInputError(f"The range {first}-{last} is outside the action '{action.name}' "
                             f"(keys {key_first}-{key_last})")
    step = bake.scene_fps(context.scene) / MODEL_FPS
    start = int(math.floor((first - key_first) / step))  # model frames covering the scene frames
    end = min(len(joints), int(math.ceil((last - key_first) / step)) + 1)
    if end - start < FRAMES_PER_TOKEN:  # the model regenerates whole tokens: widen a short range
        start = max(0, end - FRAMES_PER_TOKEN)
        end = min(len(joints), start + FRAMES_PER_TOKEN)
    req = checked(spec, len(joints), op="edit", range=(start, end), prompt=_prompt(prompt, action), n=variations,
                  seed=seed, cfg=tuple(cfg))
    args = {**_source_args(found, action), **req.to_args()}
    job = backend_of(context, engine).submit(backend.Request("edit", spec, args))
    led = editing.leading_prompt(req.prompt, args.get("source_prompt"))
    return Task("regenerate", job, context.scene.name, obj.name, action.name, key_first, (first, last),
                float(key_first), req.seed, req.prompt or "", model_key(spec), rig,
                editing.travel_note(joints, (start, end), led, MODEL_FPS) or "")


def start_extend(context, *, target, side: str, seconds: float, prompt: str | None = None, seed: int = 0,
                 variations: int = 1, cfg=request.DEFAULT_CFG, engine: Engine | None = None) -> Task:
    """Submit an outpainting job adding ``seconds`` before (side "BEFORE") or after ("AFTER") the action."""
    if side not in ("BEFORE", "AFTER"):
        raise BammInputError(f"side must be BEFORE or AFTER, got {side!r}")
    spec = spec_of(context, engine)
    obj, action, found, rig = _source(context, target, spec)
    joints, key_first, key_last = found.joints, found.first, found.last
    req = checked(spec, len(joints), op="extend", before_s=seconds if side == "BEFORE" else 0.0,
                  after_s=seconds if side == "AFTER" else 0.0, prompt=_prompt(prompt, action), n=variations,
                  seed=seed, cfg=tuple(cfg))
    added_s = req.before_s if side == "BEFORE" else req.after_s
    added = int(round(added_s * MODEL_FPS / FRAMES_PER_TOKEN)) * FRAMES_PER_TOKEN  # whole tokens, as the model
    step = bake.scene_fps(context.scene) / MODEL_FPS
    if side == "BEFORE":
        origin = key_first - added * step
        span = (int(math.ceil(origin - 1e-6)), key_first - 1)
    else:
        origin = float(key_first)
        span = (key_last + 1, int(math.floor(key_first + (len(joints) - 1 + added) * step + 1e-6)))
    args = {**_source_args(found, action), **req.to_args()}
    job = backend_of(context, engine).submit(backend.Request("extend", spec, args))
    return Task("extend", job, context.scene.name, obj.name, action.name, key_first, span, origin, req.seed,
                req.prompt or "", model_key(spec), rig)


def _prompt(prompt: str | None, action) -> str | None:
    if prompt and prompt.strip():
        return prompt.strip()
    stored = action.get(results.PROMPT_KEY)
    return str(stored) if stored else None


def finish(context, task: Task) -> list[bpy.types.Action]:
    """Write a finished job into the scene in one go (main thread): new actions, result list, preview."""
    motions = task.job.wait(0)
    scene = bpy.data.scenes[task.scene]
    obj = bpy.data.objects.get(task.target) if task.target else None
    if task.target and obj is None:
        raise BammInputError(f"The armature '{task.target}' was deleted while generating")
    if task.action and task.action not in bpy.data.actions:
        raise BammInputError(f"The action '{task.action}' was deleted or renamed while generating")
    created_armature = obj is None
    made: list[bpy.types.Action] = []
    try:
        if created_armature:
            obj = armature.build_armature(context)
        for k, motion in enumerate(motions):
            joints, prompt = motion.joints, motion.prompt
            label = (prompt or task.prompt or "unconditional")[:40]
            name = f"BAMM {task.kind} {label} s{task.seed}" + (f" #{k + 1}" if len(motions) > 1 else "")
            if task.rig is not None:
                action = _on_character(context, obj, scene, task, joints, name)
                action[results.PROMPT_KEY] = prompt or task.prompt or ""
            elif task.kind == "generate":
                action = bake.bake_joints(obj, joints, scene=scene, first_frame=task.first, name=name)
            else:
                action = _splice(obj, bpy.data.actions[task.action], scene, task, joints, name)
            if task.rig is None:
                results.store_source(obj, action, joints, task.origin, scene, prompt or task.prompt,
                                     tokens=motion.tokens, model=task.model)
            made.append(action)
    except Exception:
        for action in made:
            bpy.data.actions.remove(action)
        if created_armature and obj is not None:
            bpy.data.objects.remove(obj)
        raise
    if created_armature:
        scene.bamm.target = obj
    previous = obj.animation_data.action if obj.animation_data else None
    if task.rig is not None and previous is not None and previous.users <= 1 and not previous.use_fake_user:
        previous.use_fake_user = True  # the animator's own action stays in the file when a result replaces it
    results.add(scene, obj, made, kind=task.kind, seed=task.seed)
    return made


def _on_character(context, obj, scene, task: Task, joints: np.ndarray, name: str) -> bpy.types.Action:
    """A result on a character (``rig_edit``): a new action, or the edit spliced into its action."""
    ch = rig_source.character(context, obj, task.rig)
    if task.kind == "generate":
        return rig_edit.new_action(ch, joints, scene, task.first, name=name)
    return rig_edit.splice(ch, bpy.data.actions[task.action], scene, task.span, task.origin, joints, name=name,
                           blend_s=SEAM_BLEND_S)


def _splice(obj, source, scene, task: Task, joints: np.ndarray, name: str) -> bpy.types.Action:
    """Keys on ``task.span`` from the job's joints, crossfaded with the source keys at the seams."""
    first, last = task.span
    frames = np.arange(first, last + 1, dtype=np.float64)
    step = bake.scene_fps(scene) / MODEL_FPS
    new = ik.sample(ik.solve(joints, rest=armature.rest_joints_of(obj)), (frames - task.origin) / step)
    old_quats, old_locations = bake.read_bone_space(obj, source, frames)
    old = bake.from_bone_space(obj, old_quats, old_locations)
    blend = max(1, int(round(SEAM_BLEND_S * bake.scene_fps(scene))))
    weight = bake.seam_weights(len(frames), first, last, *bake.key_range(obj, source), blend)
    quats, locations = bake.to_bone_space(obj, ik.crossfade(old, new, weight))
    flip = np.sum(quats[0] * old_quats[0], axis=-1) < 0  # start on the kept keys' side of the quaternion sign
    quats[:, flip] *= -1
    return bake.splice(obj, source, first, quats, locations, name=name)


def run(context, task: Task, *, timeout: float | None = None) -> list[bpy.types.Action]:
    """Wait for the task's job (blocking), then ``finish`` it."""
    task.job.wait(timeout)
    return finish(context, task)


def generate(context, *, timeout: float | None = None, **kwargs) -> list[bpy.types.Action]:
    """``start_generate`` + wait + ``finish``: the new actions (the first is assigned and previewed)."""
    return run(context, start_generate(context, **kwargs), timeout=timeout)


def regenerate_range(context, *, timeout: float | None = None, **kwargs) -> list[bpy.types.Action]:
    return run(context, start_regenerate(context, **kwargs), timeout=timeout)


def extend(context, *, timeout: float | None = None, **kwargs) -> list[bpy.types.Action]:
    return run(context, start_extend(context, **kwargs), timeout=timeout)


preview_result = results.preview
apply_result = results.apply
clear_results = results.clear
