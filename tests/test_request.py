"""The request contract: one place that checks a generation / edit / extend request against the weights'
limits, with one-line InputError messages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from model_core.contract.limits import InputError, Limits
from model_core.contract.request import MAX_SEED, Request

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits()  # HumanML3D: 20 fps, 4 frames per token, 196 frames


def test_limits_are_read_from_weights_and_runtime_configs(tmp_path):
    assert Limits.from_folder(ROOT / "weights") == Limits(fps=20.0, frames_per_token=4, max_frames=196)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "runtime.json").write_text(json.dumps({"nets": {"max_tokens": 17, "frames_per_token": 4,
                                                               "fps": 20.0}}))
    assert Limits.from_folder(runtime).max_frames == 64
    assert Limits.from_json(Limits(max_frames=64).to_json()) == Limits(max_frames=64)


@pytest.mark.parametrize("content, message", [
    (None, "no BAMM weights or runtime"),
    ("{", "cannot be read as JSON"),
    ("[1]", "expected a JSON object"),
    ('{"max_frames": "196"}', "max_frames must be an integer"),
    ('{"max_frames": 2}', "shorter than one token"),
    ('{"fps": NaN}', "fps must be a finite number"),
    ('{"max_frames": 100000000}', "max_frames must be an integer in [1, 1000000]"),
])
def test_bad_limit_files(tmp_path, content, message):
    if content is not None:
        (tmp_path / "bamm.json").write_text(content)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Limits.from_folder(tmp_path)


def test_request_sampling_defaults_are_the_decoding_defaults():
    """Request (the contract) and decoding.Settings (the loop) declare the same sampling defaults."""
    from model_core.decoding.loop import Settings

    defaults = Request().settings()
    assert defaults == {name: getattr(Settings(), name) for name in defaults}


def test_generate_request_is_normalised():
    req = Request(op="generate", prompt="  a person waves  ", seconds=4.0, n=2, seed=7, cfg=[4, 3]).check(LIMITS)
    assert (req.prompt, req.frames, req.seconds, req.n, req.seed, req.cfg) == ("a person waves", 80, None, 2, 7,
                                                                               (4.0, 3.0))
    assert req.settings() == {"cfg": (4.0, 3.0), "refine": "every_other", "rounds": 2, "temperature": 1.0,
                              "top_k": None, "res_cfg": 4.0}
    assert Request(prompt="walk", seconds=9.8).check(LIMITS).frames == 196
    assert Request(prompt="walk").check(LIMITS).frames is None  # the model picks the length


GENERATE_BAD = [
    (dict(prompt=None), "the prompt is empty"),
    (dict(prompt=" \t "), "the prompt is empty"),
    (dict(prompt=5), "the prompt must be text, got int"),
    (dict(prompt="x" * 1001), "the prompt has 1001 characters; at most 1000"),
    (dict(seconds=math.inf), "seconds must be a finite number > 0, got inf"),
    (dict(seconds=math.nan), "seconds must be a finite number > 0, got nan"),
    (dict(seconds=0), "seconds must be a finite number > 0"),
    (dict(seconds="4"), "seconds must be a finite number > 0, got '4'"),
    (dict(seconds=9.9), "9.9 s is over the model's limit of 9.8 s (196 frames)"),
    (dict(seconds=10.0), "10 s is over the model's limit of 9.8 s"),
    (dict(seconds=0.1), "0.1 s is shorter than the shortest motion, 0.2 s"),
    (dict(seconds=2.0, frames=40), "as frames or as seconds, not both"),
    (dict(frames=200), "frames must be an integer in [4, 196], got 200"),
    (dict(frames=40.0), "frames must be an integer in [4, 196], got 40.0"),
    (dict(frames=True), "frames must be an integer"),
    (dict(n=0), "n must be an integer in [1, 32], got 0"),
    (dict(n=33), "n must be an integer in [1, 32], got 33"),
    (dict(seed=-1), "seed must be an integer in [0, 4294967295], got -1"),
    (dict(seed=2**64), "seed must be an integer in [0, 4294967295]"),
    (dict(seed=MAX_SEED, n=2), "seed must be an integer in [0, 4294967294]"),
    (dict(cfg=4.0), "cfg must be a pair"),
    (dict(cfg=(4.0, math.nan)), "cfg (refine guidance) must be a finite number"),
    (dict(cfg=(1e9, 3.0)), "cfg (guidance) must be a finite number in [0, 100]"),
    (dict(rounds=0), "rounds must be an integer in [1, 8]"),
    (dict(temperature=-1), "temperature must be a finite number in [0, 100]"),
    (dict(top_k=0), "top_k must be an integer"),
    (dict(refine="sideways"), "refine must be one of every_other"),
    (dict(range=(0, 8)), "generate takes no frame range"),
    (dict(after_s=1.0), "generate takes no before_s / after_s"),
    (dict(op="dance"), "op must be one of generate, edit, extend"),
]


@pytest.mark.parametrize("fields, message", GENERATE_BAD, ids=lambda v: str(v)[:40] if isinstance(v, dict) else "")
def test_generate_bad_fields(fields, message):
    with pytest.raises(InputError) as caught:
        Request(**{"prompt": "walk", **fields}).check(LIMITS)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("fields, frames, message", [
    (dict(range=(30, 10)), 40, "the range 30..10 is empty or reversed"),
    (dict(range=(0, 80)), 40, "the range 0..80 lies outside the clip (frames 0..40)"),
    (dict(range=(-4, 8)), 40, "lies outside the clip"),
    (dict(range=(10, 12)), 40, "covers 2 frames, shorter than one token: at least 4 frames are needed"),
    (dict(range=(0, 300)), 400, "these weights regenerate at most 196 frames (9.8 s) at once"),
    (dict(range=(1.0, 8)), 40, "the range start must be an integer"),
    (dict(range=(4,)), 40, "the range must be a (start, end) pair"),
    (dict(range=None), 40, "the range must be a (start, end) pair"),
    (dict(range=(0, 8), n=0), 40, "n must be an integer in [1, 32], got 0"),
    (dict(range=(0, 8), prompt=""), 40, "the prompt is empty"),
    (dict(range=(0, 8), frames=8), 40, "edit takes no length"),
    (dict(range=(0, 8)), 10**6, "the source motion's frames must be an integer in [2, 3920]"),
])
def test_edit_bad_fields(fields, frames, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]").replace(".", r"\.")):
        Request(op="edit", **fields).check(LIMITS, source_frames=frames)


def test_edit_and_extend_requests():
    assert Request(op="edit", range=[8, 24]).check(LIMITS, source_frames=40).range == (8, 24)
    assert Request(op="edit", range=(8, 24), prompt=None).check(LIMITS, source_frames=40).prompt is None
    req = Request(op="extend", after_s=2.0).check(LIMITS, source_frames=40)
    assert (req.before_s, req.after_s) == (0.0, 2.0)


@pytest.mark.parametrize("before, after, message", [
    (0.0, 0.0, "before_s / after_s add nothing once rounded to whole tokens of 0.2 s: extend by at least 0.2 s"),
    (0.0, 0.05, "add nothing"),
    (0.0, 1e9, "after_s (seconds added after) must be a finite number in [0, 9.8], got 1000000000.0"),
    (-1.0, 1.0, "before_s (seconds added before) must be a finite number in [0, 9.8]"),
    (math.nan, 1.0, "before_s (seconds added before) must be a finite number"),
    (None, 1.0, "before_s (seconds added before) must be a finite number"),
])
def test_extend_bad_lengths(before, after, message):
    with pytest.raises(InputError) as caught:
        Request(op="extend", before_s=before, after_s=after).check(LIMITS, source_frames=40)
    assert message in str(caught.value)


def test_worker_args_round_trip():
    for req in (Request(op="generate", prompt="walk", frames=40, n=2, seed=3, top_k=5),
                Request(op="edit", range=(8, 24), prompt="jump", refine=None),
                Request(op="extend", before_s=1.0, after_s=0.4, temperature=0.5)):
        checked = req.check(LIMITS, source_frames=None if req.op == "generate" else 40)
        assert Request.from_args(req.op, json.loads(json.dumps(checked.to_args()))).check(
            LIMITS, source_frames=None if req.op == "generate" else 40) == checked


@pytest.mark.parametrize("op, args, message", [
    ("generate", {"prompt": "walk", "colour": "red"}, "unknown argument(s) colour"),
    ("generate", [1], "args must be an object, got list"),
    ("extend", {"frames": [0, 8]}, "extend takes before_s / after_s, not frames"),
    (None, {}, "op must be one of"),
    ("generate", {"prompt": "walk", "before_s": 1.0}, "unknown argument(s) before_s"),
])
def test_bad_worker_args(op, args, message):
    with pytest.raises(InputError) as caught:
        Request.from_args(op, args)
    assert message in str(caught.value)


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError) and InputError.kind == "input"
