"""Decoding profile "official": imported random checkpoints decode greedily to the tokens, lengths and
features the published code produces (tests/data/official/reference.safetensors), including [END] first;
the default profile is unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from model_core.decoding import loop as D
from model_core.decoding.generate import BAMM
from model_core.official.importer import import_official
from support.official_ckpt import FixedText, write_official

REF = Path(__file__).parent / "data" / "official" / "reference.safetensors"


@pytest.fixture(scope="module", params=[1.0, 4.0], ids=["end-at-24", "end-first"])
def case(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    paths = write_official(root / "ckpt", seed=0, end_bias=request.param)
    import_official(t2m=paths["t2m"], res=paths["res"], vq=paths["vq"], out=root / "w")
    prefix = "" if request.param == 1.0 else "end0_"
    ref = {k[len(prefix):]: v for k, v in load_file(str(REF)).items() if k.startswith(prefix) and "greedy" in k}
    return BAMM.from_pretrained(root / "w", text_encoder=FixedText()), ref


def test_greedy_decoding_follows_the_official_code(case):
    model, ref = case
    lengths = ref["greedy_lengths"].numpy()
    motions = model.generate(["a", "b"], temperature=0.0, profile="official")
    codes = ref["greedy_codes"].numpy()
    stats = model.nets.std, model.nets.mean
    for i, m in enumerate(motions):
        n = int(lengths[i])
        assert len(m.tokens) == n and m.frames == 4 * n
        assert np.array_equal(m.tokens[:, 0], ref["greedy_refined"].numpy()[i, :n])
        assert np.array_equal(m.tokens, codes[i, :n])
        normalised = (m.features - stats[1]) / stats[0]
        head = ref["greedy_features_head"].numpy()[i, :min(16, 4 * n)]
        assert np.abs(normalised[:len(head)] - head).max() < 1e-3
        if "greedy_features_tail" in ref:
            assert np.abs(normalised[-8:] - ref["greedy_features_tail"].numpy()[i]).max() < 1e-3


def test_first_pass_lengths_follow_the_official_end_rule(case):
    model, ref = case
    text = model.encode_text(["a", "b"])
    st = D.official_settings(temperature=0.0)
    base, lengths, _ = D.sample_ar(model.nets, text, 2, st, D.Sampler(0))
    first = ref["greedy_first"].numpy()
    assert np.array_equal(lengths, ref["greedy_lengths"].numpy())
    for i, n in enumerate(lengths):
        want = first[i, :n].copy()
        want[want >= 512] = 0  # [END] first becomes one token of code 0
        assert np.array_equal(base[i, :n], want)


def test_official_settings_translate_the_guidance_scales():
    st = D.official_settings()
    logits = np.array([[[2.0, 0.0]], [[1.0, 0.5]]])  # conditional row, then the unconditional one
    cond, uncond = logits[0], logits[1]
    assert np.allclose(D.guide(logits, 2, st.cfg[0]), uncond + 4 * (cond - uncond))
    assert np.allclose(D.guide(logits, 2, st.cfg[1]), uncond + 3 * (cond - uncond))
    assert np.allclose(D.guide(logits, 2, st.res_cfg), uncond + 5 * (cond - uncond))
    assert st.res_top_k == 52 and st.min_tokens == 0 and D.Settings().min_tokens == D.MIN_TOKENS


@pytest.mark.parametrize("n,redo", [(1, 1), (4, 2), (5, 2), (7, 4), (9, 4), (49, 24)])
def test_official_refinement_redoes_the_first_round_half_tokens(n, redo):
    eligible = np.zeros((1, 50), bool)
    eligible[0, :n] = True
    chosen = D.refine_redo("official", 1, eligible, None)
    assert np.flatnonzero(chosen[0]).tolist() == list(range(redo))


def test_decoder_sees_every_slot_with_zero_vectors_past_the_end():
    codes = np.arange(12).reshape(4, 3)
    padded = D.decoder_codes(codes, D.official_settings(), 50)
    assert padded.shape == (50, 3) and (padded[4:] == -1).all() and np.array_equal(padded[:4], codes)
    assert D.decoder_codes(codes, D.Settings(), 50) is codes
    with pytest.raises(ValueError, match="profile"):
        D.Settings(profile="paper")
