"""The ONNX Runtime back end on the shipped weights: the exported graphs give the torch modules' logits,
and the one decoding loop gives the same tokens through both back ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from model_core.decoding import loop as D  # noqa: E402
from model_core.decoding.generate import BAMM, Generator  # noqa: E402
from model_core.runtime.ort_nets import choose_providers, load_runtime  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
PROMPTS = ["a person walks forward", "someone jumps twice", "a man waves with the right hand",
           "a person sits down slowly", "a woman turns around and runs back"]
TOL = 1e-4


class SameText:
    """Gives the ONNX Runtime nets the torch encoder's embeddings, so both back ends see the same inputs."""

    def __init__(self, nets):
        self.nets, self.dim = nets, nets.config.text_dim

    def encode(self, prompts):
        return self.nets.encode_text(prompts)


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory) -> Path:
    """The shipped weights exported once per test session (a minute or two)."""
    from model_core.runtime.export import export_runtime

    out = tmp_path_factory.mktemp("runtime")
    export_runtime(WEIGHTS, out)
    return out


@pytest.fixture(scope="session")
def torch_bamm() -> BAMM:
    return BAMM.from_pretrained(WEIGHTS)


@pytest.fixture(scope="session")
def ort_gen(runtime_dir, torch_bamm) -> Generator:
    return Generator(load_runtime(runtime_dir, "cpu", threads=1, text_encoder=SameText(torch_bamm.nets)))


def assert_same_sampled(a: list, b: list) -> None:
    """Seeded sampling through both back ends: every motion's base layer (the BAMM transformer's tokens)
    identical, and every other motion identical in every layer but for draws that fell on a boundary. The
    residual layers' distributions are nearly flat (top-1 accuracy about 5 %) and guided (5 cond - 4 uncond), so
    a logit difference within `TOL` can, once in a few thousand draws, move an inverse-CDF draw to the
    neighbouring code (seen: 225 vs 224, 60 vs 59); the layers above then read other codes and that motion's
    residual codes differ from there on (joints within 0.2 m, measured 0.02-0.16 m). So where a motion's codes
    differ, the first difference in decoding order (layer by layer, token by token) must be such a neighbour,
    and most motions must be identical."""
    assert len(a) == len(b)
    differ = []
    for x, y in zip(a, b):
        assert x.tokens.shape == y.tokens.shape and np.array_equal(x.tokens[:, 0], y.tokens[:, 0])
        assert np.abs(x.joints - y.joints).max() < 0.2
        where = np.argwhere(x.tokens != y.tokens)  # (token, layer) pairs
        if len(where):
            token, layer = where[np.lexsort((where[:, 0], where[:, 1]))][0]
            first = (int(x.tokens[token, layer]), int(y.tokens[token, layer]))
            assert abs(first[0] - first[1]) == 1, f"{x.prompt}: layer {layer} token {token} drew {first}"
            differ.append(x.prompt)
    assert len(differ) <= len(a) // 2, f"residual codes differ in {differ}"


def both(torch_bamm, ort_gen):
    return torch_bamm.nets, ort_gen.nets


# ------------------------------------------------------------------------------------------ graphs

def test_runtime_folder_contents(runtime_dir, torch_bamm):
    info = json.loads((runtime_dir / "runtime.json").read_text())
    assert info["nets"] == torch_bamm.nets.config.to_json()
    assert info["nets"]["contact_root"] is True  # the shipped decoder's root follows its planted toes
    for name in list(info["graphs"].values()) + ["stats.npz", "text.onnx", "tokenizer.json"]:
        assert (runtime_dir / name).is_file(), name
    stats = np.load(runtime_dir / "stats.npz")
    assert np.array_equal(stats["mean"], torch_bamm.nets.mean) and np.array_equal(stats["std"], torch_bamm.nets.std)


def test_runtime_text_encoder_matches_torch(runtime_dir, torch_bamm):
    own = load_runtime(runtime_dir, "cpu")
    assert np.abs(own.encode_text(PROMPTS) - torch_bamm.nets.encode_text(PROMPTS)).max() < TOL


