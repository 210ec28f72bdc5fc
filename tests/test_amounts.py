"""Words about how long and how fast (`contract/amounts.py`, `decoding/pacing.py`, `motion/retime.py`): parsing, the
request's pace, the plan's step lengths, time-stretching, and on the shipped weights the lengths, travel and speed they
give over a few seeds (`bench/amounts.py` prints the full figures)."""

from pathlib import Path

import numpy as np
import pytest

from model_core.contract.amounts import FAST, SLOW, VERY_SLOW, WALK_FRAMES, parse, pace_of
from model_core.contract.limits import Limits
from model_core.contract.plan import make_plan
from model_core.contract.request import Request
from model_core.eval.dynamics import PELVIS, travel
from model_core.motion.retime import retime, touchdowns

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
LIM = Limits()


@pytest.mark.parametrize("prompt,seconds", [
    ("a person waves for 3 seconds", 3.0), ("waves for 3s", 3.0), ("a person waves for 3 s", 3.0),
    ("a two second wave", 2.0), ("a two-second wave", 2.0), ("a 3-second bow", 3.0),
    ("walks forward for 1.5 seconds", 1.5), ("walks for one and a half seconds", 1.5),
    ("bows for a second", 1.0), ("waves for a couple of seconds", 2.0), ("waves for a few seconds", 3.0),
    ("for half a minute a man runs", 30.0), ("walks for twenty-five seconds", 25.0), ("jogs for 2 min", 120.0),
    ("a minute and a half of walking", 90.0), ("A person waves for FIVE seconds.", 5.0),
])
def test_durations_in_digits_and_words(prompt, seconds):
    assert parse(prompt).seconds == pytest.approx(seconds)


@pytest.mark.parametrize("prompt,steps", [
    ("a person takes two steps forward", 2), ("a person takes a few steps forward", 3), ("takes a step back", 1),
    ("someone walks a couple of steps", 2), ("someone steps back a few paces", 3), ("retreat 3 steps", 3),
    ("takes three small steps", 3), ("several strides forward", 4), ("a single step to the left", 1),
])
def test_counted_steps(prompt, steps):
    assert parse(prompt).steps == steps


@pytest.mark.parametrize("prompt,speed", [
    ("the woman walks straight ahead slowly", SLOW), ("a person walks slow", SLOW), ("a leisurely stroll", SLOW),
    ("walks at a slow pace", SLOW), ("a person walks very slowly", VERY_SLOW), ("a person walks quickly", FAST),
    ("someone walks briskly", FAST), ("a person walks fast", FAST), ("a quick bow", FAST), ("runs rapidly", FAST),
])
def test_pace_words(prompt, speed):
    assert parse(prompt).speed == speed


@pytest.mark.parametrize("prompt", [
    "a person walks", "waves a second time", "a short man walks", "sprint as fast as you can", "not too fast",
    "takes 2 steps per second", "every 2 seconds he waves", "walks, one step at a time", "dance steps",
    "a person steps forward", "someone slows down", "walks slowly, then quickly", "a woman with long hair waves",
])
def test_words_that_are_not_amounts(prompt):
    a = parse(prompt)
    assert a.seconds is None and a.steps is None and a.size is None and a.speed == 1.0, a


@pytest.mark.parametrize("prompt,text", [
    ("a person walks forward for 1.5 seconds", "a person walks forward"), ("a two-second wave", "a wave"),
    ("for half a minute, a man runs", "a man runs"), ("the woman walks straight ahead slowly",
                                                      "the woman walks straight ahead"),
    ("a man runs quickly", None), ("a person waves slowly for 3 seconds", "a person waves slowly"),
    ("a person walks", None), ("sprint as fast as you can", None),
])
def test_the_model_reads_the_prompt_without_durations_and_a_walks_pace_word(prompt, text):
    assert pace_of(prompt, None, LIM).text == text


def test_the_request_length_wins_and_durations_set_whole_tokens():
    assert pace_of("a person waves for 3 seconds", 100, LIM).frames == 100
    assert pace_of("a person waves for 3 seconds", 100, LIM).source == "request"
    assert pace_of("a person waves for 3 seconds", None, LIM).frames == 60
    assert pace_of("a person waves for 1.1 seconds", None, LIM).frames == 24  # 22 frames -> 6 tokens
    p = pace_of("a person waves for half a minute", None, LIM)
    assert p.frames == LIM.max_frames and "9.8 s" in p.notes[0]
    plain = pace_of("a person walks", None, LIM)
    assert plain.plain and plain.frames is None and plain.text is None
    assert pace_of("a person walks", 80, LIM).plain


