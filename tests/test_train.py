"""Trainers on a tiny synthetic dataset: learning, exact resume (also after a kill), file formats, bad input."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from model_core.train.cli import main
from model_core.train.common import Dist, TrainConfig, lr_at, make_optimizer, seed_step, set_lr
from model_core.train.datasets import MotionCrops, Segment, TextTokens
from model_core.motion.features import mirror_features
from model_core.train.tokens import MIRROR_PREFIX, STAGES, mirrored_ranges, text_token_pairs, transformer_stage
from model_core.train.vq import VQ_PRESETS, train_vq, vq_stage
from support.tiny_dataset import write_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def vq_run(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "vq"
    assert main("train", ["vq", "--data", str(data_dir), "--out", str(out), "--preset", "tiny", "--steps", "20",
                          "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """Token and text-embedding caches shared by the transformer runs (the text encoder loads once)."""
    return tmp_path_factory.mktemp("cache")


def train(stage: str, data_dir: Path, out: Path, vq_run: Path, cache_dir: Path, *args: str) -> int:
    argv = [stage, "--data", str(data_dir), "--out", str(out), "--preset", "tiny", "--no-progress", *args]
    if stage != "vq":
        argv += ["--vq", str(vq_run), "--cache-dir", str(cache_dir)]
    return main("train", argv)


def read_log(run: Path) -> list[dict]:
    with (run / "log.csv").open() as f:
        return list(csv.DictReader(f))


def checkpoint_tensors(run: Path) -> dict[str, torch.Tensor]:
    folder = sorted((run / "checkpoints").glob("step_*"))[-1]
    return {**{f"model.{k}": v for k, v in load_file(folder / "model.safetensors").items()},
            **{f"optim.{k}": v for k, v in load_file(folder / "optimizer.safetensors").items()}}


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


# ------------------------------------------------------------------------------------------- schedule

def test_lr_schedule_warms_up_then_steps_down():
    config = TrainConfig(steps=1000, batch_size=8, lr=1e-3, warmup=99, milestones=(500, 800), gamma=0.1)
    assert lr_at(config, 0) == pytest.approx(1e-5)
    assert lr_at(config, 49) == pytest.approx(5e-4)
    assert lr_at(config, 99) == pytest.approx(1e-3)
    assert lr_at(config, 499) == pytest.approx(1e-3)
    assert lr_at(config, 500) == pytest.approx(1e-4)
    assert lr_at(config, 999) == pytest.approx(1e-5)
    longer = config.with_steps(2000)
    assert (longer.warmup, longer.milestones) == (198, (1000, 1600))


# ------------------------------------------------------------------------------------------- data

def test_motion_crops_pad_short_clips_and_repeat_per_epoch():
    motions = [np.arange(100 * 3, dtype=np.float32).reshape(100, 3), np.ones((10, 3), np.float32),
               np.ones((2, 3), np.float32)]
    crops = MotionCrops(motions, window=64, min_frames=4, seed=1)
    assert len(crops) == 2  # the 2-frame clip is too short
    x, n = crops[1]
    assert n == 10 and x.shape == (64, 3) and (x[:10] == 1).all() and (x[10:] == 0).all()
    x0, n0 = crops[0]
    assert n0 == 64 and torch.equal(x0[1:, 0] - x0[:-1, 0], torch.full((63,), 3.0))  # a contiguous crop
    assert torch.equal(crops[0][0], x0)  # same epoch, same crop
    starts = set()
    for epoch in range(8):
        crops.set_epoch(epoch)
        starts.add(int(crops[0][0][0, 0]) // 3)
    assert len(starts) > 1 and all(0 <= s <= 36 for s in starts)


def token_items(window_prob: float, epochs: int = 40) -> list[np.ndarray]:
    codes = np.arange(30 * 2).reshape(30, 2)  # 30 tokens, 2 layers: row t is (2t, 2t + 1)
    items = TextTokens([Segment("clip", codes, (0,))], torch.zeros(1, 4), max_tokens=20, seed=3,
                       window_prob=window_prob, min_tokens=5)
    out = []
    for epoch in range(epochs):
        items.set_epoch(epoch)
        out.append(items[0][0].numpy())
    return out


@pytest.mark.parametrize("window_prob", [0.0, 0.5, 1.0])
def test_text_tokens_cut_random_windows_with_their_probability(window_prob):
    items = token_items(window_prob)
    for tokens in items:  # always a contiguous run of the clip's rows
        assert 5 <= len(tokens) <= 20
        assert (np.diff(tokens[:, 0]) == 2).all() and (tokens[:, 1] == tokens[:, 0] + 1).all()
    short = sum(len(t) < 20 for t in items)
    if window_prob == 0.0:
        assert short == 0  # the 20-token crop only (at random offsets)
        assert len({int(t[0, 0]) for t in items}) > 1
    elif window_prob == 1.0:
        assert short >= 36 and len({len(t) for t in items}) > 8  # lengths spread over 5..20
    else:
        assert 8 <= short <= 32
    assert all(np.array_equal(a, b) for a, b in zip(items, token_items(window_prob)))  # same seed, same items


# ------------------------------------------------------------------------------------------- learning

def overfit(stage, batch, steps: int = 30) -> list[float]:
    """Train on one fixed batch with the trainer's optimiser and per-step seeding; returns the losses."""
    config = TrainConfig(steps=steps, batch_size=8, lr=2e-3, warmup=0)
    model = stage.model.train()
    optimizer = make_optimizer(model, config)
    losses = []
    for step in range(steps):
        seed_step(0, 0, step)
        set_lr(optimizer, lr_at(config, step))
        loss, logs = stage.loss_fn(model, batch)
        assert math.isfinite(loss.item()) and logs["loss"] == pytest.approx(loss.item())
        optimizer.zero_grad()
        loss.backward()
        unused = [name for name, p in model.named_parameters() if p.grad is None]
        assert not unused, f"parameters outside the graph break DDP (find_unused_parameters=False): {unused}"
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_vq_learns_a_fixed_batch(data_dir, tmp_path):
    stage = vq_stage(data_dir, VQ_PRESETS["tiny"], tmp_path, torch.device("cpu"), seed=0)
    assert isinstance(stage.train_set, MotionCrops) and stage.val_set is not None
    crops, lengths = next(iter(DataLoader(stage.train_set, batch_size=8, shuffle=False)))
    assert crops.shape == (8, 64, 263) and lengths.tolist() == [64] * 8
    losses = overfit(stage, (crops, lengths))
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses


