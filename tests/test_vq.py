"""RVQ-VAE tokenizer: shapes, errors, EMA codebooks, quantiser dropout, training on real HumanML3D clips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model_core.models.vq import VQ_PRESETS, EMACodebook, RVQVAE, RVQVAEConfig

TINY = VQ_PRESETS["tiny"]


@pytest.fixture(scope="module")
def real(hml_dir):
    """Four real clips cut to 32 frames, normalised, plus the dataset Mean/Std."""
    mean, std = np.load(hml_dir / "Mean.npy"), np.load(hml_dir / "Std.npy")
    clips = [np.load(p) for p in sorted((hml_dir / "new_joint_vecs").glob("*.npy"))]
    clips = [c[:32] for c in clips if len(c) >= 32][:4]
    x = torch.tensor(np.stack([(c - mean) / std for c in clips]), dtype=torch.float32)
    return x, mean, std


def make(**changes) -> RVQVAE:
    torch.manual_seed(0)
    return RVQVAE(dataclasses.replace(TINY, **changes))


@pytest.mark.parametrize("frames", [4, 16, 36])
def test_encode_decode_shapes(frames):
    model = make()
    model.train()
    model(torch.randn(2, frames, 263))  # initialise the codebooks from data
    model.eval()
    codes = model.encode(torch.randn(2, frames, 263))
    assert codes.shape == (2, frames // 4, TINY.num_quantizers) and codes.dtype == torch.int64
    assert 0 <= codes.min() and codes.max() < TINY.code_num
    for q in range(1, TINY.num_quantizers + 1):
        assert model.decode(codes[..., :q]).shape == (2, frames, 263)


def test_fewer_layers_decode_differently():
    model = make()
    model(torch.randn(2, 16, 263))
    model.eval()
    codes = model.encode(torch.randn(2, 16, 263))
    assert not torch.equal(model.decode(codes[..., :1]), model.decode(codes))


@pytest.mark.parametrize("shape, match", [
    ((1, 6, 263), "multiple of 4"),
    ((1, 17, 263), "multiple of 4"),
    ((1, 0, 263), "multiple of 4"),
    ((1, 16, 262), r"\(B, T, 263\)"),
    ((16, 263), r"\(B, T, 263\)"),
])
def test_encode_rejects_bad_motion(shape, match):
    with pytest.raises(ValueError, match=match):
        make().encode(torch.zeros(shape))


@pytest.mark.parametrize("codes, match", [
    (torch.full((1, 4, 3), TINY.code_num), "must lie in"),
    (torch.full((1, 4, 3), -2), "must lie in"),
    (torch.zeros(1, 4, 4, dtype=torch.long), "1 <= q <= 3"),
    (torch.zeros(1, 4, 3, dtype=torch.float32), "int64"),
    (torch.zeros(4, 3, dtype=torch.long), r"\(B, N, q\)"),
])
def test_decode_rejects_bad_codes(codes, match):
    with pytest.raises(ValueError, match=match):
        make().decode(codes)


def test_codebook_accessor():
    model = make()
    assert model.codebook(2).shape == (TINY.code_num, TINY.code_dim)
    with pytest.raises(ValueError, match="layer"):
        model.codebook(TINY.num_quantizers)


@pytest.mark.parametrize("changes", [dict(width=0), dict(decoder_width=-1), dict(quantize_dropout_prob=1.5),
                                     dict(ema_decay=-0.1)])
def test_config_rejects_bad_values(changes):
    with pytest.raises(ValueError, match=next(iter(changes))):
        RVQVAEConfig(**changes)


def test_config_is_keyword_only():
    with pytest.raises(TypeError):
        RVQVAEConfig(263)


def test_paper_preset_matches_momask():
    c = VQ_PRESETS["paper"]
    assert (c.code_num, c.code_dim, c.num_quantizers, c.width, c.quantize_dropout_prob) == (512, 512, 6, 512, 0.2)
    model = RVQVAE(c).eval()
    assert model.encode(torch.zeros(1, 8, 263)).shape == (1, 2, 6)


def test_training_lowers_loss_and_reaches_every_parameter(real):
    x, mean, std = real
    model = make(quantize_dropout_prob=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for step in range(50):
        loss, logs = model.loss(x, mean=mean, std=std)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, name
        opt.step()
        losses.append(logs["loss"])
        assert set(logs) == {"loss", "rec", "pos", "commit", "perplexity"}
    assert losses[-1] < 0.6 * losses[0]
    names = dict(model.named_parameters())
    assert not any("embed" in n or "code_" in n for n in names)  # codebooks are EMA buffers


def test_tiny_vq_overfits_a_few_clips(real):
    x, mean, std = real
    model = make()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def error():
        model.eval()
        err = (model.decode(model.encode(x)) - x).abs().mean().item()
        model.train()
        return err

    model(x)  # codebooks start from data
    before = error()
    for _ in range(120):
        loss, _ = model.loss(x, mean=mean, std=std)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert error() < 0.5 * before


def test_loss_masks_padding(real):
    x, mean, std = real
    model = make()
    model(x)
    model.eval()  # no dropout, no codebook update: deterministic
    lengths = torch.tensor([32, 20, 9, 32])
    _, logs = model.loss(x, mean=mean, std=std, lengths=lengths)
    recon, _, _ = model(x, lengths=lengths)
    valid = torch.arange(32)[None] < lengths[:, None]
    assert logs["rec"] == pytest.approx(F.smooth_l1_loss(recon[valid], x[valid]).item(), rel=1e-5)
    _, full = model.loss(x, mean=mean, std=std)
    assert full["rec"] != pytest.approx(logs["rec"], rel=1e-3)


def test_loss_rejects_bad_stats(real):
    x, mean, _ = real
    with pytest.raises(ValueError, match="mean and std"):
        make().loss(x, mean=mean, std=np.ones(262))


@pytest.mark.parametrize("lengths", [torch.tensor([32, 0, 5, 5]), torch.tensor([33, 5, 5, 5]), torch.tensor([5])])
def test_loss_rejects_bad_lengths(real, lengths):
    x, mean, std = real
    with pytest.raises(ValueError, match="lengths"):
        make().loss(x, mean=mean, std=std, lengths=lengths)


def test_ema_update_moves_used_code_and_resets_dead_codes():
    torch.manual_seed(0)
    book = EMACodebook(8, 4, decay=0.9)
    book.initialise(torch.randn(20, 4))
    start = book.embed.clone()
    r = torch.randn(16, 4) + 5.0
    book.update(r, torch.zeros(16, dtype=torch.long))  # every vector goes to code 0
    expected0 = (0.9 * start[0] + 0.1 * r.sum(0)) / (0.9 + 0.1 * 16)
    assert torch.allclose(book.embed[0], expected0, atol=1e-6)
    for row in book.embed[1:]:  # counts fell to 0.9 < 1: reset to input vectors
        assert (r == row).all(dim=1).any()
    assert torch.equal(book.code_count[1:], torch.ones(7))


def test_training_forward_updates_codebooks():
    model = make(quantize_dropout_prob=0.0)
    x = torch.randn(4, 16, 263)
    model(x)
    before = [model.codebook(i).clone() for i in range(TINY.num_quantizers)]
    model(x + 0.5)
    assert all(not torch.equal(b, model.codebook(i)) for i, b in enumerate(before))
    model.eval()
    frozen = model.codebook(0).clone()
    model(x)
    assert torch.equal(frozen, model.codebook(0))


def test_quantizer_dropout_uses_fewer_layers_in_training():
    model = make(quantize_dropout_prob=1.0)
    z = torch.randn(2, 4, TINY.code_dim)
    active = set()
    for _ in range(20):
        _, codes, _, _ = model.quantizer(z)
        used = (codes >= 0).all(dim=(0, 1))
        n = int(used.sum())
        assert used[:n].all() and not used[n:].any()  # always a prefix of the layers
        active.add(n)
    assert min(active) < TINY.num_quantizers and active <= {1, 2, 3}
    model.eval()
    _, codes, _, _ = model.quantizer(z)
    assert (codes >= 0).all()


def test_no_quantizer_dropout_when_disabled():
    model = make(quantize_dropout_prob=0.0)
    for _ in range(10):
        _, codes, _, _ = model.quantizer(torch.randn(2, 4, TINY.code_dim))
        assert (codes >= 0).all()


def loss_of(recon, x, mean, std, **weights):
    """The training loss of a tiny model whose forward returns `recon` as the reconstruction of `x`."""
    model = make(**weights)
    model.forward = lambda *_, **__: (recon, torch.zeros(()), torch.ones(()))
    return model.loss(x, mean=mean, std=std)[1]


SMOOTH = {"vel_weight": 1.0, "acc_weight": 1.0, "skate_weight": 1.0}


def test_smoothness_terms_are_zero_for_an_exact_reconstruction(real):
    x, mean, std = real
    logs = loss_of(x.clone(), x, mean, std, **SMOOTH)
    assert logs["vel"] == pytest.approx(0.0, abs=1e-6) and logs["acc"] == pytest.approx(0.0, abs=1e-6)
    assert "vel" not in loss_of(x.clone(), x, mean, std)  # weights 0 (older configs): terms not computed


def test_frame_to_frame_jitter_weighs_on_acceleration_more_than_on_velocity(real):
    x, mean, std = real
    sign = torch.tensor([(-1.0) ** t for t in range(x.shape[1])])[None, :, None]
    jitter = x.clone()
    jitter[..., 4:67] += 0.05 * sign  # joints relative to the root, alternating every frame
    slow = x.clone()
    slow[..., 4:67] += 0.05 * torch.linspace(-1, 1, x.shape[1])[None, :, None]  # a slow drift of equal size
    j, s = loss_of(jitter, x, mean, std, **SMOOTH), loss_of(slow, x, mean, std, **SMOOTH)
    assert j["acc"] > 10 * s["acc"] and j["acc"] > j["vel"]


def test_skate_term_counts_foot_motion_only_where_the_input_foot_is_down(real):
    x, mean, std = real
    contacts = torch.as_tensor((x * torch.as_tensor(std) + torch.as_tensor(mean))[..., -4:] > 0.5)
    assert contacts.any() and (~contacts).any()
    base = loss_of(x.clone(), x, mean, std, **SMOOTH)["skate"]
    slide = x.clone()
    slide[..., 1] += 1.0  # root slides sideways in the facing frame: every foot moves, grounded or not
    assert loss_of(slide, x, mean, std, **SMOOTH)["skate"] > base + 0.1
    lifted = x.clone()
    lifted[..., -4:] = (torch.as_tensor(-mean[-4:]) / torch.as_tensor(std[-4:])).float()  # no contact in x
    assert loss_of(slide, lifted, mean, std, **SMOOTH)["skate"] == 0.0


def test_decoder_only_training_keeps_every_token_and_lowers_the_loss(real):
    x, mean, std = real
    model = make(quantize_dropout_prob=0.0)
    model(x)  # one training pass fills the codebooks
    model.eval()
    tokens = model.encode(x)
    encoder = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("decoder.")}
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss, logs = model.loss(x, mean=mean, std=std, decoder_only=True)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("decoder."))
        opt.step()
        losses.append(logs["loss"])
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in encoder.items())
    model.eval()
    assert torch.equal(model.encode(x), tokens)


def test_decoder_only_training_decodes_the_tokens_of_the_eval_mode_encoder(real):
    """The frozen encoder runs without dropout, so the decoder learns from the very tokens the transformers see
    (with the encoder's dropout on, the codes of a training batch differ from them)."""
    x, mean, std = real
    model = make(quantize_dropout_prob=0.0, dropout=0.5)
    model(x)
    model.eval()
    tokens = model.encode(x)
    expected, _ = model.loss(x, mean=mean, std=std, decoder_only=True)
    model.train()
    model.decoder.eval()  # only the encoder's mode differs from the eval-mode loss above
    loss, _ = model.loss(x, mean=mean, std=std, decoder_only=True)
    assert model.encoder.training
    assert torch.allclose(loss, expected)
    model.encoder.train()
    assert not torch.equal(model.encode(x), tokens)  # dropout on: other codes, which this loss must not use


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_ground_term_counts_toe_error_only_where_the_input_toe_is_on_the_floor(real, weight):
    x, mean, std = real
    exact = loss_of(x.clone(), x, mean, std, **SMOOTH, ground_weight=weight)
    slide = x.clone()
    slide[..., 1] += 1.0  # the root slides sideways: every toe moves against the input's
    moved = loss_of(slide, x, mean, std, **SMOOTH, ground_weight=weight)
    assert exact["ground"] == pytest.approx(0.0, abs=1e-6)
    assert moved["ground"] > 0.1
    assert moved["loss"] - exact["loss"] > (moved["ground"] * weight) * 0.99