def test_pace_over_a_given_length_and_short_walks():
    slow = pace_of("a person runs slowly", 100, LIM)
    assert (slow.frames, slow.out, slow.keep) == (72, 100, None) and slow.speed == pytest.approx(0.72)
    slow = pace_of("a person walks slowly", 100, LIM)  # a short walk: made at WALK_FRAMES, 72 frames kept
    assert (slow.frames, slow.keep, slow.out, slow.text) == (WALK_FRAMES, 72, 100, "a person walks")
    fast = pace_of("a person walks quickly", 180, LIM)  # 243 frames would be needed: the limit caps the pace
    assert (fast.frames, fast.out) == (LIM.max_frames, 180) and fast.notes
    walk = pace_of("a person walks forward for 1.5 seconds", None, LIM)
    assert (walk.frames, walk.keep, walk.out) == (WALK_FRAMES, 32, None)
    run = pace_of("a man runs for 2 seconds", None, LIM)
    assert (run.frames, run.keep) == (40, None)
    steps = pace_of("a person takes two steps forward", None, LIM)
    assert (steps.frames, steps.steps) == (None, 2)
    assert pace_of("a person takes two steps forward", 60, LIM).steps is None  # the request's length wins
    auto = Request(prompt="someone walks slowly").check(LIM).pace(LIM)
    assert auto.frames is None and auto.speed == SLOW and auto.out is None


@pytest.mark.parametrize("prompt", ["a person waves slowly", "a person bows quickly", "sad goodbye, slowly waving"])
def test_the_pace_of_other_actions_is_left_to_the_model(prompt):
    p = pace_of(prompt, None, LIM)
    assert p.plain and p.speed == 1.0 and p.text is None and not p.words  # read by the model, as trained


def test_a_duration_inside_a_clause_is_that_steps_length():
    plan = make_plan("a man walks forward for 3 seconds, then bows")
    assert [(s.prompt, s.seconds) for s in plan.steps] == [("a man walks forward", 3.0), ("a man bows", None)]
    plan = make_plan("a person waves for 20 seconds and then runs off")
    assert plan.steps[0].seconds == LIM.max_seconds and plan.steps[1].seconds is None
    assert make_plan("a person waves for 3 seconds").single  # one action: generated with its words as it is


def test_retime_keeps_the_path_and_planted_feet():
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 1.0, 40)[:, None, None]
    joints = (rng.normal(size=(1, 22, 3)) + t * np.array([0.0, 0.0, 1.2])).astype(np.float32)
    joints[:, 10] = joints[0, 10]  # l_foot still the whole clip
    slow = retime(joints, 57)
    assert slow.shape == (57, 22, 3)
    np.testing.assert_allclose(slow[[0, -1]], joints[[0, -1]], atol=1e-6)
    np.testing.assert_allclose(slow[:, 10], np.repeat(joints[:1, 10], 57, 0), atol=1e-6)
    np.testing.assert_allclose(np.diff(slow[:, 0, 2]), 1.2 / 56, atol=1e-5)  # constant velocity stays constant
    assert retime(joints, 20).shape == (20, 22, 3)
    with pytest.raises(ValueError):
        retime(joints, 1)


def test_touchdowns_are_the_frames_a_foot_comes_down():
    c = np.zeros((30, 4), bool)
    c[:5, 0] = True   # left down at the start (not a touch-down)
    c[12:18, 1] = True  # left toe comes down at 12
    c[8:14, 2] = True   # right ankle comes down at 8
    c[20:, 3] = True
    assert touchdowns(c) == [8, 12, 20]


# ---------------------------------------------------------------------------- on the shipped weights

SEEDS = (0, 1, 2)
PROMPTS = ["a person walks", "a person walks slowly", "the woman walks straight ahead slowly", "a person walks quickly",
           "a person takes two steps forward", "a person takes a few steps forward", "a person waves for 3 seconds",
           "a two-second wave", "a person walks forward for 1.5 seconds"]