@pytest.mark.parametrize("name", ["t2m", "res"])
def test_transformer_learns_a_fixed_batch(name, data_dir, vq_run, cache_dir, tmp_path):
    pairs = text_token_pairs(data_dir, vq_run, "minilm", cache_dir, Dist())
    template = dataclasses.asdict(STAGES[name].model_presets["tiny"])
    stage = transformer_stage(name, template, pairs, tmp_path, seed=0)
    assert stage.model.config.code_num == 32 and stage.model.config.text_dim == 384
    codes, lengths, text = next(iter(DataLoader(stage.train_set, batch_size=8, collate_fn=stage.collate)))
    assert codes.dtype == torch.long and codes.shape[2] == 3 and codes.shape[1] <= 16
    assert lengths.max() == codes.shape[1] and text.shape == (8, 384)
    losses = overfit(stage, (codes, lengths, text))
    assert sum(losses[-3:]) < 0.85 * sum(losses[:3]), losses


# ------------------------------------------------------------------------------------------- runs

@pytest.mark.parametrize("stage", ["vq", "t2m", "res"])
def test_run_writes_log_best_model_and_safe_files_only(stage, data_dir, vq_run, cache_dir, tmp_path):
    out = tmp_path / stage
    assert train(stage, data_dir, out, vq_run, cache_dir, "--steps", "10") == 0
    rows = read_log(out)
    assert [int(r["step"]) for r in rows] == [5, 10]
    assert all(math.isfinite(float(r["loss"])) and float(r["lr"]) > 0 for r in rows)
    assert math.isfinite(float(rows[-1]["val_loss"]))  # validation at the last step
    assert (out / f"{stage}.safetensors").is_file() and (out / f"{stage}.json").is_file()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".safetensors", ".json", ".csv"}, sorted(map(str, files))
    for p in files:  # every file parses as what its name says (no pickle or torch.save zip in disguise)
        if p.suffix == ".safetensors":
            load_file(p)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        else:
            assert list(csv.reader(p.open()))[0][0] == "step"


