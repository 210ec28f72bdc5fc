"""The decoding API on untrained tiny models with the real MiniLM text encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_core.decoding.editing import place, source_motion, travel_note
from model_core.decoding.generate import BAMM
from model_core.decoding.loop import MIN_TOKENS, refine_redo
from model_core.decoding.results import Motion
from model_core.motion.arms import ARM_JOINTS

PROMPTS = ["a person walks forward", "someone jumps twice", "a man sits down slowly"]


@pytest.fixture(scope="module")
def bamm() -> BAMM:
    return BAMM.random(preset="tiny", seed=0)


@pytest.fixture(scope="module")
def source(bamm) -> Motion:
    return bamm.generate("a person walks in a circle", frames=48, seed=5)[0]


# ------------------------------------------------------------------------------------------ generate

def test_generate_shapes_order_and_types(bamm):
    out = bamm.generate(PROMPTS[:2], n=2, seed=1)
    assert [m.prompt for m in out] == [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[1]]
    q = bamm.vq.config.num_quantizers
    for m in out:
        t = len(m.tokens)
        assert 1 <= t <= bamm.max_tokens and m.tokens.shape == (t, q) and m.tokens.dtype == np.int64
        assert m.joints.shape == (4 * t, 22, 3) and m.joints.dtype == np.float32
        assert m.features.shape == (4 * t, 263) and m.features.dtype == np.float32
        assert m.fps == 20.0 and np.isfinite(m.joints).all()


def test_generate_with_frames_gives_that_length(bamm):
    out = bamm.generate(PROMPTS[0], frames=43, seed=2)  # rounded down to a whole token
    assert out[0].joints.shape[0] == 40 and out[0].tokens.shape[0] == 10


def test_same_seed_same_motion_other_seed_other_motion(bamm):
    a = bamm.generate(PROMPTS, seed=7)
    b = bamm.generate(PROMPTS, seed=7)
    c = bamm.generate(PROMPTS, seed=8)
    for x, y in zip(a, b):
        assert np.array_equal(x.tokens, y.tokens) and np.array_equal(x.joints, y.joints)
    assert any(x.tokens.shape != z.tokens.shape or not np.array_equal(x.tokens, z.tokens) for x, z in zip(a, c))


def test_samples_of_one_prompt_differ(bamm):
    out = bamm.generate(PROMPTS[0], n=3, frames=40, seed=0)
    assert len({m.tokens.tobytes() for m in out}) == 3


@pytest.mark.parametrize("refine", ["every_other", "low_confidence", "suffix", "prefix", None])
def test_refinement_modes(bamm, refine):
    out = bamm.generate(PROMPTS[:2], frames=40, refine=refine, rounds=3, seed=0)
    assert [m.tokens.shape[0] for m in out] == [10, 10]


def test_refinement_changes_only_the_chosen_tokens(bamm):
    first = bamm.generate(PROMPTS[0], frames=40, refine=None, seed=3)[0].tokens[:, 0]
    refined = bamm.generate(PROMPTS[0], frames=40, refine="suffix", rounds=2, seed=3)[0].tokens[:, 0]
    assert np.array_equal(first[:5], refined[:5])  # the first pass draws the same; the suffix is redrawn


def test_refine_redo_masks():
    lengths, conf = np.array([6, 3]), np.array([[.9, .1, .8, .2, .7, .3], [.5, .4, .6, 0, 0, 0]])
    eligible = np.arange(6)[None] < lengths[:, None]
    redo = lambda mode, r=1: refine_redo(mode, r, eligible, conf).astype(int).tolist()  # noqa: E731
    assert redo("every_other") == [[1, 0, 1, 0, 1, 0], [1, 0, 1, 0, 0, 0]]
    assert redo("every_other", 2) == [[0, 1, 0, 1, 0, 1], [0, 1, 0, 0, 0, 0]]
    assert redo("low_confidence") == [[0, 1, 0, 1, 0, 1], [1, 1, 0, 0, 0, 0]]
    assert redo("suffix") == [[0, 0, 0, 1, 1, 1], [0, 1, 1, 0, 0, 0]]
    assert redo("prefix") == [[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]]


def test_progress_is_monotone_and_can_cancel(bamm):
    calls = []
    bamm.generate(PROMPTS[0], progress=lambda stage, f: calls.append((stage, f)))
    fractions = [f for _, f in calls]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert {"text", "tokens", "refine", "residual", "decode"} <= {s for s, _ in calls}

    class Cancelled(Exception):
        pass

    def cancel(stage, fraction):
        if stage == "tokens":
            raise Cancelled

    with pytest.raises(Cancelled):
        bamm.generate(PROMPTS[0], progress=cancel)


def test_greedy_decoding_reproduces_memorised_sequences_with_their_length():
    model = BAMM.random(preset="tiny", seed=1)
    text = torch.from_numpy(model.encode_text(PROMPTS))
    lengths = torch.tensor([MIN_TOKENS, 9, 13])  # the shortest motion decoding allows
    codes = torch.randint(0, 32, (3, 13), generator=torch.Generator().manual_seed(0))
    codes = codes.masked_fill(torch.arange(13)[None] >= lengths[:, None], 0)
    opt = torch.optim.AdamW(model.t2m.parameters(), lr=3e-3)
    torch.manual_seed(0)
    model.t2m.train()
    for _ in range(300):
        loss, _ = model.t2m.loss(codes.repeat(4, 1), lengths.repeat(4), text.repeat(4, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.t2m.eval()
    # no guidance: an over-fitted unconditional branch knows the sequences too, guidance would push away
    # amounts=False: the decoding loop alone ("slowly" would otherwise time-stretch the third motion)
    out = model.generate(PROMPTS, top_k=1, cfg=(0.0, 0.0), refine="every_other", rounds=3, seed=0, amounts=False)
    assert [len(m.tokens) for m in out] == lengths.tolist()  # the model ended each motion itself
    for m, c, n in zip(out, codes, lengths):
        assert np.array_equal(m.tokens[:, 0], c[:n].numpy())


def test_weights_folder_round_trip(bamm, tmp_path):
    bamm.save_pretrained(tmp_path / "w")
    assert {p.name for p in (tmp_path / "w").iterdir()} == {
        "bamm.json", "stats.safetensors", "vq.json", "vq.safetensors", "t2m.json", "t2m.safetensors",
        "res.json", "res.safetensors"}
    again = BAMM.from_pretrained(tmp_path / "w", text_encoder=bamm.text_encoder)
    a, b = bamm.generate(PROMPTS[0], seed=4)[0], again.generate(PROMPTS[0], seed=4)[0]
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.joints, b.joints)


def test_text_encoder_override_of_another_size_is_refused_by_name(bamm, tmp_path):
    bamm.save_pretrained(tmp_path / "w")
    assert json.loads((tmp_path / "w" / "bamm.json").read_text())["text_encoder"] == "minilm"
    with pytest.raises(ValueError, match=r"trained with the text encoder 'minilm' \(384-d\); 'minilm-lexical' "
                                         r"gives 768-d embeddings: leave the text encoder override empty"):
        BAMM.from_pretrained(tmp_path / "w", text_encoder="minilm-lexical")


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="bamm.json"):
        BAMM.from_pretrained(tmp_path)
    (tmp_path / "bamm.json").write_text("{")
    with pytest.raises(ValueError, match="bamm.json"):
        BAMM.from_pretrained(tmp_path)


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompts=""), "prompts"),
    (dict(prompts="   "), "prompts"),
    (dict(prompts=[]), "prompts"),
    (dict(prompts=["walk", " "]), r"prompts\[1\]"),
    (dict(n=0), "n must"),
    (dict(n=-2), "n must"),
    (dict(rounds=0), "rounds"),
    (dict(refine="sideways"), "refine"),
    (dict(frames=0), "frames"),
    (dict(frames=-8), "frames"),
    (dict(frames=3), "frames"),
    (dict(frames=10_000), "frames"),
    (dict(frames=12.5), "frames"),
    (dict(cfg=4.0), "cfg"),
    (dict(cfg=(4.0, None)), "cfg"),
    (dict(res_cfg=float("nan")), "res_cfg"),
    (dict(temperature=-1.0), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(seed=-1), "seed"),
])
def test_generate_rejects_bad_arguments(bamm, kwargs, match):
    prompts = kwargs.pop("prompts", "walk")
    with pytest.raises(ValueError, match=match):
        bamm.generate(prompts, **kwargs)


# ------------------------------------------------------------------------------------------ editing

@pytest.mark.parametrize("frames", [(16, 30), (0, 12), (37, 48), (5, 9)],
                         ids=["inpaint", "prefix", "suffix", "one-token"])
@pytest.mark.parametrize("as_joints", [False, True], ids=["motion", "joints"])
def test_edit_keeps_tokens_and_frames_outside_the_range(bamm, source, frames, as_joints):
    src = source.joints if as_joints else source
    out = bamm.edit(src, frames, "a person jumps", seed=1)
    start, end = frames
    # joints are turned into tokens through their features (a Motion brings its own tokens)
    before = source_motion(bamm, src)[1]
    if not as_joints:
        assert np.array_equal(before, source.tokens)
    kept = np.ones(len(before), bool)
    kept[start // 4:-(-end // 4)] = False
    assert out.tokens.shape == before.shape
    assert np.array_equal(out.tokens[kept], before[kept])  # every layer, bit for bit
    assert not np.array_equal(out.tokens[~kept], before[~kept])
    outside = np.ones(len(source.joints), bool)
    outside[start:end] = False
    assert out.joints.shape == source.joints.shape and out.features.shape == source.features.shape
    assert np.array_equal(out.joints[outside], source.joints[outside])
    assert not np.allclose(out.joints[start:end], source.joints[start:end])
    assert out.prompt == "a person jumps"


def test_edit_without_prompt_uses_the_source_prompt_and_seed(bamm, source):
    a = bamm.edit(source, (8, 24), seed=3)
    b = bamm.edit(source, (8, 24), seed=3)
    assert a.prompt == source.prompt and np.array_equal(a.joints, b.joints)
    unconditional = bamm.edit(source.joints, (8, 24), seed=3)
    assert unconditional.prompt is None


@pytest.mark.parametrize("frames", [(16, 36), (0, 20), (28, 48)], ids=["inpaint", "prefix", "suffix"])
def test_edit_with_a_new_prompt_is_led_by_it(bamm, source, frames):
    """A new prompt's range is made as Generate makes that prompt at the range's length, token for token."""
    out = bamm.edit(source, frames, "a person jumps", seed=1)
    alone = bamm.generate("a person jumps", frames=frames[1] - frames[0], seed=1)[0]
    lo, hi = frames[0] // 4, frames[1] // 4
    assert np.array_equal(out.tokens[lo:hi], alone.tokens)
    assert np.array_equal(np.delete(out.tokens, np.s_[lo:hi], 0), np.delete(source.tokens, np.s_[lo:hi], 0))
    context = bamm.edit(source, frames, seed=1)  # the source's own prompt: inpainting, the context leads
    assert not np.array_equal(context.tokens[lo:hi], out.tokens[lo:hi])


def test_extend_with_a_new_prompt_is_led_by_it(bamm, source):
    out = bamm.extend(source, after_s=1.0, prompt="a person jumps", seed=2)
    alone = bamm.generate("a person jumps", frames=20, seed=2)[0]
    n = len(source.tokens)
    assert np.array_equal(out.tokens[n:], alone.tokens) and np.array_equal(out.tokens[:n], source.tokens)
    assert np.array_equal(out.joints[:len(source.joints)], source.joints)


def test_the_worker_inpaints_with_the_source_prompt_and_leads_with_a_new_one(bamm, source):
    from model_core.serving import worker

    args = {"source": source.joints, "source_tokens": source.tokens, "frames": [16, 36], "seed": 3}
    same = worker.run(bamm, "edit", {**args, "source_prompt": source.prompt, "prompt": source.prompt})[0]
    new = worker.run(bamm, "edit", {**args, "source_prompt": source.prompt, "prompt": "a person jumps"})[0]
    assert np.array_equal(same.tokens, bamm.edit(source, (16, 36), seed=3).tokens)
    assert np.array_equal(new.tokens, bamm.edit(source, (16, 36), "a person jumps", seed=3).tokens)
    with pytest.raises(ValueError, match="prompt"):
        worker.run(bamm, "edit", {**args, "source_prompt": 7})


def test_an_arm_action_on_a_travelling_range_keeps_the_travel(bamm, source):
    """Where the animation crosses the range, an arm prompt is done on the way: legs, root and spine are those
    of inpainting the range with the prompt (the same seed), the arms the prompt's own motion."""
    travelling = source.joints + (np.arange(len(source.joints)) * 0.1)[:, None, None] * np.array([1.0, 0, 0])
    prompt = "a person waves the right hand"
    out = bamm.edit(travelling, (16, 36), prompt, seed=4)
    inpainted = bamm.edit(Motion(joints=travelling, features=None, tokens=None, prompt=prompt), (16, 36), seed=4)
    arms = list(ARM_JOINTS["right"])
    body = [j for j in range(22) if j not in arms]
    assert np.array_equal(out.joints[16:36][:, body], inpainted.joints[16:36][:, body])
    assert not np.allclose(out.joints[24:28][:, arms], inpainted.joints[24:28][:, arms])
    assert np.array_equal(out.tokens[:4], source_motion(bamm, travelling)[1][:4])


