"""Pieces shared by the three trainers: optimisation settings and schedule, seeding, distributed set-up, CSV log.

Randomness is a function of (seed, rank, step): every step re-seeds python, numpy and torch from those three
numbers, and the data order is a seeded permutation per epoch. A run resumed from a checkpoint therefore
replays exactly the same random stream as an uninterrupted one, without storing generator states.
"""

from __future__ import annotations

import csv
import math
import os
import random
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


class TrainError(Exception):
    """A bad training input (data folder, preset, run folder, option): the message says which and why."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings of one stage. Presets live in vq.py (tokenizer) and tokens.py (transformers)."""

    steps: int  # optimiser steps in the whole run
    batch_size: int  # global batch, split evenly across ranks
    lr: float = 2e-4  # peak learning rate (MoMask / BAMM)
    warmup: int = 2000  # linear warm-up steps
    milestones: tuple[int, ...] = ()  # steps where the learning rate is multiplied by gamma
    gamma: float = 0.1
    weight_decay: float = 0.0  # AdamW; MoMask uses 0 for the tokenizer and 1e-5 for the transformers
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    val_every: int = 1000  # validation loss (and best checkpoint) every this many steps, and at the end
    ckpt_every: int = 500  # resumable checkpoint every this many steps, and at the end
    log_every: int = 50  # CSV row (means over the last log_every steps)
    seed: int = 3407

    def __post_init__(self):
        for name in ("steps", "batch_size", "val_every", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise TrainError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.lr <= 0 or self.grad_clip < 0:
            raise TrainError(f"bad schedule: warmup={self.warmup}, lr={self.lr}, grad_clip={self.grad_clip}")

    def with_steps(self, steps: int) -> "TrainConfig":
        """Same schedule stretched to `steps`: warm-up and milestones keep their fraction of the run."""
        if steps < 1:
            raise TrainError(f"--steps must be >= 1, got {steps}")
        scale = steps / self.steps
        return replace(self, steps=steps, warmup=round(self.warmup * scale),
                       milestones=tuple(max(1, round(m * scale)) for m in self.milestones))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise TrainError(f"unknown training settings {sorted(unknown)}")
        d = dict(d)
        d["milestones"], d["betas"] = tuple(d.get("milestones", ())), tuple(d.get("betas", (0.9, 0.99)))
        return cls(**d)


def lr_at(config: TrainConfig, step: int) -> float:
    """Learning rate of optimiser step `step` (0-based): linear warm-up, then x gamma at each milestone."""
    warm = min(1.0, (step + 1) / (config.warmup + 1))
    decays = sum(step >= m for m in config.milestones)
    return config.lr * warm * config.gamma**decays


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def seed_step(seed: int, rank: int, step: int) -> None:
    """Seed python, numpy and torch (all devices) for one step of one rank."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(2)
    random.seed(int(state[0]))
    np.random.seed(int(state[1]))
    torch.manual_seed((int(state[0]) << 32) | int(state[1]))


def grad_norm_and_clip(params, max_norm: float) -> float:
    """Global gradient norm before clipping (clipping only when max_norm > 0)."""
    return float(torch.nn.utils.clip_grad_norm_(list(params), max_norm if max_norm > 0 else math.inf))


# ---------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_distributed(device: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): nccl on cuda, gloo on cpu."""
    if device not in ("cpu", "cuda"):
        raise TrainError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available to torch")
        torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=torch.device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    dev = torch.device(f"cuda:{local_rank}") if device == "cuda" else torch.device("cpu")
    return Dist(rank=rank, world=world, local_rank=local_rank, device=dev)


def teardown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast_buffers(module: nn.Module, d: Dist) -> None:
    """Copy rank 0's buffers to every rank. Buffers updated outside autograd (EMA codebooks) drift apart
    between DDP's per-forward broadcasts; parameters stay equal through the gradient all-reduce."""
    if not d.enabled:
        return
    with torch.no_grad():
        for t in module.buffers():
            if t.dtype == torch.bool:  # not every backend broadcasts bool tensors
                tmp = t.to(torch.uint8)
                dist.broadcast(tmp, src=0)
                t.copy_(tmp.bool())
            else:
                dist.broadcast(t.data, src=0)


class LossModule(nn.Module):
    """`forward(batch)` = `model.loss(...)`, so DistributedDataParallel sees the loss as its forward pass."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


# ---------------------------------------------------------------- CSV log


class CsvLog:
    """`log.csv` with a fixed header; rows past `resume_step` (written after the last checkpoint) are dropped."""

    def __init__(self, path: Path, columns: list[str], *, resume_step: int | None = None):
        self.path, self.columns = Path(path), columns
        rows = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != columns:
                    raise TrainError(f"{self.path}: columns {reader.fieldnames} differ from {columns}")
                rows = [r for r in reader if int(r["step"]) <= resume_step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            writer.writerow({k: _fmt(v) for k, v in row.items() if k in self.columns})


def _fmt(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v
