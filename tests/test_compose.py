"""Arm composition in rotation space on real clips, the criteria's calibration, and plan generation end to end
on a tiny random model."""

import json
from pathlib import Path

import numpy as np
import pytest

from model_core.contract.plan import Plan, Step
from model_core.decoding.compose import generate_plan
from model_core.eval import composition as C
from model_core.motion.arms import ARM_JOINTS, arm_sides, compose_arms
from model_core.motion.skeleton import JOINT_INDEX as J

NOT_ARMS = [j for j in range(22) if j not in ARM_JOINTS["right"] + ARM_JOINTS["left"]]


@pytest.fixture(scope="module")
def clips(built_bandai):
    metas = [json.loads(line) for line in (built_bandai / "meta.jsonl").read_text().splitlines()]
    first = {}  # one clip per action: a test clip of the normal style, else another test clip
    for m in sorted(metas, key=lambda m: (m["split"] != "test", m["style"] != "normal")):
        if m["content"] not in first:
            first[m["content"]] = np.load(built_bandai / "new_joints" / f"{m['id']}.npy")
    return first


def _same_length(a, b):
    n = min(len(a), len(b))
    return a[:n], b[:n]


def _elbow_angle(j, side):
    s, e, w = (J[f"{side[0]}_{p}"] for p in ("shoulder", "elbow", "wrist"))
    u, v = j[:, s] - j[:, e], j[:, w] - j[:, e]
    return np.arccos(np.clip((u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1), -1, 1))


def test_walk_with_a_real_wave_shows_both_and_keeps_legs_and_root(clips):
    walk, wave = _same_length(clips["walk"], clips["wave-right-hand"])
    assert C.passes(walk, "forward") and not C.passes(walk, "right_hand_up")
    out = compose_arms(walk, wave, ("right",))
    kept = NOT_ARMS + list(ARM_JOINTS["left"])
    np.testing.assert_array_equal(out[:, kept], walk[:, kept])
    assert C.passes_together(out, "right_hand_up")
    assert not C.passes(out, "left_hand_up")
    assert C.arm_clearance(out) >= C.CLEARANCE
    np.testing.assert_allclose(_elbow_angle(out, "right"), _elbow_angle(wave, "right"), atol=1e-3)


@pytest.mark.parametrize("content, sides", [("raise-up-both-hands", ("right", "left")),
                                            ("wave-left-hand", ("left",)), ("wave-right-hand", ("right",))])
def test_the_acting_arms_are_measured_when_the_prompt_names_no_side(clips, content, sides):
    assert arm_sides("a person waves", clips[content]) == sides


@pytest.mark.parametrize("prompt, sides", [("a man raises both hands", ("right", "left")),
                                           ("a man waves his left hand", ("left",)),
                                           ("a man raises the right arm", ("right",))])
def test_a_side_named_in_the_prompt_wins(prompt, sides):
    assert arm_sides(prompt, np.zeros((10, 22, 3))) == sides


def test_zero_weight_gives_the_base_back(clips):
    walk, wave = _same_length(clips["walk"], clips["wave-both-hands"])
    out = compose_arms(walk, wave, ("right", "left"), np.zeros(len(walk)))
    np.testing.assert_allclose(out, walk, atol=1e-6)


@pytest.mark.parametrize("shape, sides, match", [((9, 22, 3), ("right",), "share"), ((10, 22, 3), (), "sides"),
                                                 ((10, 22, 3), ("up",), "sides")])
def test_bad_inputs(shape, sides, match):
    with pytest.raises(ValueError, match=match):
        compose_arms(np.zeros((10, 22, 3)), np.zeros(shape), sides)


def test_criteria_on_real_test_clips(clips):
    """Each action's clip passes its own criterion; the other criteria reject it."""
    for content, criterion in [("walk", "forward"), ("run", "forward"), ("bow", "bow"),
                               ("wave-right-hand", "right_hand_up"), ("raise-up-left-hand", "left_hand_up"),
                               ("raise-up-both-hands", "both_hands_up")]:
        if content not in clips:
            continue
        j = clips[content]
        assert C.passes(j, criterion), content
        others = {"forward", "bow", "right_hand_up", "left_hand_up"} - {criterion}
        if criterion == "both_hands_up":
            others -= {"right_hand_up", "left_hand_up"}
        assert not any(C.passes(j, o) for o in others), content