@pytest.mark.parametrize("prompt, frames, moving, says", [
    ("a person bows", (16, 36), True, True),
    ("a person waves the right hand", (16, 36), True, False),  # done on the way
    ("a person runs forward", (16, 36), True, False),  # travels itself
    ("a person bows", (16, 36), False, False),  # the animation stands there
    ("a person bows", (28, 48), True, False),  # a suffix: nothing to reach after it
    (None, (16, 36), True, False),  # inpainting
])
def test_travel_note_says_when_a_range_must_slide(source, prompt, frames, moving, says):
    joints = source.joints - source.joints[:, :1] * np.array([1.0, 0, 1])  # the root stays over the origin
    if moving:  # 1.5 m/s along x: 1.6 m from the frame before the range to the frame after it
        joints = joints + (np.arange(len(joints)) * 0.075)[:, None, None] * np.array([1.0, 0, 0])
    note = travel_note(joints, frames, prompt, 20.0)
    assert (note is not None) == says
    if says:
        assert "1.6 m" in note and "slides" in note and "\n" not in note


def test_edit_of_a_clip_longer_than_the_context(bamm):
    long = bamm.generate_long([("walk", 48), ("run", 48)], seed=0)  # 24 tokens > 16 for the tiny preset
    out = bamm.edit(long, (40, 56), "jump", seed=0)
    kept = np.ones(len(long.tokens), bool)
    kept[10:14] = False
    assert np.array_equal(out.tokens[kept], long.tokens[kept])
    assert np.array_equal(out.joints[:40], long.joints[:40]) and np.array_equal(out.joints[56:], long.joints[56:])


