"""bamm import-official on random checkpoints in the published layout (tests/support/official_ckpt.py):
logits, greedy tokens, codes and features against what the published code computes from the same tensors
(tests/data/official/reference.safetensors), and refusal of wrong files."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model_core.decoding.loop import hybrid_allowed
from model_core.models.checkpoint import load_model
from model_core.models.residual import ResidualConfig, ResidualTransformer
from model_core.models.transformer import BAMMConfig, BAMMTransformer
from model_core.models.vq import RVQVAE, RVQVAEConfig
from model_core.official.importer import import_official
from support.official_ckpt import fixed_inputs, random_clip_file, write_official

REF = Path(__file__).parent / "data" / "official" / "reference.safetensors"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    paths = write_official(root / "ckpt", seed=0, end_bias=1.0)
    out = root / "weights"
    import_official(t2m=paths["t2m"], res=paths["res"], vq=paths["vq"], out=out)
    return paths, out


@pytest.fixture(scope="module")
def ref():
    return load_file(str(REF))


def test_import_writes_a_weights_folder(imported):
    _, out = imported
    assert {p.name for p in out.iterdir()} == {"bamm.json", "stats.safetensors", "t2m.json", "t2m.safetensors",
                                               "res.json", "res.safetensors", "vq.json", "vq.safetensors"}
    t2m = load_model(BAMMTransformer, BAMMConfig, out, "t2m")
    assert t2m.config.arch == "official" and t2m.config.latent_dim == 384 and t2m.config.n_layers == 2


@pytest.mark.parametrize("case", ["t2m_causal", "t2m_hybrid", "t2m_hybrid_uncond"])
def test_bamm_transformer_logits_match_the_official_code(imported, ref, case):
    t2m = load_model(BAMMTransformer, BAMMConfig, imported[1], "t2m")
    inp = fixed_inputs()
    if case == "t2m_causal":
        allowed = hybrid_allowed(np.zeros((2, 51), bool), causal_only=True)
    else:
        unmasked = np.concatenate([np.ones((2, 1), bool), ref["t2m_cond_idx"].numpy() != t2m.config.pad_id], 1)
        allowed = hybrid_allowed(unmasked)
    drop = torch.full((2,), case.endswith("uncond"))
    with torch.no_grad():
        logits = t2m.prefill(inp["ids"], inp["text"], drop, torch.from_numpy(allowed))[0]
    want = ref[case].transpose(1, 2)  # (B, positions, 513)
    got = logits[:, ref["t2m_positions"]]
    assert (got - want).abs().max() < 1e-4
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize("case,layer,row,drop", [("res_l1", 1, 0, False), ("res_l5", 5, 1, False),
                                                 ("res_l3_uncond", 3, 0, True)])
def test_residual_logits_match_the_official_code(imported, ref, case, layer, row, drop):
    res = load_model(ResidualTransformer, ResidualConfig, imported[1], "res")
    inp = fixed_inputs()
    valid = torch.arange(12)[None] < ref["res_lengths"][:, None]
    with torch.no_grad():
        logits = res.layer_logits(inp["codes"], torch.full((2,), layer), inp["text"], torch.full((2,), drop), valid)
    want = ref[case][:512].t()  # (N, 512): the official PAD class is not a code
    got = logits[row, :want.shape[0]]
    assert (got - want).abs().max() < 1e-4
    assert torch.equal(got.argmax(-1), want.argmax(-1))


def test_tokenizer_codes_and_features_match_the_official_code(imported, ref):
    vq = load_model(RVQVAE, RVQVAEConfig, imported[1], "vq")
    with torch.no_grad():
        codes = vq.encode(fixed_inputs()["features"])
        feats = vq.decode(ref["vq_codes"])
    assert torch.equal(codes, ref["vq_codes"])
    assert (feats - ref["vq_features"]).abs().max() < 1e-4


def _damaged(paths, tmp_path, name, edit):
    entry = {"t2m": "t2m_transformer", "res": "res_transformer", "vq": "vq_model"}[name]
    data = torch.load(paths[name], weights_only=True)
    edit(data[entry])
    bad = tmp_path / f"{name}.tar"
    torch.save(data, bad)
    return {**{k: paths[k] for k in ("t2m", "res", "vq")}, name: bad}


def test_wrong_shape_is_refused_naming_file_tensor_and_shapes(imported, tmp_path):
    paths, _ = imported
    key = "seqTransEncoder.layers.1.linear2.weight"
    files = _damaged(paths, tmp_path, "t2m", lambda s: s.__setitem__(key, torch.zeros(384, 1000)))
    with pytest.raises(ValueError) as e:
        import_official(**files, meta=paths["meta"], out=tmp_path / "w")
    assert str(files["t2m"]) in str(e.value) and key in str(e.value)
    assert "(384, 1000)" in str(e.value) and "(384, 1024)" in str(e.value)
    assert not (tmp_path / "w").exists()


def test_missing_and_unexpected_tensors_are_refused(imported, tmp_path):
    paths, _ = imported
    files = _damaged(paths, tmp_path, "res", lambda s: s.pop("output_proj_weight_"))
    with pytest.raises(ValueError, match="missing.*output_proj_weight_"):
        import_official(**files, out=tmp_path / "w")
    files = _damaged(paths, tmp_path, "vq", lambda s: s.__setitem__("quantizer.extra", torch.zeros(2)))
    with pytest.raises(ValueError, match="unexpected.*quantizer.extra"):
        import_official(**files, out=tmp_path / "w")
    with pytest.raises(ValueError, match="no 'res_transformer' entry"):
        import_official(t2m=paths["t2m"], res=paths["t2m"], vq=paths["vq"], out=tmp_path / "w")


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickles_with_code_are_refused_and_nothing_runs(imported, tmp_path, capsys):
    paths, _ = imported
    data = torch.load(paths["vq"], weights_only=True)
    data["scheduler"] = Payload()
    bad = tmp_path / "vq.tar"
    torch.save(data, bad)
    with pytest.raises(ValueError, match="refused"):
        import_official(t2m=paths["t2m"], res=paths["res"], vq=bad, meta=paths["meta"], out=tmp_path / "w")
    assert "code ran" not in capsys.readouterr().out
    plain = tmp_path / "plain.tar"
    plain.write_bytes(pickle.dumps({"vq_model": Payload()}))
    with pytest.raises(ValueError, match=str(plain)):
        import_official(t2m=paths["t2m"], res=paths["res"], vq=plain, meta=paths["meta"], out=tmp_path / "w2")
    assert "code ran" not in capsys.readouterr().out


def test_cli_reports_one_line_and_keeps_an_existing_folder(imported, tmp_path):
    paths, out = imported
    before = sorted(p.name for p in out.iterdir())
    cmd = [sys.executable, "-m", "model_core.cli", "import-official", "--t2m", str(paths["t2m"]), "--res",
           str(paths["res"]), "--vq", str(paths["vq"]), "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert run.returncode == 2 and "not an empty folder" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == before


def test_clip_text_tower_travels_with_the_folder(imported, tmp_path):
    pytest.importorskip("transformers")
    from model_core.decoding.generate import BAMM
    from model_core.models.clip_text import CLIPTextEncoder
    from model_core.models.text import clear_text_encoder_cache

    paths, _ = imported
    clip = random_clip_file(tmp_path / "ViT-B-32.pt")
    import_official(t2m=paths["t2m"], res=paths["res"], vq=paths["vq"], clip=clip, out=tmp_path / "w")
    moved = tmp_path / "elsewhere"
    (tmp_path / "w").rename(moved)
    tensors = load_file(str(moved / "clip_text.safetensors"))
    assert "text_projection" in tensors and not any(k.startswith("visual.") for k in tensors)
    clear_text_encoder_cache()
    model = BAMM.from_pretrained(moved)
    prompts = ["a person walks forward", "someone jumps"]
    want = CLIPTextEncoder(path=clip).encode(prompts)
    assert torch.allclose(torch.as_tensor(model.encode_text(prompts)), want, atol=1e-5)
    motion = model.generate(prompts[0], seed=1, profile="official")[0]
    assert motion.frames == 4 * len(motion.tokens) and np.isfinite(motion.joints).all()


def test_statistics_files_are_checked(imported, tmp_path):
    paths, _ = imported
    files = {k: paths[k] for k in ("t2m", "res", "vq")}
    with pytest.raises(FileNotFoundError, match="mean.npy"):
        import_official(**files, meta=tmp_path / "nowhere", out=tmp_path / "w")
    meta = tmp_path / "meta"
    meta.mkdir()
    np.save(meta / "mean.npy", np.zeros(263, np.float32))
    np.save(meta / "std.npy", np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="std.npy: not a plain numpy array"):
        import_official(**files, meta=meta, out=tmp_path / "w")
    np.save(meta / "std.npy", np.zeros(263, np.float32))
    with pytest.raises(ValueError, match="must be > 0"):
        import_official(**files, meta=meta, out=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_attention_heads_come_from_the_runs_options(imported, tmp_path):
    from model_core.official.keys import heads_of

    paths, _ = imported
    assert heads_of(paths["vq"]) == 6  # no opt.txt beside the run: the published models' 6
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "opt.txt").write_text("------------ Options -------------\nlatent_dim: 384\nn_heads: 4\n---- End ----\n")
    assert heads_of(run / "model" / "latest.tar") == 4
