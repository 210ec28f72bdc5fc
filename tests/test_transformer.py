"""BAMM transformer: the hybrid attention mask, training loss, KV-cache decoding, guidance."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from model_core.decoding.loop import MIN_TOKENS, Sampler, Settings, guide, hybrid_allowed, sample_ar, sample_masked
from model_core.decoding.torch_nets import TorchNets
from model_core.models.layers import noisy_text
from model_core.models.residual import RES_PRESETS, ResidualConfig, ResidualTransformer
from model_core.models.transformer import T2M_PRESETS, BAMMConfig, BAMMTransformer, hybrid_attention_mask
from model_core.models.vq import VQ_PRESETS, RVQVAE

L = 5  # short sequence: every subset U of its positions is checked
SUBSETS = [frozenset(s) for r in range(L + 1) for s in itertools.combinations(range(L), r)]


def config(**kw) -> BAMMConfig:
    return dataclasses.replace(T2M_PRESETS["tiny"], text_dim=8, **kw)


def formula(i: int, j: int, u: frozenset, causal_only: bool) -> bool:
    """The paper's masks: may query i attend key j?"""
    if causal_only:
        return i >= j
    return (i >= j and i not in u) or j in u


@pytest.mark.parametrize("causal_only", [False, True], ids=["bidirectional", "unidirectional"])
@pytest.mark.parametrize("u", SUBSETS, ids=lambda u: "U=" + "".join(map(str, sorted(u))) or "U=none")
def test_mask_matches_formula(u, causal_only):
    unmasked = torch.tensor([[i in u for i in range(L)]])
    mask = hybrid_attention_mask(unmasked, causal_only)[0]
    assert mask.shape == (L, L)
    for i, j in itertools.product(range(L), range(L)):
        assert mask[i, j].item() == (0.0 if formula(i, j, u, causal_only) else float("-inf")), (i, j)


def test_mask_rows_of_unmasked_positions_see_only_unmasked_tokens():
    u = torch.tensor([[True, False, True, False, False, True]])
    mask = hybrid_attention_mask(u)[0]
    assert torch.equal(mask[2] == 0, u[0])  # position 2 is in U: it sees U, not the masked position 1
    assert torch.equal(mask[3] == 0, torch.tensor([True, True, True, True, False, True]))  # past + U


def test_mask_mixes_modes_per_sample():
    u = torch.tensor([[True, False, True, False], [True, False, True, False]])
    mask = hybrid_attention_mask(u, torch.tensor([True, False]))
    assert torch.equal(mask[0], hybrid_attention_mask(u[:1], True)[0])
    assert torch.equal(mask[1], hybrid_attention_mask(u[1:], False)[0])


def test_mask_rejects_non_bool():
    with pytest.raises(ValueError, match="unmasked"):
        hybrid_attention_mask(torch.zeros(1, 3))


def batch(b=6, n=12, seed=0, text_dim=8):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, n + 1, (b,), generator=g)
    lengths[0] = n
    return torch.randint(0, 32, (b, n), generator=g), lengths, torch.randn(b, text_dim, generator=g)


def test_training_step_lowers_loss_and_reaches_every_parameter():
    torch.manual_seed(0)
    model = BAMMTransformer(config(cond_drop_prob=0.5)).train()
    codes, lengths, text = batch(b=32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(1)
    loss, logs = model.loss(codes, lengths, text)
    assert set(logs) >= {"loss", "acc", "end_acc"} and 0.0 < logs["bidir_frac"] < 1.0
    opt.zero_grad()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    opt.step()
    torch.manual_seed(1)  # same masks, noise and dropped texts
    assert model.loss(codes, lengths, text)[0].item() < loss.item()


def test_loss_counts_only_hidden_tokens_in_bidirectional_mode():
    torch.manual_seed(0)
    model = BAMMTransformer(config(bidir_prob=1.0, min_mask_ratio=1.0)).eval()
    codes, lengths, text = batch()
    # every motion token hidden: the loss equals next-token CE of the motion tokens with text + END visible
    loss, _ = model.loss(codes, lengths, text)
    n = codes.shape[1]
    valid = torch.arange(n + 1)[None] < lengths[:, None]
    pad, end = model.config.pad_id, model.config.end_id
    ids = torch.cat([codes, torch.full((len(codes), 1), pad)], 1).masked_fill(~valid, pad)
    ids = ids.scatter(1, lengths[:, None], end)
    unmasked = torch.cat([torch.ones(len(codes), 1, dtype=torch.bool), ids == end], 1)
    logits = model(ids, model.text_token(text, torch.zeros(len(codes), dtype=torch.bool)),
                   hybrid_attention_mask(unmasked))[:, :-1]
    want = torch.nn.functional.cross_entropy(logits[valid], ids[valid])
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("bad, match", [
    (dict(codes=torch.zeros(2, 17, dtype=torch.long)), "max_tokens"),
    (dict(codes=torch.full((2, 4), 32)), "lie in"),
    (dict(codes=torch.zeros(2, 4)), "int64"),
    (dict(lengths=torch.tensor([0, 4])), "lengths"),
    (dict(lengths=torch.tensor([5, 4])), "lengths"),
    (dict(text=torch.zeros(2, 7)), "text_emb"),
])
def test_loss_rejects_bad_inputs(bad, match):
    model = BAMMTransformer(config())
    args = dict(codes=torch.zeros(2, 4, dtype=torch.long), lengths=torch.tensor([4, 2]), text=torch.zeros(2, 8))
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        model.loss(args["codes"], args["lengths"], args["text"])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="n_heads"):
        BAMMConfig(latent_dim=30, n_heads=4)
    with pytest.raises(ValueError, match="cond_drop_prob"):
        BAMMConfig(cond_drop_prob=1.5)