@pytest.mark.parametrize("causal", [True, False], ids=["unidirectional", "bidirectional"])
@pytest.mark.parametrize("batch", [1, 4])
def test_prefill_and_step_logits_match(torch_bamm, ort_gen, causal, batch):
    tn, on = both(torch_bamm, ort_gen)
    c = tn.config
    rng = np.random.default_rng(batch)
    text = tn.encode_text(PROMPTS[:batch])
    ids = rng.integers(0, c.code_num + 2, (batch, c.max_tokens))
    u = rng.random((batch, c.length)) < 0.4
    u[:, 0] = True
    allowed = D.hybrid_allowed(u, causal)
    drop = np.arange(batch) % 2 == 1
    a, sa = tn.prefill(ids, text, drop, allowed)
    b, sb = on.prefill(ids, text, drop, allowed)
    assert a.shape == b.shape == (batch, c.length, c.code_num + 1)
    assert np.abs(a - b).max() < TOL
    for p in range(1, c.length):
        a, sa = tn.step(ids[:, p - 1:p], p, allowed[:, p:p + 1], sa)
        b, sb = on.step(ids[:, p - 1:p], p, allowed[:, p:p + 1], sb)
        assert np.abs(a - b).max() < TOL, f"step {p}"


@pytest.mark.parametrize("n", [1, 17, 49])
def test_residual_logits_and_tokenizer_match(torch_bamm, ort_gen, n):
    tn, on = both(torch_bamm, ort_gen)
    c = tn.config
    rng = np.random.default_rng(n)
    codes = rng.integers(0, c.code_num, (3, n, c.num_quantizers))
    valid = np.arange(n)[None] < np.array([[n], [max(1, n // 2)], [1]])
    text, drop = tn.encode_text(PROMPTS[:3]), np.array([False, True, False])
    for layer in range(1, c.num_quantizers):
        a = tn.residual_logits(codes, layer, text, drop, valid)
        assert np.abs(a - on.residual_logits(codes, layer, text, drop, valid)).max() < TOL
    feats = tn.vq_decode(codes[:2])
    assert feats.shape == (2, n * c.frames_per_token, c.input_dim)
    assert np.abs(feats - on.vq_decode(codes[:2])).max() < TOL
    (a_feats, a_joints), (b_feats, b_joints) = torch_bamm.decode(codes[0]), ort_gen.decode(codes[0])
    assert np.abs(a_feats - b_feats).max() < TOL and np.abs(a_joints - b_joints).max() < 10 * TOL
    assert np.array_equal(tn.vq_encode(feats), on.vq_encode(feats))


# ------------------------------------------------------------------------------------------ decoding

@pytest.mark.parametrize("kwargs", [dict(temperature=0.0), dict(top_k=1, frames=120)], ids=["greedy", "top1"])
def test_greedy_decoding_is_token_identical(torch_bamm, ort_gen, kwargs):
    a, b = torch_bamm.generate(PROMPTS, **kwargs), ort_gen.generate(PROMPTS, **kwargs)
    for x, y in zip(a, b):
        assert np.array_equal(x.tokens, y.tokens)
        assert np.abs(x.joints - y.joints).max() < 1e-3


@pytest.mark.parametrize("kwargs", [dict(seed=0), dict(seed=11, frames=196, refine="low_confidence", rounds=3),
                                    dict(seed=5, top_k=20, temperature=0.8, n=2)],
                         ids=["default", "frames-low-confidence", "top-k-n"])
def test_seeded_sampling_is_token_identical(torch_bamm, ort_gen, kwargs):
    a, b = torch_bamm.generate(PROMPTS, **kwargs), ort_gen.generate(PROMPTS, **kwargs)
    assert len(a) == len(b) == len(PROMPTS) * kwargs.get("n", 1)
    assert len({x.tokens.tobytes() for x in a}) == len(a)  # really sampled
    assert_same_sampled(a, b)


@pytest.mark.parametrize("refine", ["every_other", "low_confidence", "suffix", "prefix", None])
def test_editing_is_token_identical(torch_bamm, ort_gen, refine):
    source = torch_bamm.generate(PROMPTS[0], frames=160, seed=1)[0]
    a = torch_bamm.edit(source, (40, 100), PROMPTS[1], seed=2, refine=refine, rounds=3)
    b = ort_gen.edit(source, (40, 100), PROMPTS[1], seed=2, refine=refine, rounds=3)
    assert_same_sampled([a], [b])
    assert np.array_equal(a.tokens[:10], source.tokens[:10]) and np.array_equal(a.tokens[25:], source.tokens[25:])
    differ = a.tokens != b.tokens
    if not differ.any():
        assert np.abs(a.joints - b.joints).max() < 1e-3
    else:  # one near-tie residual draw went the other way (see above): one code of its layer, layers above follow
        layer = int(np.flatnonzero(differ.any(axis=0))[0])
        assert layer >= 1 and differ[:, layer].sum() == 1, f"residual draws differ at {np.argwhere(differ)[:4]}"


def test_extend_and_long_generation_are_token_identical(torch_bamm, ort_gen):
    source = torch_bamm.generate(PROMPTS[2], frames=80, seed=3)[0]
    a, b = (g.extend(source, before_s=1.0, after_s=2.0, seed=4) for g in (torch_bamm, ort_gen))
    assert_same_sampled([a], [b])
    assert len(a.tokens) == 5 + 20 + 10
    segments = [(PROMPTS[0], 120), (PROMPTS[3], None)]
    a, b = (g.generate_long(segments, seed=6) for g in (torch_bamm, ort_gen))
    assert_same_sampled([a], [b])


def test_joints_source_is_encoded_the_same(torch_bamm, ort_gen):
    joints = torch_bamm.generate(PROMPTS[4], frames=100, seed=8)[0].joints
    a, b = (g.edit(joints, (20, 60), seed=9) for g in (torch_bamm, ort_gen))
    assert_same_sampled([a], [b])


# ------------------------------------------------------------------------------------------ loading

def test_worker_runs_the_runtime_without_torch(runtime_dir, tmp_path):
    """``python -m model_core.serving.worker`` with torch made unimportable, on a {"backend": "onnx"} spec."""
    code = "import sys; sys.modules['torch'] = None; from model_core.serving.worker import main; sys.exit(main())"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    model = {"backend": "onnx", "runtime": str(runtime_dir), "device": "cpu"}
    requests = [{"id": 1, "op": "generate", "model": model, "args": {"prompt": "a person jumps", "frames": 40},
                 "out_dir": str(tmp_path)},
                {"id": 2, "op": "generate", "model": {"weights": str(WEIGHTS)}, "args": {"prompt": "walk"},
                 "out_dir": str(tmp_path)},
                {"op": "shutdown"}]
    out = subprocess.run([sys.executable, "-c", code], input="".join(json.dumps(r) + "\n" for r in requests),
                         capture_output=True, text=True, env=env, timeout=300).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["type"] == "ready" and lines[0]["onnxruntime"]
    result = next(m for m in lines if m.get("id") == 1 and m["type"] != "progress")
    assert result["type"] == "result", result
    joints, tokens = np.load(result["joints"][0]), np.load(result["tokens"][0])
    assert joints.shape == (40, 22, 3) and tokens.shape == (10, 6) and tokens.dtype == np.int64
    error = next(m for m in lines if m.get("id") == 2 and m["type"] != "progress")
    assert error["type"] == "error" and "cannot import torch" in error["message"]


def test_provider_choice():
    cpu = "CPUExecutionProvider"
    assert choose_providers("auto", [cpu]) == [cpu]
    assert choose_providers("gpu", ["CUDAExecutionProvider", cpu]) == ["CUDAExecutionProvider", cpu]
    assert choose_providers("auto", ["DmlExecutionProvider", cpu]) == ["DmlExecutionProvider", cpu]
    assert choose_providers("cpu", ["CUDAExecutionProvider", cpu]) == [cpu]
    with pytest.raises(ValueError, match="CUDAExecutionProvider"):
        choose_providers("cuda", [cpu])
    with pytest.raises(ValueError, match="device must be one of"):
        choose_providers("tpu", [cpu])


@pytest.mark.parametrize("call, error, match", [
    (lambda d, tmp: load_runtime(tmp), FileNotFoundError, "runtime.json not found"),
    (lambda d, tmp: load_runtime(d, "tpu"), ValueError, "device must be one of"),
    (lambda d, tmp: load_runtime(d, "cpu", threads=0), ValueError, "threads"),
])
def test_load_runtime_rejects_bad_input(runtime_dir, tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(runtime_dir, tmp_path)


def test_export_cli_reports_a_missing_weights_folder(tmp_path, capsys):
    from model_core.cli import main

    assert main(["export-runtime", "--weights", str(tmp_path / "none"), "--out", str(tmp_path / "rt")]) == 2
    assert "no BAMM weights" in capsys.readouterr().err