def test_real_pass_rates_of_the_test_split(built_bandai):
    rates = C.real_pass_rates(built_bandai, split="test")
    passed, total = sum(v[0] for v in rates.values()), sum(v[1] for v in rates.values())
    assert total > 100 and passed / total >= 0.8
    assert rates["walk"][0] == rates["walk"][1]


def test_in_turn_scoring_checks_the_order(clips):
    walk, bow = clips["walk"], clips["bow"]
    seq = np.concatenate([walk, bow - bow[:1, :1] + walk[-1:, :1]])
    assert C.passes_in_turn(seq, ["forward", "bow"], [len(walk)])
    assert not C.passes_in_turn(seq, ["bow", "forward"], [len(walk)])


@pytest.fixture(scope="module")
def tiny():
    from model_core.decoding.generate import BAMM

    return BAMM.random(preset="tiny", text_encoder="minilm", seed=0)


def test_plan_generation_joins_steps_and_composes(tiny):
    plan = Plan("a person", [Step("a person walks forward", "locomotion", 2.0, "a person raises both hands"),
                             Step("a person bows", "body", 1.6)])
    motion, bounds = generate_plan(tiny, plan, seed=3)
    assert motion.joints.shape == (72, 22, 3) and bounds == [40]
    assert motion.tokens.shape == (18, tiny.nets.config.num_quantizers)
    assert motion.features.shape == (72, 263) and np.isfinite(motion.joints).all()
    assert "raises both hands" in motion.prompt


def test_single_plan_is_plain_generation(tiny):
    a = tiny.generate("a person bows", frames=32, seed=5)[0]
    b, bounds = generate_plan(tiny, Plan("a person", [Step("a person bows", "body", 1.6)]), seed=5)
    assert bounds == [] and np.array_equal(a.joints, b.joints) and np.array_equal(a.tokens, b.tokens)


def test_plan_and_composition_import_without_torch():
    """The runtime worker (Blender's Python: numpy, no torch) plans and composes."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; import model_core.decoding.compose, model_core.contract.plan, "
            "model_core.eval.composition, model_core.serving.worker; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "ok", out.stderr


def test_worker_plan_op_goes_through_the_request_contract(tiny):
    """The worker's ``plan`` op: the plan is checked by the request contract (InputError, before decoding), n and
    seed come from the checked request, and a generate prompt naming two actions is planned the same way."""
    from model_core.contract.limits import InputError
    from model_core.serving import worker

    plan = {"steps": [{"prompt": "a person walks forward", "seconds": 1.2, "together": "a person waves"},
                      {"prompt": "a person bows", "seconds": 0.8}]}
    motions = worker.run(tiny, "plan", {"plan": plan, "n": 2, "seed": 4})
    assert [m.joints.shape for m in motions] == [(40, 22, 3)] * 2
    assert not np.array_equal(motions[0].joints, motions[1].joints)  # seeds 4 and 5
    again, _ = generate_plan(tiny, Plan.from_json(json.dumps(plan)), seed=5)
    assert np.array_equal(again.joints, motions[1].joints)
    planned = worker.run(tiny, "generate", {"prompt": "a person walks forward, then bows", "frames": 40})
    assert len(planned) == 1 and planned[0].prompt == "a person walks forward / a person bows"
    for bad, message in (({"plan": {"steps": [{"prompt": "a person bows", "seconds": 5.0}]}}, "'seconds' must be"),
                         ({"plan": plan, "n": 0}, "n must be an integer"),
                         ({"plan": plan, "colour": 1}, "unknown argument")):
        with pytest.raises(InputError, match=message):
            worker.run(tiny, "plan", bad)


def test_the_chest_variant_also_moves_neck_and_head_but_keeps_legs_and_root(clips):
    walk, bow = _same_length(clips["walk"], clips["bow"])
    out = compose_arms(walk, bow, ("right",), chest=True)
    legs = [j for j in NOT_ARMS if j not in (J["neck"], J["head"])]
    np.testing.assert_array_equal(out[:, legs], walk[:, legs])
    assert np.abs(out[:, J["head"]] - walk[:, J["head"]]).max() > 0.05  # the bow's chest comes along
    np.testing.assert_array_equal(compose_arms(walk, bow, ("right",)), compose_arms(walk, bow, ("right",),
                                                                                   chest=False))