class StubText:
    """Stands in for a text encoder of 8 dimensions (the decoding tests feed embeddings directly)."""

    dim, name = 8, "stub"

    def to(self, device):
        return self


def nets_of(model: BAMMTransformer) -> TorchNets:
    """TorchNets around `model` with tiny untrained tokenizer / residual parts (unused by these tests)."""
    torch.manual_seed(0)
    res = ResidualTransformer(dataclasses.replace(RES_PRESETS["tiny"], text_dim=8))
    return TorchNets(text_encoder=StubText(), vq=RVQVAE(VQ_PRESETS["tiny"]), t2m=model, res=res,
                     mean=np.zeros(263, np.float32), std=np.ones(263, np.float32))


@pytest.mark.parametrize("kind", ["unidirectional", "bidirectional"])
def test_kv_cache_gives_full_forward_logits(kind):
    torch.manual_seed(0)
    c = config()
    model = BAMMTransformer(c).eval()
    b, n = 3, c.max_tokens + 1
    ids = torch.randint(0, c.code_num + 2, (b, n - 1))
    emb, drop = torch.randn(b, 8), torch.tensor([False, True, False])
    if kind == "unidirectional":
        u = torch.zeros(b, n, dtype=torch.bool)
    else:
        u = torch.rand(b, n) < 0.4
        u[:, 0] = True
    mask = hybrid_attention_mask(u, kind == "unidirectional")
    allowed = torch.from_numpy(hybrid_allowed(u.numpy(), kind == "unidirectional"))
    assert torch.equal(allowed, mask == 0)  # the loop's numpy mask is the training mask
    with torch.no_grad():
        full = model(ids, model.text_token(emb, drop), mask)
        # prefill (exact for row 0 and rows in U; the cache holds stale inputs elsewhere), then every
        # position again in order
        stepped, keys, values = model.prefill(torch.full_like(ids, c.pad_id), emb, drop, allowed)
        if kind == "bidirectional":
            stepped, keys, values = model.prefill(ids, emb, drop, allowed)
            assert torch.allclose(stepped[u], full[u], atol=1e-5)
        assert torch.allclose(stepped[:, 0], full[:, 0], atol=1e-5)
        for p in range(1, n):
            row, keys, values = model.step(ids[:, p - 1:p], p, allowed[:, p:p + 1], keys, values)
            stepped[:, p] = row[:, 0]
    assert torch.allclose(stepped, full, atol=1e-5)


def test_decoding_with_and_without_cache_is_identical():
    torch.manual_seed(0)
    nets = nets_of(BAMMTransformer(config()).eval())
    text = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    st = Settings(cfg=(2.0, 2.0))
    a = sample_ar(nets, text, 3, st, Sampler(3))
    b = sample_ar(nets, text, 3, st, Sampler(3), use_cache=False)
    assert all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2]))
    rng = np.random.default_rng(1)
    codes, lengths = rng.integers(0, 32, (3, 16)), np.array([16, 5, 9])
    keep = rng.random((3, 16)) < 0.5
    a = sample_masked(nets, codes, lengths, keep, text, 3.0, st, Sampler(4))
    b = sample_masked(nets, codes, lengths, keep, text, 3.0, st, Sampler(4), use_cache=False)
    assert np.array_equal(a[0], b[0])
    valid = np.arange(16)[None] < lengths[:, None]
    assert np.array_equal(a[0][keep & valid], codes[keep & valid])  # kept tokens unchanged
    assert (a[0][~valid] == 0).all() and (a[0] < 32).all()  # no END or PAD in the codes


def test_autoregressive_pass_ends_and_bounds_length():
    torch.manual_seed(0)
    model = BAMMTransformer(config()).eval()
    nets = nets_of(model)
    with torch.no_grad():
        model.head.bias[model.config.end_id] = 50.0  # END always most likely: still the shortest training motion
    codes, lengths, _ = sample_ar(nets, np.ones((2, 8), np.float32), 2, Settings(cfg=(0.0, 0.0), temperature=0.0),
                                  Sampler(0))
    assert lengths.tolist() == [MIN_TOKENS, MIN_TOKENS] and codes.shape == (2, MIN_TOKENS)
    with torch.no_grad():
        model.head.bias[model.config.end_id] = -50.0  # END never sampled: stops at the longest motion
    codes, lengths, _ = sample_ar(nets, None, 2, Settings(cfg=(0.0, 0.0)), Sampler(0))
    assert lengths.tolist() == [16, 16] and codes.shape == (2, 16)


