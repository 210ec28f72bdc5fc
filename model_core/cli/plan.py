"""``bamm generate`` with several actions in one prompt: the plan is printed, can be written (``--show-plan``),
edited and given back (``--plan <file>``); see `contract/plan.py` and `decoding/compose.py`.

The plan goes through the request contract like any request (``Request(op="plan")``: `plan.check_plan` checks
the step count, each step's prompts and seconds) before a model loads; the outputs are written by the safe
writer (``common.write_outputs``: numbered names unless ``--overwrite``)."""

from __future__ import annotations

from pathlib import Path

from ..contract.limits import InputError, Limits, check_prompt
from ..contract.plan import Plan, Step, make_plan
from ..contract.request import Request
from ..serving import outputs
from .common import check_device, load_model, print_written, slugify, write_outputs
from .main import CLIError

MAX_PLAN_BYTES = 1_000_000  # a plan of MAX_STEPS steps is a few kilobytes


def plan_of(prompt: str | None, plan_file: str | None, limits: Limits) -> Plan:
    """The plan from ``--plan <file>`` when given, else from the prompt; InputError (one line) otherwise."""
    if prompt is not None:  # with --plan, the prompt names the files
        prompt = check_prompt(prompt, limits, required=True)
    if plan_file is not None:
        path = Path(plan_file)
        if not path.is_file():
            raise CLIError(f"plan file not found: {path}")
        try:
            if path.stat().st_size > MAX_PLAN_BYTES:
                raise InputError(f"{path.stat().st_size} bytes: not a plan (at most {MAX_PLAN_BYTES})")
            return Plan.from_json(path.read_text(encoding="utf-8"), limits)
        except (InputError, OSError, UnicodeDecodeError) as e:
            raise CLIError(f"{path}: {' '.join(str(e).split())}") from None
    if prompt is None:
        raise CLIError("give a prompt or --plan FILE (see 'bamm generate --help')")
    return make_plan(prompt)


def plan_request(args, plan: Plan, limits: Limits) -> Request:
    """The checked ``plan`` request of the command line: ``--seconds`` / ``--frames`` set the length of a
    one-step plan (checked as a generate length), n / seed / cfg / rounds as for one action."""
    if args.frames is not None or args.seconds is not None:
        if len(plan.steps) > 1:
            raise CLIError("--seconds / --frames apply to one step; give each step's seconds in a plan file instead")
        s = plan.steps[0]
        frames = Request(op="generate", prompt=s.prompt, frames=args.frames, seconds=args.seconds).check(limits).frames
        plan = Plan(plan.person, [Step(s.prompt, s.kind, frames / limits.fps, s.together)])
    return Request(op="plan", plan=plan, n=args.n, seed=args.seed, cfg=tuple(args.cfg),
                   rounds=args.rounds).check(limits)


def generate_plan_cmd(args, plan: Plan, limits: Limits, profile: str) -> int:
    """Several actions: the plan is checked and printed, then generated as one motion per variation."""
    from ..decoding.compose import generate_request

    req = plan_request(args, plan, limits)
    if profile != "bamm":
        raise CLIError(f"--profile {profile} decodes one action: a plan (several actions) uses the bamm profile")
    check_device(args)
    out = outputs.check_folder(args.out)
    print(req.plan.describe())
    bamm = load_model(args)
    caption = " / ".join(s.prompt for s in req.plan.steps)
    for k, (m, bounds) in enumerate(generate_request(bamm, req, req.plan)):
        wanted = slugify(args.prompt or caption) + (f"_{k}" if req.n > 1 else "")
        paths = write_outputs(m.joints, out, wanted, caption=caption, fbx=not args.no_fbx,
                              preview=not args.no_preview, overwrite=args.overwrite, fps=limits.fps)
        steps = ", ".join(f"{b / limits.fps:.2f} s" for b in bounds) or "none"
        print_written(paths, f"{len(m.joints)} frames = {len(m.joints) / limits.fps:.2f} s (steps start at {steps})",
               wanted)
    return 0
