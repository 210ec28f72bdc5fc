"""Int8 decoding: int8 linear layers track float32 ones, whole models keep their predictions, the API guards."""

import pytest
import torch
from torch import nn

from model_core.models.int8 import Int8Linear, int8_available, quantize_int8
from model_core.models.residual import RES_PRESETS, ResidualTransformer
from model_core.models.transformer import T2M_PRESETS, BAMMTransformer, hybrid_attention_mask

pytestmark = pytest.mark.skipif(not int8_available(), reason="this torch build has no fbgemm int8 kernels")


@pytest.mark.parametrize("shape", [(2, 384), (2, 1, 384), (3, 51, 384)])
@pytest.mark.parametrize("out_features", [384, 1152])
def test_int8_linear_tracks_the_float_layer(shape, out_features):
    torch.manual_seed(0)
    layer = nn.Linear(384, out_features)
    x = torch.randn(shape)
    want = layer(x)
    got = Int8Linear(layer)(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    rel = (got - want).norm() / want.norm()
    assert rel < 0.03, f"relative error {rel:.4f}"  # 7-bit activations, per-channel int8 weights
    assert not torch.equal(got, want)  # it really runs in int8


def test_int8_linear_without_bias():
    layer = nn.Linear(64, 32, bias=False)
    x = torch.randn(5, 64)
    assert (Int8Linear(layer)(x) - layer(x)).norm() / layer(x).norm() < 0.03


def _logits(t2m, res):
    torch.manual_seed(1)
    c = t2m.config
    ids = torch.randint(0, c.code_num, (2, 20))
    text = t2m.text_token(torch.randn(2, c.text_dim), torch.tensor([False, True]))
    mask = hybrid_attention_mask(torch.zeros(2, 21, dtype=torch.bool), True)
    r = res.config
    emb = torch.randn(2, 20, r.latent_dim) * 0.1
    res_logits = res._logits(emb, torch.tensor([1, 2]), res._cond(torch.randn(2, r.text_dim), torch.tensor([False, True])),
                             torch.ones(2, 20, dtype=torch.bool))
    return t2m(ids, text, mask), res_logits


def test_quantized_models_keep_their_predictions():
    torch.manual_seed(0)
    t2m, res = BAMMTransformer(T2M_PRESETS["small"]).eval(), ResidualTransformer(RES_PRESETS["small"]).eval()
    with torch.no_grad():
        # random init gives flat logits; sharpen them so the argmax means something
        for model in (t2m, res):
            for p in model.parameters():
                p.mul_(4.0) if p.ndim > 1 else None
        want = _logits(t2m, res)
        quantize_int8(t2m), quantize_int8(res)
        got = _logits(t2m, res)
    for model in (t2m, res):
        assert not any(isinstance(m, nn.Linear) for m in model.modules())
        assert any(isinstance(m, Int8Linear) for m in model.modules())
    for w, g in zip(want, got):
        assert (g.argmax(-1) == w.argmax(-1)).float().mean() >= 0.8  # random weights: near ties
        assert torch.corrcoef(torch.stack([g.flatten(), w.flatten()]))[0, 1] > 0.99


def test_bamm_int8_is_repeatable_and_inference_only(tmp_path):
    from model_core.decoding.generate import BAMM

    model = BAMM.random(preset="tiny")
    float_motion = model.generate("a person walks forward", seed=5)[0]
    assert model.quantize_int8() is model and model.int8
    a = model.generate("a person walks forward", seed=5)[0]
    b = model.generate("a person walks forward", seed=5)[0]
    assert a.frames == b.frames and (a.joints == b.joints).all()
    assert a.joints.shape[1:] == float_motion.joints.shape[1:]
    with pytest.raises(ValueError, match="inference-only"):
        model.save_pretrained(tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_int8_refuses_models_off_the_cpu():
    layer = nn.Linear(4, 4).to("meta")
    with pytest.raises(ValueError, match="CPU only"):
        quantize_int8(nn.Sequential(layer))


def test_shipped_transformer_predicts_the_same_distribution_in_int8():
    """On the trained weights, int8 barely moves the next-token distribution (KL in nats)."""
    import json
    from pathlib import Path

    from model_core.models.checkpoint import load_model
    from model_core.models.text import load_text_encoder
    from model_core.models.transformer import BAMMConfig

    weights = Path(__file__).resolve().parents[1] / "weights"
    t2m = load_model(BAMMTransformer, BAMMConfig, weights, "t2m")
    spec = json.loads((weights / "bamm.json").read_text())["text_encoder"]
    emb = load_text_encoder(spec).encode(["a person walks forward", "someone waves with the right hand"])
    torch.manual_seed(0)
    ids = torch.randint(0, t2m.config.code_num, (2, 30))
    text = t2m.text_token(emb.float(), torch.tensor([False, False]))
    mask = hybrid_attention_mask(torch.zeros(2, 31, dtype=torch.bool), True)
    with torch.no_grad():
        want = t2m(ids, text, mask).log_softmax(-1)
        got = quantize_int8(t2m)(ids, text, mask).log_softmax(-1)
    kl = (want.exp() * (want - got)).sum(-1)
    assert kl.mean() < 0.02 and kl.max() < 0.1, f"KL mean {kl.mean():.4f}, max {kl.max():.4f}"


def test_worker_model_spec_turns_int8_on_for_the_cpu():
    from pathlib import Path

    from model_core.serving.model_spec import load_model

    weights = str(Path(__file__).resolve().parents[1] / "weights")
    assert load_model({"weights": weights, "device": "cpu", "int8": True}).int8
    assert not load_model({"weights": weights, "device": "cpu"}).int8