def test_extend_adds_frames_around_the_untouched_source(bamm, source):
    out = bamm.extend(source, before_s=0.4, after_s=1.0, seed=2)
    assert out.joints.shape[0] == 8 + len(source.joints) + 20
    assert np.array_equal(out.joints[8:8 + len(source.joints)], source.joints)
    assert np.array_equal(out.tokens[2:2 + len(source.tokens)], source.tokens)
    only_after = bamm.extend(source, after_s=0.8)
    assert np.array_equal(only_after.joints[:len(source.joints)], source.joints)


def test_generate_long_joins_segments(bamm):
    out = bamm.generate_long([("walk forward", 40), ("jump", None), ("sit down", 24)], seed=0)
    assert out.tokens.shape[0] >= 10 + 1 + 6 and out.joints.shape == (4 * out.tokens.shape[0], 22, 3)
    assert out.prompt == "walk forward / jump / sit down" and np.isfinite(out.joints).all()


def test_place_recovers_a_rigidly_moved_copy():
    rng = np.random.default_rng(0)
    src = np.cumsum(rng.normal(size=(40, 22, 3)) * 0.05, 0).astype(np.float32)
    yaw, c, s = 0.8, np.cos(0.8), np.sin(0.8)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    gen = (src @ rot.T + np.array([1.0, 0.2, -3.0])).astype(np.float32)  # the same motion elsewhere
    out = place(gen, src, 0, [(10, 30)])
    assert np.allclose(out, src, atol=1e-4)


