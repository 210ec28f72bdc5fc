"""BAMM transformer: the hybrid attention mask, training loss, KV-cache decoding, guidance."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from model_core.models.layers import cfg_logits, noisy_text
from model_core.models.residual import RES_PRESETS, ResidualConfig, ResidualTransformer
from model_core.models.transformer import T2M_PRESETS, BAMMConfig, BAMMTransformer, KVCache, hybrid_attention_mask

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


@pytest.mark.parametrize("kind", ["unidirectional", "bidirectional"])
def test_kv_cache_gives_full_forward_logits(kind):
    torch.manual_seed(0)
    c = config()
    model = BAMMTransformer(c).eval()
    b, n = 3, c.max_tokens + 1
    ids = torch.randint(0, c.code_num + 2, (b, n - 1))
    text = model.text_token(torch.randn(b, 8), torch.tensor([False, True, False]))
    if kind == "unidirectional":
        mask = hybrid_attention_mask(torch.zeros(b, n, dtype=torch.bool), True)
    else:
        u = torch.rand(b, n) < 0.4
        u[:, 0] = True
        mask = hybrid_attention_mask(u)
    with torch.no_grad():
        full = model(ids, text, mask)
        cache = KVCache(c.n_layers)
        if kind == "unidirectional":  # text first, then one token at a time, no mask needed
            rows = [model(ids[:, :0], text, mask[:, :1, :1], cache)[:, 0]]
            rows += [model.step(ids[:, p - 1:p], p, None, cache)[:, 0] for p in range(1, n)]
            stepped = torch.stack(rows, 1)
        else:  # prefill (exact for rows in U), then every position again in order
            stepped = model(ids, text, mask, cache)
            assert torch.allclose(stepped[u], full[u], atol=1e-5)
            for p in range(1, n):
                stepped[:, p] = model.step(ids[:, p - 1:p], p, mask[:, p:p + 1], cache)[:, 0]
    assert torch.allclose(stepped, full, atol=1e-5)


def test_decoding_with_and_without_cache_is_identical():
    torch.manual_seed(0)
    model = BAMMTransformer(config()).eval()
    text = torch.randn(3, 8)
    a = model.generate_ar(text, cfg_scale=2.0, generator=torch.Generator().manual_seed(3))
    b = model.generate_ar(text, cfg_scale=2.0, generator=torch.Generator().manual_seed(3), use_cache=False)
    assert all(torch.equal(x, y) for x, y in zip(a[:2], b[:2]))
    codes, lengths = torch.randint(0, 32, (3, 16)), torch.tensor([16, 5, 9])
    keep = torch.rand(3, 16) < 0.5
    a = model.generate_masked(codes, lengths, keep, text, generator=torch.Generator().manual_seed(4))
    b = model.generate_masked(codes, lengths, keep, text, generator=torch.Generator().manual_seed(4), use_cache=False)
    assert torch.equal(a[0], b[0])
    valid = torch.arange(16)[None] < lengths[:, None]
    assert torch.equal(a[0][keep & valid], codes[keep & valid])  # kept tokens unchanged
    assert (a[0][~valid] == 0).all() and (a[0] < 32).all()  # no END or PAD in the codes


def test_autoregressive_pass_ends_and_bounds_length():
    torch.manual_seed(0)
    model = BAMMTransformer(config()).eval()
    with torch.no_grad():
        model.head.bias[model.config.end_id] = 50.0  # END always most likely: still at least one token
    ids, lengths, _ = model.generate_ar(torch.randn(2, 8), cfg_scale=0.0, temperature=0.0)
    assert lengths.tolist() == [1, 1] and (ids[:, 1] == model.config.end_id).all()
    with torch.no_grad():
        model.head.bias[model.config.end_id] = -50.0  # END never sampled: stops at the longest motion
    ids, lengths, _ = model.generate_ar(None, batch=2, cfg_scale=0.0)
    assert lengths.tolist() == [16, 16] and (ids[:, 16] == model.config.end_id).all()


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
    guided = (1 + s) * cond - s * uncond
    assert torch.allclose(cfg_logits(cond, uncond, s), guided)
    guided[:, model.config.end_id] = float("-inf")  # the first token is never END
    ids, _, _ = model.generate_ar(text, cfg_scale=s, temperature=0.0)
    assert torch.equal(ids[:, 0], guided.argmax(-1))
    assert not torch.equal(guided.argmax(-1), cond[:, :-1].argmax(-1))  # guidance changed something


def test_tiny_model_memorises_sequences_including_end():
    torch.manual_seed(0)
    model = BAMMTransformer(config()).train()
    g = torch.Generator().manual_seed(0)
    text = torch.randn(3, 8, generator=g)
    lengths = torch.tensor([4, 9, 13])
    codes = torch.randint(0, 32, (3, 13), generator=g).masked_fill(torch.arange(13)[None] >= lengths[:, None], 0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss, _ = model.loss(codes.repeat(4, 1), lengths.repeat(4), text.repeat(4, 1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    ids, got_lengths, _ = model.generate_ar(text, cfg_scale=0.0, temperature=0.0)
    assert got_lengths.tolist() == lengths.tolist()
    assert (ids[torch.arange(3), lengths] == model.config.end_id).all()
    assert torch.equal(ids[:, :13].masked_fill(torch.arange(13)[None] >= lengths[:, None], 0), codes)
    # the bidirectional pass fills a hidden half back in from the visible half
    keep = torch.arange(13)[None].expand(3, -1) % 2 == 1
    refilled, _ = model.generate_masked(torch.zeros_like(codes).where(~keep, codes), lengths, keep, text,
                                        cfg_scale=0.0, temperature=0.0)
    assert torch.equal(refilled, codes)


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
