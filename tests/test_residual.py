"""Residual transformer: training signal, generation, editing with kept tokens, guidance, sampling functions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model_core.decoding.loop import Sampler, Settings, guide, residual_layers
from model_core.decoding.torch_nets import TorchNets
from model_core.models.layers import lengths_to_mask
from model_core.models.residual import RES_PRESETS, ResidualConfig, ResidualTransformer
from model_core.models.transformer import T2M_PRESETS, BAMMTransformer
from model_core.models.vq import VQ_PRESETS, RVQVAE

TINY = RES_PRESETS["tiny"]
B, N = 8, 12


def make(**changes) -> ResidualTransformer:
    torch.manual_seed(0)
    return ResidualTransformer(dataclasses.replace(TINY, **changes))


def batch(seed: int = 0):
    """Codes whose upper layers are a fixed function of the base layer (learnable), text, token lengths."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, TINY.code_num, (B, N), generator=g)
    codes = torch.stack([(base * (j + 1) + 3 * j) % TINY.code_num for j in range(TINY.num_quantizers)], -1)
    text = torch.randn(B, TINY.text_dim, generator=g)
    lengths = torch.randint(4, N + 1, (B,), generator=g)
    return codes, text, lengths


def eval_loss(model, codes, text, lengths):
    model.eval()
    torch.manual_seed(123)  # same random layers each time
    with torch.no_grad():
        loss, _ = model.loss(codes, text, lengths)
    model.train()
    return loss.item()


def test_training_lowers_loss_and_reaches_every_parameter():
    model = make(cond_drop_prob=0.5)
    codes, text, lengths = batch()
    before = eval_loss(model, codes, text, lengths)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(30):
        loss, logs = model.loss(codes, text, lengths)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, name
        opt.step()
    assert set(logs) == {"loss", "acc"}
    assert eval_loss(model, codes, text, lengths) < 0.75 * before


def test_loss_ignores_padded_tokens():
    model = make().eval()
    codes, text, lengths = batch()
    changed = codes.clone()
    changed[~lengths_to_mask(lengths, N)] = -1  # e.g. a pad id outside the codebook
    torch.manual_seed(1)
    a, _ = model.loss(codes, text, lengths)
    torch.manual_seed(1)
    b, _ = model.loss(changed, text, lengths)
    assert torch.allclose(a, b, atol=1e-6)


class StubText:
    dim, name = TINY.text_dim, "stub"

    def to(self, device):
        return self


def nets_of(model: ResidualTransformer) -> TorchNets:
    """TorchNets around `model` with a tiny untrained tokenizer and BAMM transformer (unused here)."""
    t2m = BAMMTransformer(dataclasses.replace(T2M_PRESETS["tiny"], text_dim=TINY.text_dim))
    return TorchNets(text_encoder=StubText(), vq=RVQVAE(VQ_PRESETS["tiny"]), t2m=t2m, res=model,
                     mean=np.zeros(263, np.float32), std=np.ones(263, np.float32))


def generate(model, base, text, lengths, *, cfg_scale=5.0, temperature=1.0, seed=0, keep_codes=None, keep=None):
    st = Settings(res_cfg=cfg_scale, temperature=temperature)
    out = residual_layers(nets_of(model), base.numpy(), lengths.numpy(), text.numpy(), st, Sampler(seed),
                          keep_codes=None if keep_codes is None else keep_codes.numpy(),
                          keep=None if keep is None else keep.numpy())
    return torch.from_numpy(out)


def test_generate_shapes_base_layer_and_padding():
    model = make()
    codes, text, lengths = batch()
    out = generate(model, codes[..., 0], text, lengths)
    valid = lengths_to_mask(lengths, N)
    assert out.shape == (B, N, TINY.num_quantizers) and out.dtype == torch.int64
    assert torch.equal(out[..., 0][valid], codes[..., 0][valid])
    assert (out[~valid] == 0).all()
    assert out.min() >= 0 and out.max() < TINY.code_num


@pytest.mark.parametrize("n, lengths", [(1, [1, 1]), (2, [1, 2])])
def test_generate_handles_one_token_motions(n, lengths):
    """The shortest motions (one token, as a model-chosen length can be) go through every layer."""
    model = make().eval()
    base = torch.randint(0, TINY.code_num, (2, n))
    out = generate(model, base, torch.randn(2, TINY.text_dim), torch.tensor(lengths), cfg_scale=4.0)
    assert out.shape == (2, n, TINY.num_quantizers)
    assert torch.equal(out[0, 0, 0], base[0, 0]) and (out[0, 1:] == 0).all()
    loss, _ = model.loss(out, torch.randn(2, TINY.text_dim), torch.tensor(lengths))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("cfg_scale", [0.0, 5.0])
