"""Several actions in one motion: a `plan.Plan` -> one `Motion`.

In turn: the steps are generated with their own lengths and joined by the model's transitions
(`Generator.generate_long`). A step's length is the model's choice (a first pass that generates the step alone)
unless the plan gives seconds.

At once (a step with a ``together`` arm prompt): the arm prompt is generated with the locomotion's length and
its arms are composed onto the locomotion in rotation space (`motion/arms.py`) -- both motions go through the
IK (joints -> local bone rotations on the HumanML3D skeleton), the local rotations of the arm
chains (collar, shoulder, elbow, wrist) of the arm action replace the locomotion's, and forward kinematics gives
the joints back. The legs, the root path, the spine and the head stay the locomotion's, so foot contact and
travel are untouched; the arms keep their pose relative to the chest, which carries them along. Only the arm(s)
that act are taken ("right", "left", "both" in the prompt; else the side(s) whose wrist rises above the
shoulder in the arm motion), so the other arm keeps its swing. Inside a sequence the composed arms fade in and
out over ``motion.arms.RAMP`` frames at the step's boundaries.

``refine=True`` re-encodes the composed motion into tokens and lets the BAMM transformer re-predict every
other token of the composed steps from the whole prompt (bidirectional, like the refinement pass of
generation). Measured by ``bench/composition.py``: it gives the arm action back to the model's single-action
habits, so it is off by default.

Numpy only (runs in the worker with either back end). The result is joints (T, 22, 3) with their features and
tokens, so it goes down the same path (bake, export, edit) as a single-prompt motion.
"""

from __future__ import annotations

import numpy as np

from ..contract.plan import Plan, Step, make_plan
from ..contract.request import DEFAULT_CFG
from ..motion.arms import arm_sides, compose_arms, ramp
from . import loop as D
from .editing import padded_features
from .generate import Generator
from .loop import Sampler, Settings
from .results import Motion

def step_frames(model: Generator, plan: Plan, *, seed: int = 0, **settings) -> list[int]:
    """Frames of each step: the plan's seconds, else the length the model chooses for the step's prompt (for a
    step with an arm action at once, the longer of the two prompts' lengths: a short walk leaves no time to
    wave)."""
    f = model.frames_per_token
    frames = [None if s.seconds is None else int(round(s.seconds * model.fps)) // f * f for s in plan.steps]
    auto = [k for k, v in enumerate(frames) if v is None]
    prompts = [p for k in auto for p in (plan.steps[k].prompt, plan.steps[k].together) if p]
    if prompts:
        chosen = iter(model.generate(prompts, seed=seed, **settings))
        for k in auto:
            frames[k] = max(next(chosen).frames for p in (plan.steps[k].prompt, plan.steps[k].together) if p)
    return [min(max(v, f), model.max_frames) for v in frames]


def plan_of_request(req, fps: float = 20.0, frames_per_token: int = 4) -> Plan | None:
    """The plan of a checked `request.Request`: a ``plan`` request's plan, or the plan of a ``generate``
    prompt naming several actions (None for one action: plain generation). A ``generate`` length (``frames``)
    is shared by the steps."""
    if req.op == "plan":
        return req.plan
    plan = make_plan(req.prompt)
    if plan.single:
        return None
    if req.frames is not None:
        f = frames_per_token
        each = max(f, req.frames // len(plan.steps) // f * f) / fps
        plan = Plan(plan.person, [Step(s.prompt, s.kind, each, s.together) for s in plan.steps])
    return plan


def generate_request(model: Generator, req, plan: Plan, progress=None) -> list[tuple[Motion, list[int]]]:
    """``req.n`` motions of ``plan`` (seeds ``req.seed``, ``req.seed + 1``, ...; the decoding settings of the
    checked request), each with its step boundaries (see `generate_plan`)."""
    out = []
    for k in range(req.n):
        step = None if progress is None else (lambda s, f, k=k: progress(s, (k + f) / req.n))
        out.append(generate_plan(model, plan, seed=req.seed + k, progress=step, **req.settings()))
    return out


def run_plan(model: Generator, req, progress=None) -> list[Motion] | None:
    """The worker's flow for a checked ``generate`` / ``plan`` request: its motions when it has a plan,
    None for a ``generate`` prompt naming one action (plain generation)."""
    plan = plan_of_request(req, model.fps, model.frames_per_token)
    return None if plan is None else [motion for motion, _ in generate_request(model, req, plan, progress)]


def generate_plan(model: Generator, plan: Plan | str, *, seed: int = 0, cfg: tuple[float, float] = DEFAULT_CFG,
                  refine_composed: bool = False, progress=None, **settings) -> tuple[Motion, list[int]]:
    """One motion for a plan (or a prompt, planned with `make_plan`) and its step boundaries in frames (the
    frame where each step after the first starts). ``settings``: refine, rounds, temperature, top_k, res_cfg
    as in `Generator.generate`."""
    plan = make_plan(plan) if isinstance(plan, str) else plan
    settings = dict(settings, cfg=cfg)
    if plan.single:
        s = plan.steps[0]
        frames = None if s.seconds is None else int(round(s.seconds * model.fps))
        return model.generate(s.prompt, frames=frames, seed=seed, progress=progress, **settings)[0], []
    frames = step_frames(model, plan, seed=seed, **settings)
    if len(plan.steps) == 1:
        motion = model.generate(plan.steps[0].prompt, frames=frames[0], seed=seed, **settings)[0]
    else:
        motion = model.generate_long([(s.prompt, n) for s, n in zip(plan.steps, frames)], seed=seed,
                                     progress=progress, **settings)
    bounds = [int(b) for b in np.cumsum(frames)[:-1]]
    starts = [0, *bounds]
    joints, composed = motion.joints, []
    for k, s in enumerate(plan.steps):
        if s.together is None:
            continue
        arm = model.generate(s.together, frames=frames[k], seed=seed + 1 + k, **settings)[0].joints
        lo, hi = starts[k], starts[k] + len(arm)
        weight = ramp(len(arm), k > 0, k + 1 < len(plan.steps))
        joints = joints.copy()
        joints[lo:hi] = compose_arms(joints[lo:hi], arm, arm_sides(s.together, arm), weight)
        composed.append((lo, hi))
    prompt = " / ".join(s.prompt + (f" + {s.together}" if s.together else "") for s in plan.steps)
    if not composed:
        return Motion(joints=motion.joints, features=motion.features, tokens=motion.tokens, prompt=prompt,
                      fps=model.fps), bounds
    feats = padded_features(joints)
    tokens = model.features_to_codes(feats)
    if refine_composed:
        tokens, joints = _refine(model, tokens, composed, plan, seed, settings)
        feats = padded_features(joints)
    return Motion(joints=joints, features=feats, tokens=tokens, prompt=prompt, fps=model.fps), bounds


def _refine(model: Generator, tokens: np.ndarray, composed: list[tuple[int, int]], plan: Plan, seed: int,
            settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """Re-predict every other token of the composed steps with the BAMM transformer (the others visible)."""
    f = model.frames_per_token
    keep = np.ones(len(tokens), bool)
    for lo, hi in composed:
        keep[lo // f:hi // f:2] = False
    st = Settings(cfg=settings["cfg"], refine=None, rounds=1,
                  **{k: settings[k] for k in ("temperature", "top_k", "res_cfg") if k in settings})
    words = "; ".join(s.prompt + (f" while {s.together}" if s.together else "") for s in plan.steps)
    new = D.regenerate(model.nets, [(tokens, keep)], model.encode_text([words]), st, Sampler(seed), None)[0]
    _, joints = model.decode(new)
    return new, joints
