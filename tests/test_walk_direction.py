"""The shipped weights walk the way the prompt says: forward prompts travel along the facing, backward
prompts against it (the pelvis's travel in the body frame, `eval.dynamics.travel`), for several seeds.

Earlier weights walked "a person walks forward" six metres backwards with every seed: guidance multiplies the
conditional probability of a token by its ratio to the unconditional one, and the few codes the tokenizer
uses for walking back are rare unconditionally, so text that left them even a small conditional share
(blurred by heavy text noise in training) got them. Each seed must travel; a slow walk that stays in place
is tolerated once, travelling the wrong way never."""

from pathlib import Path

import pytest

from model_core.decoding.generate import BAMM
from model_core.eval.dynamics import travel

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
SEEDS = (0, 1, 2)
FORWARD = ("a person walks forward", "a person walks", "someone walks forward", "a man walks forward slowly",
           "an elderly person walks forward", "a person runs forward", "a woman strolls ahead", "walk forward")
BACKWARD = ("a person walks backwards", "someone steps back a few paces", "a man backs up")
OPPOSITE = {"forward": "backward", "backward": "forward"}


@pytest.fixture(scope="module")
def bamm():
    return BAMM.from_pretrained(WEIGHTS)


@pytest.mark.slow
@pytest.mark.parametrize("prompt,expected", [(p, "forward") for p in FORWARD] + [(p, "backward") for p in BACKWARD])
def test_walking_prompts_travel_the_way_they_say(bamm, prompt, expected):
    got = [travel(m.joints) for m in (bamm.generate(prompt, seed=s)[0] for s in SEEDS)]
    report = f"{prompt!r}: " + ", ".join(f"{t.direction} {t.forward_m:+.1f} m" for t in got)
    assert not any(t.direction == OPPOSITE[expected] for t in got), report
    assert sum(t.direction == expected for t in got) >= len(SEEDS) - 1, report
