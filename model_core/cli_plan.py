"""``bamm generate`` with several actions in one prompt: the plan is printed, can be written (``--show-plan``),
edited and given back (``--plan <file>``); see `plan.py` and `compose.py`."""

from __future__ import annotations

from pathlib import Path

from .cli import CLIError
from .plan import Plan, make_plan


def plan_of(prompt: str | None, plan_file: str | None) -> Plan:
    """The plan from ``--plan <file>`` when given, else from the prompt."""
    if plan_file is not None:
        path = Path(plan_file)
        if not path.is_file():
            raise CLIError(f"plan file not found: {path}")
        try:
            return Plan.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise CLIError(f"{path}: {e}") from None
    if prompt is None or not prompt.strip():
        raise CLIError("the prompt is empty: describe the motion, e.g. 'a person jumps forward'")
    return make_plan(prompt)


def generate_from_plan(bamm, plan: Plan, *, n: int, seed: int, settings: dict) -> list:
    """``n`` motions of a plan (seeds seed, seed + 1, ...), each with its step boundaries."""
    from .compose import generate_plan

    return [generate_plan(bamm, plan, seed=seed + k, **settings) for k in range(n)]