def test_keep_mask_keeps_every_layer_bit_identical(cfg_scale):
    model = make()
    codes, text, lengths = batch()
    keep_codes, _, _ = batch(seed=1)
    keep_mask = torch.rand(B, N, generator=torch.Generator().manual_seed(2)) < 0.5
    keep_mask &= lengths_to_mask(lengths, N)
    out = generate(model, codes[..., 0], text, lengths, cfg_scale=cfg_scale, keep_codes=keep_codes, keep=keep_mask)
    assert torch.equal(out[keep_mask], keep_codes[keep_mask])
    free = ~keep_mask & lengths_to_mask(lengths, N)
    assert not torch.equal(out[free][:, 1:], keep_codes[free][:, 1:])


def test_same_generator_seed_same_output():
    model = make()
    codes, text, lengths = batch()

    def run(seed):
        return generate(model, codes[..., 0], text, lengths, seed=seed)

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


@pytest.mark.parametrize("cfg_scale", [0.0, 2.5])
def test_generate_uses_guided_logits(cfg_scale):
    """With temperature 0, layer 1 is the argmax of (1 + s) cond - s uncond computed by hand."""
    model = make().eval()
    codes, text, lengths = batch()
    out = generate(model, codes[..., 0], text, lengths, cfg_scale=cfg_scale, temperature=0.0)
    valid = lengths_to_mask(lengths, N)
    x = model.token_emb[0][out[..., 0]]
    layer = torch.ones(B, dtype=torch.long)
    with torch.no_grad():
        cond = model._logits(x, layer, model.cond_proj(text), valid)
        uncond = model._logits(x, layer, model.null_cond.expand(B, -1), valid)
    expected = ((1 + cfg_scale) * cond - cfg_scale * uncond).argmax(-1)
    assert torch.equal(out[..., 1][valid], expected[valid])


def test_cfg_formula():
    cond, uncond = np.array([[2.0, -1.0]]), np.array([[1.0, 3.0]])
    both = np.concatenate([cond, uncond])
    assert np.allclose(guide(both, 2, 0.0), cond)
    assert np.allclose(guide(both, 2, 2.0), [[3 * 2.0 - 2 * 1.0, 3 * -1.0 - 2 * 3.0]])
    assert np.array_equal(guide(both, 1, 2.0), both)  # no guidance: a single branch


def test_top_k_filter_and_sampling():
    logits = np.array([[0.1, 2.0, -1.0, 1.5]])
    draws, conf = Sampler(0).draw(np.repeat(logits, 4000, 0), 1.0, 2)
    assert set(draws.tolist()) == {1, 3}
    p = np.exp([2.0, 1.5]) / np.exp([2.0, 1.5]).sum()
    assert (draws == 1).mean() == pytest.approx(p[0], abs=0.03)
    assert np.allclose(conf[draws == 1], p[0]) and np.allclose(conf[draws == 3], p[1])
    assert Sampler(0).draw(logits, 0.0, None)[0].tolist() == [1]
    hot = Sampler(1).draw(np.repeat(logits, 4000, 0), 100.0, None)[0]  # high temperature: nearly uniform
    assert np.bincount(hot, minlength=4).min() > 800
    assert np.array_equal(Sampler(7).draw(np.repeat(logits, 50, 0), 1.0, None)[0],
                          Sampler(7).draw(np.repeat(logits, 50, 0), 1.0, None)[0])


@pytest.mark.parametrize("change, match", [
    (dict(codes=torch.full((B, N, 3), TINY.code_num)), "must lie in"),
    (dict(codes=torch.zeros(B, N, 2, dtype=torch.long)), r"\(B, N, 3\)"),
    (dict(codes=torch.zeros(B, TINY.max_tokens + 1, 3, dtype=torch.long)), "max_tokens"),
    (dict(text=torch.zeros(B, TINY.text_dim + 1)), "text_emb"),
    (dict(lengths=torch.full((B,), N + 1)), "lengths"),
    (dict(lengths=torch.zeros(B, dtype=torch.long)), "lengths"),
])
def test_loss_rejects_bad_inputs(change, match):
    codes, text, lengths = batch()
    args = dict(codes=codes, text=text, lengths=lengths) | change
    with pytest.raises(ValueError, match=match):
        make().loss(args["codes"], args["text"], args["lengths"])


def test_generate_rejects_half_keep_arguments():
    codes, text, lengths = batch()
    with pytest.raises(ValueError, match="together"):
        generate(make(), codes[..., 0], text, lengths, keep=torch.ones(B, N, dtype=torch.bool))


@pytest.mark.parametrize("changes", [dict(num_quantizers=1), dict(latent_dim=30, n_heads=4), dict(dropout=2.0)])
def test_config_rejects_bad_values(changes):
    with pytest.raises(ValueError):
        ResidualConfig(**changes)