@pytest.mark.parametrize("stage", ["vq", "t2m", "res"])
def test_resume_is_exact(stage, data_dir, vq_run, cache_dir, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(stage, data_dir, straight, vq_run, cache_dir, "--steps", "12") == 0
    assert train(stage, data_dir, split, vq_run, cache_dir, "--steps", "12", "--stop-after", "7") == 0
    assert json.loads((split / "checkpoints" / "latest.json").read_text())["step"] == 7
    assert train(stage, data_dir, split, vq_run, cache_dir, "--resume") == 0
    assert_identical(checkpoint_tensors(straight), checkpoint_tensors(split))
    for a, b in zip(read_log(straight), read_log(split), strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


def test_resume_after_kill_is_exact(data_dir, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train_vq(data_dir, straight, preset="tiny", steps=30, progress=False)
    cmd = [sys.executable, "-m", "model_core.cli", "train", "vq", "--data", str(data_dir), "--out", str(killed),
           "--preset", "tiny", "--steps", "30", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = killed / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 120
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    stopped_at = max(int(r["step"]) for r in read_log(killed))
    assert stopped_at < 30, "the run finished before it could be killed"
    train_vq(data_dir, killed, resume=True, progress=False)
    assert_identical(checkpoint_tensors(straight), checkpoint_tensors(killed))


# ------------------------------------------------------------------------------------------- export

def test_export_writes_a_weights_folder_that_generates(data_dir, vq_run, cache_dir, tmp_path, capsys):
    from model_core.decoding.generate import BAMM

    for stage in ("t2m", "res"):
        assert train(stage, data_dir, tmp_path / stage, vq_run, cache_dir, "--steps", "4") == 0
    weights = tmp_path / "weights"
    assert main("train", ["export", "--vq", str(vq_run), "--t2m", str(tmp_path / "t2m"), "--res",
                          str(tmp_path / "res"), "--out", str(weights)]) == 0
    model = BAMM.from_pretrained(weights)
    assert torch.equal(model.vq.codebook(0), load_file(vq_run / "vq.safetensors")["quantizer.layers.0.embed"])
    motion = model.generate("a person walks slowly", seed=0)[0]
    assert motion.joints.shape[1:] == (22, 3) and np.isfinite(motion.joints).all()

    # --last: the runs' final checkpoints rather than their best-validation models (made to differ here)
    for stage in ("t2m", "res"):
        best = tmp_path / stage / f"{stage}.safetensors"
        save_file({k: torch.zeros_like(v) for k, v in load_file(best).items()}, best)
    assert main("train", ["export", "--vq", str(vq_run), "--t2m", str(tmp_path / "t2m"), "--res",
                          str(tmp_path / "res"), "--out", str(tmp_path / "last"), "--last"]) == 0
    for stage in ("t2m", "res"):
        final = load_file(tmp_path / stage / "checkpoints" / "step_00000004" / "model.safetensors")
        exported = load_file(tmp_path / "last" / f"{stage}.safetensors")
        assert final.keys() == exported.keys() and all(torch.equal(v, exported[k]) for k, v in final.items())

    other_vq = tmp_path / "other_vq"  # a t2m run on another tokenizer's tokens does not fit
    assert train("vq", data_dir, other_vq, None, None, "--steps", "2") == 0
    assert main("train", ["export", "--vq", str(other_vq), "--t2m", str(tmp_path / "t2m"), "--res",
                          str(tmp_path / "res"), "--out", str(tmp_path / "w2")]) == 2
    assert "trained on the tokens of another tokenizer" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("args, message", [
    (["vq", "--data", "{tmp}/nowhere"], "no such dataset folder"),
    (["vq", "--data", "{data}", "--preset", "huge"], "unknown --preset 'huge'"),
    (["vq", "--data", "{data}", "--resume"], "holds no run"),
    (["t2m", "--data", "{data}"], "--vq is required"),
    (["t2m", "--data", "{data}", "--vq", "{tmp}"], "no trained tokenizer"),
    (["vq", "--data", "{tmp}"], "not a dataset folder"),
])
def test_bad_input_gives_clear_error(args, message, data_dir, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, data=data_dir) for a in args] + ["--out", str(tmp_path / "run")]
    assert main("train", argv) == 2
    assert message in capsys.readouterr().err


def test_resume_refuses_changed_settings_and_fresh_start_refuses_old_run(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("vq", data_dir, out, None, None, "--steps", "4") == 0
    assert train("vq", data_dir, out, None, None, "--steps", "4") == 2
    assert "pass --resume" in capsys.readouterr().err
    assert train("vq", data_dir, out, None, None, "--resume", "--steps", "8") == 2
    assert "started with --steps 4, not 8" in capsys.readouterr().err


@pytest.mark.parametrize("stage", ["t2m", "res"])
def test_text_noise_is_recorded_kept_on_resume_and_checked(stage, data_dir, vq_run, cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(stage, data_dir, out, vq_run, cache_dir, "--steps", "4", "--stop-after", "2",
                 "--text-noise", "0.75") == 0
    assert json.loads((out / "run.json").read_text())["model"]["text_noise"] == 0.75
    assert train(stage, data_dir, out, vq_run, cache_dir, "--resume", "--text-noise", "1.5") == 2
    assert "started with --text-noise 0.75, not 1.5" in capsys.readouterr().err
    assert train(stage, data_dir, out, vq_run, cache_dir, "--resume") == 0
    assert json.loads((out / f"{stage}.json").read_text())["config"]["text_noise"] == 0.75
    assert train(stage, data_dir, tmp_path / "neg", vq_run, cache_dir, "--text-noise", "-1") == 2
    assert "--text-noise must be >= 0" in capsys.readouterr().err


def test_mirrored_ranges_swap_the_sides_of_motion_captions_and_labels(data_dir):
    feats = np.load(data_dir / "new_joint_vecs" / "000000.npy")
    ranges = [("c1", feats, ["a man waves his left hand.", "his left hand waving high"]),
              ("c2@0-40", feats[:40], ["a person walks at an angle to the right.",
                                       "heading off diagonally to the right"]),  # mirrored: a held-out phrasing
              ("c3", feats, ["strolling forward and slightly rightward"]),  # mirrored: held-out
              ("c4", feats, ["a man waves goodbye with his right hand."]),  # one-sided: not mirrored
              ("c5", feats, ["someone steps to the left."])]  # unlabelled: mirrored
    out, labels = mirrored_ranges(ranges, {"c1": "wave-left-hand", "c2": "walk-right", "c3": None, "c4": "bye"})
    assert [key for key, _, _ in out] == [MIRROR_PREFIX + k for k in ("c1", "c2@0-40", "c5")]
    assert out[0][2] == ["a man waves his right hand.", "his right hand waving high"]
    assert out[1][2] == ["a person walks at an angle to the left."]
    np.testing.assert_array_equal(out[0][1], mirror_features(feats))
    np.testing.assert_array_equal(out[1][1], mirror_features(feats[:40]))
    assert out[2][2] == ["someone steps to the right."]
    assert labels == {MIRROR_PREFIX + "c1": "wave-right-hand", MIRROR_PREFIX + "c2": "walk-left",
                      MIRROR_PREFIX + "c5": None}


def test_mirror_adds_one_mirrored_copy_of_every_training_range_and_is_kept_on_resume(data_dir, vq_run, cache_dir,
                                                                                      tmp_path):
    plain = text_token_pairs(data_dir, vq_run, "minilm", cache_dir, Dist())
    both = text_token_pairs(data_dir, vq_run, "minilm", cache_dir, Dist(), mirror=True)
    originals = {seg.key: seg for seg in plain.segments["train"]}
    copies = {seg.key.removeprefix(MIRROR_PREFIX): seg for seg in both.segments["train"]
              if seg.key.startswith(MIRROR_PREFIX)}
    assert set(copies) == set(originals) and len(both.segments["train"]) == 2 * len(originals)
    assert [seg.key for seg in both.segments["val"]] == [seg.key for seg in plain.segments["val"]]
    changed = sum(not np.array_equal(copies[k].tokens, originals[k].tokens) for k in originals)
    assert changed >= len(originals) // 2, "the mirrored motions should be tokenised as other motions"
    out = tmp_path / "run"
    assert train("t2m", data_dir, out, vq_run, cache_dir, "--steps", "4", "--stop-after", "2", "--mirror") == 0
    assert json.loads((out / "run.json").read_text())["mirror"] is True
    assert train("t2m", data_dir, out, vq_run, cache_dir, "--resume") == 0
    assert json.loads((out / "run.json").read_text())["mirror"] is True
    assert train("t2m", data_dir, tmp_path / "plain", vq_run, cache_dir, "--steps", "2") == 0
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["mirror"] is False