def test_guidance_combines_conditional_and_unconditional_logits():
    torch.manual_seed(0)
    model = BAMMTransformer(config()).eval()
    text, s = torch.randn(4, 8), 3.0
    with torch.no_grad():  # a text token strong enough to matter
        torch.nn.init.normal_(model.text_proj.weight, std=1.0)
        torch.nn.init.normal_(model.null_text, std=1.0)
        cond = model(torch.zeros(4, 0, dtype=torch.long), model.text_token(text, torch.zeros(4, dtype=torch.bool)),
                     torch.zeros(4, 1, 1))[:, 0]
        uncond = model(torch.zeros(4, 0, dtype=torch.long), model.text_token(text, torch.ones(4, dtype=torch.bool)),
                       torch.zeros(4, 1, 1))[:, 0]
    guided = ((1 + s) * cond - s * uncond).double().numpy()
    assert np.allclose(guide(torch.cat([cond, uncond]).numpy(), 2, s), guided, atol=1e-5)
    guided[:, model.config.end_id] = -np.inf  # the first token is never END
    codes, _, _ = sample_ar(nets_of(model), text.numpy(), 4, Settings(cfg=(s, s), temperature=0.0), Sampler(0))
    assert np.array_equal(codes[:, 0], guided.argmax(-1))
    assert not np.array_equal(guided.argmax(-1), cond[:, :-1].argmax(-1).numpy())  # guidance changed something


def test_tiny_model_memorises_sequences_including_end():
    torch.manual_seed(0)
    model = BAMMTransformer(config()).train()
    g = torch.Generator().manual_seed(0)
    text = torch.randn(3, 8, generator=g)
    lengths = torch.tensor([MIN_TOKENS, 9, 13])
    codes = torch.randint(0, 32, (3, 13), generator=g).masked_fill(torch.arange(13)[None] >= lengths[:, None], 0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss, _ = model.loss(codes.repeat(4, 1), lengths.repeat(4), text.repeat(4, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    nets, greedy = nets_of(model), Settings(cfg=(0.0, 0.0), temperature=0.0)
    got, got_lengths, _ = sample_ar(nets, text.numpy(), 3, greedy, Sampler(0))
    assert got_lengths.tolist() == lengths.tolist()  # each motion ended with END where it was trained to
    assert np.array_equal(got, codes.numpy())
    # the bidirectional pass fills a hidden half back in from the visible half
    keep = np.arange(13)[None].repeat(3, 0) % 2 == 1
    refilled, _ = sample_masked(nets, np.where(keep, codes.numpy(), 0), lengths.numpy(), keep, text.numpy(), 0.0,
                                greedy, Sampler(0))
    assert np.array_equal(refilled, codes.numpy())


def test_noisy_text_adds_noise_relative_to_each_embeddings_rms():
    g = torch.Generator().manual_seed(0)
    text = torch.randn(2048, 384, generator=g)
    text = text / text.norm(dim=-1, keepdim=True) * torch.tensor([[1.0], [10.0]]).repeat(1024, 1)
    assert noisy_text(text, 0.0) is text
    torch.manual_seed(0)
    noise = noisy_text(text, 2.0) - text
    rms = text.pow(2).mean(-1).sqrt()
    ratio = noise.std(-1) / rms
    assert ratio[0::2].mean().item() == pytest.approx(2.0, rel=0.02)
    assert ratio[1::2].mean().item() == pytest.approx(2.0, rel=0.02)  # ten times larger rows, ten times the noise


@pytest.mark.parametrize("name", ["t2m", "res"])
def test_text_noise_acts_in_training_mode_only(name):
    if name == "t2m":
        make = lambda **kw: BAMMTransformer(config(**kw))  # noqa: E731
        codes, lengths, text = batch(b=16)
        loss = lambda m: m.loss(codes, lengths, text)[0].item()  # noqa: E731
    else:
        make = lambda **kw: ResidualTransformer(dataclasses.replace(RES_PRESETS["tiny"], **kw))  # noqa: E731
        g = torch.Generator().manual_seed(0)
        codes3 = torch.randint(0, 32, (16, 8, 3), generator=g)
        lengths3, text3 = torch.randint(1, 9, (16,), generator=g), torch.randn(16, 8, generator=g)
        loss = lambda m: m.loss(codes3, text3, lengths3)[0].item()  # noqa: E731
    torch.manual_seed(0)
    quiet = make(cond_drop_prob=0.0)
    noisy = make(cond_drop_prob=0.0, text_noise=1.0)
    noisy.load_state_dict(quiet.state_dict())

    def seeded(model):
        torch.manual_seed(3)
        return loss(model)
    assert seeded(quiet.eval()) == seeded(noisy.eval())
    assert seeded(quiet.train()) != seeded(noisy.train())
    assert seeded(noisy.train()) == seeded(noisy.train())


def test_config_rejects_negative_text_noise():
    with pytest.raises(ValueError, match="text_noise"):
        BAMMConfig(text_noise=-1.0)
    with pytest.raises(ValueError, match="text_noise"):
        ResidualConfig(text_noise=-0.5)