def test_place_carries_the_joints_across_a_seam_without_a_step():
    """A still source and a still generated pose with the right wrist 0.3 m away: the first and last frames of the
    range are the source's pose (the generated motion's own step across each seam, here none), the middle the
    generated pose."""
    rng = np.random.default_rng(1)
    src = np.repeat(rng.normal(size=(1, 22, 3)), 40, 0).astype(np.float32)
    gen = src.copy()
    gen[:, 21] += np.float32(0.3)
    out = place(gen, src, 0, [(10, 30)])
    assert np.allclose(out[10], src[9], atol=1e-5) and np.allclose(out[29], src[30], atol=1e-5)
    assert np.abs(out[20, 21] - src[20, 21]).max() > 0.25


@pytest.mark.parametrize("frames, match", [
    ((-4, 8), "outside"),
    ((40, 52), "outside"),
    ((20, 10), "reversed"),
    ((10, 10), "reversed"),
    ((10, 13), "shorter than one token"),
    ((1.0, 8), "integer"),
    ((4,), "pair"),
])
def test_edit_rejects_bad_ranges(bamm, source, frames, match):
    with pytest.raises(ValueError, match=match):
        bamm.edit(source, frames)


@pytest.mark.parametrize("call, match", [
    (lambda b, s: b.edit(s, (0, 8), "  "), "prompt"),
    (lambda b, s: b.edit(np.zeros((10, 21, 3)), (0, 8)), "joints"),
    (lambda b, s: b.extend(s), "before_s"),
    (lambda b, s: b.extend(s, after_s=-1.0), "after_s"),
    (lambda b, s: b.generate_long([]), "segments"),
    (lambda b, s: b.generate_long([("", 40)]), r"segments\[0\]"),
    (lambda b, s: b.generate_long([("walk", 2)]), r"segments\[0\] frames"),
])
def test_editing_rejects_bad_arguments(bamm, source, call, match):
    with pytest.raises(ValueError, match=match):
        call(bamm, source)
