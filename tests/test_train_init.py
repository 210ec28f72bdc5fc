"""Starting a training run from trained weights (--init): same-size and widened models, bad sources."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model_core.models.checkpoint import load_model
from model_core.models.vq import RVQVAE, RVQVAEConfig
from model_core.train.cli import main
from model_core.train.vq import warm_start_vq
from test_train import cache_dir, data_dir, read_log, train, vq_run  # noqa: F401  (fixtures)


@pytest.mark.parametrize("stage", ["vq", "t2m", "res"])
def test_init_starts_from_trained_weights(stage, data_dir, vq_run, cache_dir, tmp_path):
    """--init: a new run's first steps start where the given run ended (lower loss than a fresh start)."""
    first, fresh, warm = tmp_path / "first", tmp_path / "fresh", tmp_path / "warm"
    assert train(stage, data_dir, first, vq_run, cache_dir, "--steps", "30") == 0
    assert train(stage, data_dir, fresh, vq_run, cache_dir, "--steps", "5") == 0
    assert train(stage, data_dir, warm, vq_run, cache_dir, "--steps", "5", "--init", str(first)) == 0
    assert json.loads((warm / "run.json").read_text())["init"] == str(first.resolve())
    loss = lambda run: float(read_log(run)[0]["loss"])  # noqa: E731  mean of steps 1..5
    assert loss(warm) < loss(fresh), (loss(warm), loss(fresh))
    assert float(read_log(warm)[0]["val_loss"]) < float(read_log(fresh)[0]["val_loss"])


@pytest.mark.parametrize("stage", ["t2m", "res"])
def test_init_carries_over_to_a_text_encoder_that_extends_the_old_one(stage, data_dir, vq_run, cache_dir, tmp_path):
    """minilm-lexical keeps minilm's 384 dimensions first: a run on it starts from a minilm run (new text inputs
    at zero weight) and begins where that run ended, lower than a fresh start on the same encoder."""
    first, fresh, warm = tmp_path / "first", tmp_path / "fresh", tmp_path / "warm"
    lexical = ("--text-encoder", "minilm-lexical")
    assert train(stage, data_dir, first, vq_run, cache_dir, "--steps", "30", "--text-encoder", "minilm") == 0
    assert json.loads((first / "run.json").read_text())["model"]["text_dim"] == 384
    assert train(stage, data_dir, fresh, vq_run, cache_dir, "--steps", "5", *lexical) == 0
    assert train(stage, data_dir, warm, vq_run, cache_dir, "--steps", "5", "--init", str(first), *lexical) == 0
    assert json.loads((warm / "run.json").read_text())["model"]["text_dim"] == 768
    loss = lambda run: float(read_log(run)[0]["loss"])  # noqa: E731  mean of steps 1..5
    assert loss(warm) < loss(fresh), (loss(warm), loss(fresh))


def test_init_refuses_weights_of_another_size_or_stage(data_dir, vq_run, cache_dir, tmp_path, capsys):
    assert train("t2m", data_dir, tmp_path / "a", vq_run, cache_dir, "--init", str(vq_run)) == 2
    assert "no t2m.safetensors there" in capsys.readouterr().err
    small = tmp_path / "small"
    assert main("train", ["vq", "--data", str(data_dir), "--out", str(small), "--preset", "small", "--steps", "1",
                          "--batch-size", "2", "--no-progress"]) == 0
    assert train("vq", data_dir, tmp_path / "b", vq_run, cache_dir, "--init", str(small)) == 2
    assert "the preset of this run must match" in capsys.readouterr().err
    assert not (tmp_path / "b" / "checkpoints").exists()


