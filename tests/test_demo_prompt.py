"""The README's demo prompt does what it says with the shipped weights: the person walks forward and waves the
right hand at the same time (the criteria of `eval/composition.py`, calibrated on real clips), for several
seeds, through the path `bamm generate` / `make demo` takes (the plan, then `compose.generate_plan`)."""

from pathlib import Path

import pytest

from model_core.contract.plan import make_plan
from model_core.decoding.compose import generate_plan
from model_core.decoding.generate import BAMM
from model_core.eval import composition as C

ROOT = Path(__file__).resolve().parents[1]
DEMO = "an elderly person walks forward and waves with the right hand"


def test_the_demo_prompt_is_the_readmes():
    assert f'PROMPT="{DEMO}"' in (ROOT / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_prompt_walks_forward_while_waving_the_right_hand(seed):
    plan = make_plan(DEMO)
    assert [(s.prompt, s.together) for s in plan.steps] == [
        ("an elderly person walks forward", "an elderly person waves with the right hand")]
    motion, _ = generate_plan(BAMM.from_pretrained(ROOT / "weights"), plan, seed=seed)
    j = motion.joints
    report = (f"seed {seed}: {C.forward_speed(j):.2f} m/s forward, right wrist up {C.hand_up_frames(j, 'right').sum()}"
              f" frames, left {C.hand_up_frames(j, 'left').sum()}")
    assert C.passes_together(j, "right_hand_up"), report
    assert not C.passes(j, "left_hand_up"), report
    assert C.arm_clearance(j) >= C.CLEARANCE, report
