"""The numpy decoding loop: masks, refinement choice, the seeded sampler, settings, editing with refinement,
and that the loop and the ONNX Runtime side import no torch."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_core.decoding import loop as D
from model_core.decoding.generate import BAMM

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bamm() -> BAMM:
    return BAMM.random(preset="tiny", seed=0)


@pytest.mark.parametrize("causal_only", [False, True], ids=["bidirectional", "unidirectional"])
def test_hybrid_mask_matches_the_paper_formula(causal_only):
    n = 5
    for bits in itertools.product([False, True], repeat=n):
        u = np.array(bits)[None]
        allowed = D.hybrid_allowed(u, causal_only)[0]
        for i, j in itertools.product(range(n), repeat=2):
            want = i >= j if causal_only else (i >= j and not u[0, i]) or bool(u[0, j])
            assert allowed[i, j] == want
        assert allowed.diagonal().all()


def test_refinement_choice_stays_inside_the_eligible_tokens():
    eligible = np.zeros((1, 10), bool)
    eligible[0, 3:8] = True  # an edit regenerating slots 3..7
    conf = np.array([[0.0, 0.0, 0.0, 0.9, 0.1, 0.8, 0.2, 0.7, 0.0, 0.0]])
    redo = {m: np.flatnonzero(D.refine_redo(m, 1, eligible, conf)).tolist() for m in D.REFINE_MODES}
    assert redo == {"every_other": [4, 6], "low_confidence": [4, 6, 7], "suffix": [5, 6, 7], "prefix": [3, 4, 5]}
    assert np.flatnonzero(D.refine_redo("every_other", 2, eligible, conf)).tolist() == [3, 5, 7]
    with pytest.raises(ValueError, match="refine"):
        D.refine_redo("middle", 1, eligible, conf)


def test_sampler_is_seeded_and_follows_the_distribution():
    logits = np.array([[np.log(0.5), np.log(0.3), np.log(0.2), -np.inf]])
    draws, conf = D.Sampler(3).draw(np.repeat(logits, 20000, 0), 1.0, None)
    assert np.array_equal(draws, D.Sampler(3).draw(np.repeat(logits, 20000, 0), 1.0, None)[0])
    assert not np.array_equal(draws, D.Sampler(4).draw(np.repeat(logits, 20000, 0), 1.0, None)[0])
    assert np.allclose(np.bincount(draws, minlength=4) / len(draws), [0.5, 0.3, 0.2, 0.0], atol=0.015)
    assert np.allclose(conf, np.array([0.5, 0.3, 0.2])[draws])
    cold = D.Sampler(0).draw(np.repeat(logits, 2000, 0), 0.25, None)[0]  # low temperature sharpens
    assert (cold == 0).mean() > 0.85
    assert D.Sampler(0).draw(np.array([[1.0, 3.0, 2.0]]), 0.0, None)[0].tolist() == [1]


@pytest.mark.parametrize("changes, match", [
    (dict(cfg=(1.0,)), "cfg"), (dict(cfg=(1.0, float("inf"))), "cfg"), (dict(rounds=0), "rounds"),
    (dict(refine="middle"), "refine"), (dict(res_cfg=None), "res_cfg"), (dict(temperature=-0.5), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_k=2.5), "top_k"),
])
def test_settings_reject_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        D.Settings(**changes)
    with pytest.raises(ValueError, match="seed"):
        D.Sampler(-1)


@pytest.mark.parametrize("mode, same", [("suffix", slice(0, 2)), ("prefix", slice(3, 5))])
def test_editing_honours_refine(bamm, mode, same):
    """Inpainting (no new prompt) of slots 4..8 (5 tokens): the refinement re-predicts the chosen 3 only, so
    the other 2 keep the tokens of the first pass (the same random stream up to there)."""
    source = bamm.generate("a person walks in a circle", frames=48, seed=5)[0]
    first = bamm.edit(source, (16, 36), seed=1, refine=None)
    refined = bamm.edit(source, (16, 36), seed=1, refine=mode, rounds=2)
    span_first, span_refined = first.tokens[4:9, 0], refined.tokens[4:9, 0]
    assert np.array_equal(span_first[same], span_refined[same])
    assert not np.array_equal(first.tokens[4:9], refined.tokens[4:9])
    kept = np.r_[0:4, 9:12]
    assert np.array_equal(refined.tokens[kept], source.tokens[kept])


def test_progress_of_an_edit_is_monotone(bamm):
    source = bamm.generate("a person walks", frames=48, seed=0)[0]
    seen = []
    bamm.edit(source, (8, 40), seed=2, rounds=3, refine="low_confidence", progress=lambda s, f: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_loop_and_runtime_modules_import_no_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import model_core.decoding.loop, model_core.decoding.nets\n"
            "import model_core.decoding.generate, model_core.decoding.editing\n"
            "import model_core.runtime.ort_nets\n"
            "assert 'scipy' not in sys.modules, 'scipy imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