def test_a_wider_decoder_starts_as_the_stored_one_and_keeps_every_token(data_dir, vq_run, tmp_path, capsys):
    """--decoder-width with --init --decoder-only: before training the widened tokenizer decodes what the stored
    one does; after it, the decoder has the new width and has learnt, and every motion keeps its tokens."""
    stored = load_model(RVQVAE, RVQVAEConfig, vq_run, "vq")
    assert stored.config.width == 16 and stored.config.decoder_width == 0
    wide = RVQVAE(dataclasses.replace(stored.config, decoder_width=24))
    warm_start_vq(wide, vq_run)
    codes = torch.randint(0, stored.config.code_num, (2, 5, stored.config.num_quantizers))
    torch.testing.assert_close(wide.eval().decode(codes), stored.decode(codes), rtol=0, atol=1e-5)

    out = tmp_path / "wide"
    assert train("vq", data_dir, out, None, None, "--steps", "6", "--init", str(vq_run), "--decoder-only",
                 "--decoder-width", "24") == 0
    assert json.loads((out / "run.json").read_text())["model"]["decoder_width"] == 24
    trained = load_model(RVQVAE, RVQVAEConfig, out, "vq")
    assert trained.decoder[0].weight.shape[0] == 24 and trained.encoder[0].weight.shape[0] == 16
    x = torch.randn(3, 16, 263)
    assert torch.equal(trained.encode(x), stored.encode(x))
    assert not torch.allclose(trained.decode(codes), stored.decode(codes), atol=1e-4)
    again = tmp_path / "again"  # a run from the wide tokenizer keeps its width without being told
    assert train("vq", data_dir, again, None, None, "--steps", "2", "--init", str(out), "--decoder-only") == 0
    assert json.loads((again / "run.json").read_text())["model"]["decoder_width"] == 24

    for width, message in (("8", "the preset of this run must match"), ("-1", "--decoder-width must be >= 0")):
        assert train("vq", data_dir, tmp_path / f"bad{width}", None, None, "--init", str(vq_run),
                     "--decoder-width", width) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_contact_root_is_recorded_kept_by_runs_from_it_and_keeps_every_token(data_dir, vq_run, tmp_path):
    stored = load_model(RVQVAE, RVQVAEConfig, vq_run, "vq")
    assert stored.config.contact_root is False
    out = tmp_path / "rooted"
    assert train("vq", data_dir, out, None, None, "--steps", "4", "--init", str(vq_run), "--decoder-only",
                 "--contact-root") == 0
    trained = load_model(RVQVAE, RVQVAEConfig, out, "vq")
    assert trained.config.contact_root is True and json.loads((out / "vq.json").read_text())["config"]["contact_root"]
    x = torch.randn(3, 16, 263)
    assert torch.equal(trained.encode(x), stored.encode(x))
    again = tmp_path / "again"  # a run from it keeps the layer without being told
    assert train("vq", data_dir, again, None, None, "--steps", "2", "--init", str(out), "--decoder-only") == 0
    assert load_model(RVQVAE, RVQVAEConfig, again, "vq").config.contact_root is True


def test_a_wider_encoder_starts_with_the_stored_tokens_and_keeps_the_stored_decoder(data_dir, vq_run, tmp_path,
                                                                                    capsys):
    """--width with --init: before training the widened encoder gives every motion the stored tokenizer's tokens
    and the round trip is unchanged; the run records the width, keeps the stored decoder's 16 channels and trains
    the new ones."""
    stored = load_model(RVQVAE, RVQVAEConfig, vq_run, "vq").eval()
    wide = RVQVAE(dataclasses.replace(stored.config, width=24, decoder_width=16))
    warm_start_vq(wide, vq_run)
    x = torch.randn(3, 16, 263)
    wide.eval()
    assert torch.equal(wide.encode(x), stored.encode(x))
    torch.testing.assert_close(wide.decode(wide.encode(x)), stored.decode(stored.encode(x)), rtol=0, atol=1e-5)

    out = tmp_path / "wide-encoder"
    assert train("vq", data_dir, out, None, None, "--steps", "6", "--init", str(vq_run), "--width", "24") == 0
    model = json.loads((out / "run.json").read_text())["model"]
    assert (model["width"], model["decoder_width"]) == (24, 16)
    trained = load_model(RVQVAE, RVQVAEConfig, out, "vq")
    assert trained.encoder[0].weight.shape[0] == 24 and trained.decoder[0].weight.shape[0] == 16
    new_rows = trained.encoder[0].weight[16:]
    assert not torch.allclose(new_rows, wide.encoder[0].weight[16:])  # the new channels learnt

    assert train("vq", data_dir, tmp_path / "bad", None, None, "--init", str(vq_run), "--width", "0") == 2
    err = capsys.readouterr().err
    assert "--width must be >= 1" in err and len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------------------------------- interpolate

