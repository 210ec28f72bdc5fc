"""Checkpoints: bit-identical round trips and a clear error for every kind of bad file."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from model_core.models.checkpoint import load_model, load_tensors, save_model, save_tensors
from model_core.models.residual import RES_PRESETS, ResidualConfig, ResidualTransformer
from model_core.models.transformer import T2M_PRESETS, BAMMConfig, BAMMTransformer
from model_core.models.vq import VQ_PRESETS, RVQVAE, RVQVAEConfig

MODELS = {
    "vq": (RVQVAE, RVQVAEConfig, VQ_PRESETS["tiny"]),
    "res": (ResidualTransformer, ResidualConfig, RES_PRESETS["tiny"]),
}


def saved(tmp_path, kind):
    cls, config_cls, config = MODELS[kind]
    torch.manual_seed(0)
    model = cls(config)
    if kind == "vq":
        model(torch.randn(2, 16, 263))  # fill the EMA codebook buffers
    save_model(model, config, tmp_path, kind)
    return model


@pytest.mark.parametrize("kind", MODELS)
def test_round_trip_is_bit_identical(tmp_path, kind):
    cls, config_cls, config = MODELS[kind]
    model = saved(tmp_path, kind)
    loaded = load_model(cls, config_cls, tmp_path, kind)
    assert loaded.config == config and not loaded.training
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert original[key].dtype == restored[key].dtype and torch.equal(original[key], restored[key]), key
    meta = json.loads((tmp_path / f"{kind}.json").read_text())
    assert meta["config_class"] == config_cls.__name__ and meta["format_version"] == 1


def test_round_trip_gives_same_tokens(tmp_path):
    model = saved(tmp_path, "vq").eval()
    loaded = load_model(RVQVAE, RVQVAEConfig, tmp_path, "vq")
    x = torch.randn(1, 16, 263)
    assert torch.equal(model.encode(x), loaded.encode(x))


@pytest.mark.parametrize("missing", ["json", "safetensors"])
def test_missing_file_names_the_path(tmp_path, missing):
    saved(tmp_path, "vq")
    (tmp_path / f"vq.{missing}").unlink()
    with pytest.raises(FileNotFoundError, match=f"vq.{missing}"):
        load_model(RVQVAE, RVQVAEConfig, tmp_path, "vq")


def edit_json(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["config"].update(colour="red"), r"unknown \['colour'\]"),
    (lambda m: m["config"].pop("width"), r"missing \['width'\]"),
    (lambda m: m.update(config_class="ResidualConfig"), "config_class"),
    (lambda m: m.update(format_version=99), "format_version"),
])
def test_bad_config_is_a_value_error(tmp_path, edit, match):
    saved(tmp_path, "vq")
    edit_json(tmp_path / "vq.json", edit)
    with pytest.raises(ValueError, match=match):
        load_model(RVQVAE, RVQVAEConfig, tmp_path, "vq")


def test_config_for_other_sizes_names_parameter_and_shapes(tmp_path):
    saved(tmp_path, "vq")  # width 16
    edit_json(tmp_path / "vq.json", lambda m: m["config"].update(width=24))
    with pytest.raises(ValueError, match=r"'encoder.0.weight' has shape \(16, 263, 3\).*expects \(24, 263, 3\)"):
        load_model(RVQVAE, RVQVAEConfig, tmp_path, "vq")


def test_not_json_is_a_value_error(tmp_path):
    saved(tmp_path, "vq")
    (tmp_path / "vq.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(RVQVAE, RVQVAEConfig, tmp_path, "vq")


@pytest.mark.parametrize("corrupt", [
    lambda data: data[: len(data) // 2],
    lambda data: b"garbage",
    lambda data: b"",
    lambda data: data[:8] + b"x" * (len(data) - 8),
])
def test_corrupt_weights_are_a_value_error(tmp_path, corrupt):
    saved(tmp_path, "res")
    path = tmp_path / "res.safetensors"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ValueError, match="res.safetensors"):
        load_model(ResidualTransformer, ResidualConfig, tmp_path, "res")


@pytest.mark.parametrize("change, match", [
    (lambda t: t.pop("null_cond"), r"missing \['null_cond'\]"),
    (lambda t: t.update(extra=torch.zeros(2)), r"unexpected \['extra'\]"),
    (lambda t: t.update(out_bias=torch.zeros(3, 33)), r"'out_bias' has shape \(3, 33\).*expects \(3, 32\)"),
    (lambda t: t.update(out_bias=torch.zeros(3, 32, dtype=torch.float64)), r"'out_bias'.*float64"),
    (lambda t: [t.pop(k) for k in sorted(t) if k.startswith("blocks.")], r"missing \['blocks\.0\..*and \d+ more"),
])
def test_tensor_mismatch_is_a_value_error(tmp_path, change, match):
    saved(tmp_path, "res")
    path = tmp_path / "res.safetensors"
    tensors = load_tensors(path)
    change(tensors)
    save_tensors(path, tensors)
    with pytest.raises(ValueError, match=match):
        load_model(ResidualTransformer, ResidualConfig, tmp_path, "res")


def test_save_and_load_tensors(tmp_path):
    stats = {"mean": np.arange(263, dtype=np.float32), "std": torch.full((263,), 0.5)}
    path = save_tensors(tmp_path / "sub" / "stats.safetensors", stats)
    loaded = load_tensors(path)
    assert torch.equal(loaded["mean"], torch.arange(263, dtype=torch.float32))
    assert torch.equal(loaded["std"], stats["std"])
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_tensors(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("cls, config_cls, config", [
    (ResidualTransformer, ResidualConfig, RES_PRESETS["tiny"]),
    (BAMMTransformer, BAMMConfig, T2M_PRESETS["tiny"]),
])
def test_configs_written_before_text_noise_still_load(tmp_path, cls, config_cls, config):
    """text_noise (training only) came later: files without it load with noise 0; other keys stay required."""
    torch.manual_seed(0)
    model = cls(dataclasses.replace(config, text_noise=1.5))
    save_model(model, model.config, tmp_path, "m")
    assert load_model(cls, config_cls, tmp_path, "m").config.text_noise == 1.5
    edit_json(tmp_path / "m.json", lambda m: m["config"].pop("text_noise"))
    loaded = load_model(cls, config_cls, tmp_path, "m")
    assert loaded.config.text_noise == 0.0
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    edit_json(tmp_path / "m.json", lambda m: m["config"].pop("dropout"))
    with pytest.raises(ValueError, match=r"missing \['dropout'\]"):
        load_model(cls, config_cls, tmp_path, "m")


@pytest.mark.parametrize("cls, config", [(BAMMTransformer, T2M_PRESETS["tiny"]),
                                         (ResidualTransformer, RES_PRESETS["tiny"])])
def test_widened_text_input_starts_as_the_stored_model(tmp_path, cls, config):
    """``widen``: stored weights for a smaller text embedding load into a model with a wider one; the new inputs
    start at zero weight, so outputs equal the stored model's whatever the extra dimensions hold."""
    from model_core.models.checkpoint import load_weights_into

    torch.manual_seed(0)
    narrow = cls(config).eval()
    save_model(narrow, config, tmp_path, "m")
    wide = cls(dataclasses.replace(config, text_dim=config.text_dim + 5)).eval()
    load_weights_into(wide, tmp_path / "m.safetensors", widen=(cls.text_input,))
    text = torch.randn(2, config.text_dim)
    extra = torch.cat([text, 10 * torch.randn(2, 5)], dim=1)
    lengths = torch.tensor([6, 4])
    if cls is BAMMTransformer:
        codes = torch.randint(0, config.code_num, (2, 6))
        loss = lambda m, t: m.loss(codes, lengths, t)[0]  # noqa: E731
    else:
        codes = torch.randint(0, config.code_num, (2, 6, config.num_quantizers))
        loss = lambda m, t: m.loss(codes, t, lengths)[0]  # noqa: E731

    def out(model, t):  # the loss draws its masks at random: the same draws for both models
        torch.manual_seed(1)
        return loss(model, t)
    torch.testing.assert_close(out(wide, extra), out(narrow, text))
    with pytest.raises(ValueError, match="the model expects"):  # only the named weight may be widened
        load_weights_into(wide, tmp_path / "m.safetensors")
    save_model(wide, wide.config, tmp_path, "wide")
    with pytest.raises(ValueError, match="the model expects"):  # and only ever widened, never narrowed
        load_weights_into(narrow, tmp_path / "wide.safetensors", widen=(cls.text_input,))