@pytest.fixture(scope="module")
def clips():
    from model_core.decoding.generate import BAMM

    bamm = BAMM.from_pretrained(WEIGHTS)
    out = {p: [] for p in PROMPTS}
    for seed in SEEDS:
        for p, m in zip(PROMPTS, bamm.generate(PROMPTS, seed=seed)):
            out[p].append(m)
    return out, bamm


def _speed(motions) -> float:
    return float(np.median([np.median(np.linalg.norm(np.diff(m.joints[:, PELVIS][:, [0, 2]], axis=0), axis=1)) * 20
                            for m in motions]))


@pytest.mark.slow
@pytest.mark.parametrize("prompt,frames", [("a person waves for 3 seconds", 60), ("a two-second wave", 40),
                                           ("a person walks forward for 1.5 seconds", 32)])
def test_a_duration_sets_the_length(clips, prompt, frames):
    for m in clips[0][prompt]:
        assert abs(m.frames - frames) <= 4 and len(m.tokens) == -(-m.frames // 4), (prompt, m.frames)
        assert m.prompt == prompt


@pytest.mark.slow
@pytest.mark.parametrize("prompt,ratio", [("a person walks slowly", (0.0, 0.8)),
                                          ("the woman walks straight ahead slowly", (0.0, 0.8)),
                                          ("a person walks quickly", (1.2, 9.0))])
def test_pace_words_change_the_pelvis_speed(clips, prompt, ratio):
    got = _speed(clips[0][prompt]) / _speed(clips[0]["a person walks"])
    assert ratio[0] <= got <= ratio[1], f"{prompt!r}: {got:.2f}x the plain walk's median pelvis speed"
    assert all(travel(m.joints).direction == "forward" for m in clips[0][prompt])


@pytest.mark.slow
@pytest.mark.parametrize("prompt,most", [("a person takes two steps forward", 1.5),
                                         ("a person takes a few steps forward", 3.0),
                                         ("a person walks forward for 1.5 seconds", 3.0)])
def test_counted_steps_and_short_walks_travel_accordingly(clips, prompt, most):
    for m in clips[0][prompt]:
        t = travel(m.joints)
        assert t.direction == "forward" and t.forward_m <= most, (prompt, m.frames, t)
        assert m.frames <= 60


@pytest.mark.slow
def test_plain_prompts_keep_the_models_length_and_motion(clips):
    bamm = clips[1]
    prompts = ["a person walks", "someone waves with the right hand"]
    for words, alone in zip(bamm.generate(prompts, seed=0), bamm.generate(prompts, seed=0, amounts=False)):
        np.testing.assert_array_equal(words.tokens, alone.tokens)
        np.testing.assert_array_equal(words.joints, alone.joints)


@pytest.mark.slow
def test_a_stretched_motion_carries_its_own_tokens(clips):
    bamm = clips[1]
    (m,) = bamm.generate("a person walks slowly", frames=80, seed=0)
    assert m.frames == 80 and len(m.tokens) == 20 and m.features.shape == (80, 263)
    edited = bamm.edit(m, (40, 60), "a person walks slowly", seed=0)  # its tokens are taken as they are
    assert edited.frames == 80


@pytest.mark.slow
def test_every_path_honours_the_words(clips, tmp_path, capsys):
    from model_core.cli import main as bamm_cli
    from model_core.decoding.compose import generate_plan
    from model_core.serving.worker import run_request

    bamm = clips[1]
    req = Request(prompt="a person waves for 3 seconds", seed=1).check(bamm.limits)
    assert [m.frames for m in run_request(bamm, req)] == [60]  # the worker (the add-on's engine)
    motion, bounds = generate_plan(bamm, "a man walks forward for 3 seconds, then bows", seed=0)
    assert bounds == [60] and motion.frames > 60  # the clause's own length inside a plan
    rc = bamm_cli(["generate", "a person waves for half a minute", "--weights", str(WEIGHTS), "--out",
                   str(tmp_path), "--no-fbx", "--no-preview"])
    out, err = capsys.readouterr()
    assert rc == 0 and "196 frames = 9.80 s (from the prompt ('for half a minute'))" in out
    assert "30 s" in err and "9.8 s" in err