@pytest.fixture(scope="module")
def tuned(data_dir, vq_run, cache_dir, tmp_path_factory) -> Path:
    """A weights folder (with a model card) and t2m / res runs of 4 steps `--init` from it, on its tokens."""
    root = tmp_path_factory.mktemp("interpolate")
    for stage in ("t2m", "res"):
        assert train(stage, data_dir, root / f"{stage}-first", vq_run, cache_dir, "--steps", "4") == 0
    weights = root / "weights"
    assert main("train", ["export", "--vq", str(vq_run), "--t2m", str(root / "t2m-first"), "--res",
                          str(root / "res-first"), "--out", str(weights)]) == 0
    (weights / "MODEL_CARD.md").write_text("describes the stored weights\n")
    for stage in ("t2m", "res"):
        assert train(stage, data_dir, root / stage, weights, cache_dir, "--steps", "4", "--init", str(weights)) == 0
    return root


def interpolate(tuned: Path, out: Path, *args: str) -> int:
    return main("train", ["interpolate", "--weights", str(tuned / "weights"), "--out", str(out), *args])


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_interpolate_puts_each_transformer_on_the_line_from_the_stored_one_to_the_run(alpha, tuned, tmp_path):
    from model_core.decoding.generate import BAMM

    out = tmp_path / "mix"
    assert interpolate(tuned, out, "--t2m", str(tuned / "t2m"), "--res", str(tuned / "res"),
                       "--alpha", str(alpha)) == 0
    for stage in ("t2m", "res"):
        stored = load_file(tuned / "weights" / f"{stage}.safetensors")
        run = load_file(tuned / stage / "checkpoints" / "step_00000004" / "model.safetensors")
        mixed = load_file(out / f"{stage}.safetensors")
        assert stored.keys() == mixed.keys()
        assert any(not torch.equal(stored[k], run[k]) for k in stored)  # the run moved away from the stored model
        for k, v in stored.items():
            want = v + alpha * (run[k] - v) if v.is_floating_point() else run[k]
            torch.testing.assert_close(mixed[k], want, rtol=0, atol=1e-6)
    assert (out / "vq.safetensors").read_bytes() == (tuned / "weights" / "vq.safetensors").read_bytes()
    assert not (out / "MODEL_CARD.md").exists()
    motion = BAMM.from_pretrained(out).generate("a person walks slowly", seed=0)[0]
    assert motion.joints.shape[1:] == (22, 3) and np.isfinite(motion.joints).all()


def test_interpolate_refuses_bad_input_in_one_line_and_overwrites_nothing(tuned, data_dir, cache_dir, tmp_path,
                                                                          capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    other_vq = tmp_path / "other-vq"  # a run on another tokenizer's tokens
    assert train("vq", data_dir, other_vq, None, None, "--steps", "2") == 0
    assert train("t2m", data_dir, tmp_path / "other-t2m", other_vq, cache_dir, "--steps", "2") == 0
    t2m = ("--t2m", str(tuned / "t2m"))
    cases = [
        (taken, (*t2m, "--alpha", "0.5"), "already exists"),
        (tmp_path / "a", (*t2m, "--alpha", "1.5"), "--alpha must be in [0, 1]"),
        (tmp_path / "b", ("--alpha", "0.5"), "give at least one run"),
        (tmp_path / "c", ("--t2m", str(tuned / "res"), "--alpha", "0.5"), "is a 'res' run, not 't2m'"),
        (tmp_path / "d", ("--t2m", str(tmp_path / "other-t2m"), "--alpha", "0.5"), "another tokenizer"),
    ]
    for out, args, message in cases:
        assert interpolate(tuned, out, *args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert out == taken or not out.exists()
    assert [p.name for p in taken.iterdir()] == ["keep.txt"] and (taken / "keep.txt").read_text() == "mine"
