"""The training loop shared by the three stages: schedule, DDP, validation, CSV log, checkpoints, resume."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from .checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from .common import (CsvLog, Dist, LossModule, TrainConfig, TrainError, broadcast_buffers, grad_norm_and_clip,
                     lr_at, make_optimizer, seed_step, set_lr)
from .datasets import SkipSampler

LossFn = Callable[[nn.Module, tuple], tuple[torch.Tensor, dict]]


@dataclass
class Stage:
    """What differs between the stages: the model, how a batch becomes a loss, the data."""

    name: str  # "vq", "t2m" or "res": also the file name of the best model in the run folder
    model: nn.Module
    loss_fn: LossFn  # (model, batch on device) -> (loss, {"loss": float, ...})
    train_set: Dataset
    val_set: Dataset | None
    collate: Callable | None = None
    save_best: Callable[[nn.Module], None] | None = None  # writes the best model (rank 0 only)
    find_unused_parameters: bool = False


def _to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    return tuple(_to_device(b, device) for b in batch)


def _set_epoch(dataset, epoch: int) -> None:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


@torch.no_grad()
def evaluate(stage: Stage, batch_size: int, device, seed: int) -> dict[str, float]:
    """Mean loss parts over the whole validation set, with a fixed random stream (same every call)."""
    stage.model.eval()
    _set_epoch(stage.val_set, 0)
    seed_step(seed, 0, 2**31 - 1)
    sums, count = defaultdict(float), 0
    loader = DataLoader(stage.val_set, batch_size=batch_size, shuffle=False, collate_fn=stage.collate)
    for batch in loader:
        n = len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)
        _, logs = stage.loss_fn(stage.model, _to_device(batch, device))
        for k, v in logs.items():
            sums[k] += float(v) * n
        count += n
    stage.model.train()
    return {k: v / count for k, v in sums.items()} if count else {}


def train_step(net: nn.Module, model: nn.Module, optimizer, batch, config: TrainConfig, step: int, d: Dist,
               name: str) -> tuple[dict, float]:
    """One optimiser step (random stream seeded by seed, rank and step); returns (loss logs, gradient norm)."""
    seed_step(config.seed, d.rank, step)
    lr = lr_at(config, step)
    set_lr(optimizer, lr)
    loss, logs = net(_to_device(batch, d.device))
    if not torch.isfinite(loss):
        raise TrainError(f"{name}: the loss is {float(loss)} at step {step} (lr {lr:.3g}); "
                         "lower the learning rate or check the data")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = grad_norm_and_clip(model.parameters(), config.grad_clip)
    optimizer.step()
    return {**logs, "lr": lr}, norm


class Recorder:
    """Rank 0's bookkeeping after each step: validation and best model, CSV rows, checkpoints."""

    def __init__(self, stage: Stage, config: TrainConfig, run: Path, state: dict, *, start: int, end: int,
                 resume: bool, batch_size: int, device):
        self.stage, self.config, self.run, self.state = stage, config, run, state
        self.start, self.end, self.resume, self.batch_size, self.device = start, end, resume, batch_size, device
        self.sums = defaultdict(float, state.pop("log_sums", {}))  # the CSV row in progress
        self.count = int(state.pop("log_count", 0))
        self.clock = time.monotonic() - float(state["seconds"])
        self.log: CsvLog | None = None

    def after_step(self, step: int, lr: float, logs: dict, model, optimizer) -> dict:
        """Returns the CSV row written at this step ({} if none)."""
        config, stage, state = self.config, self.stage, self.state
        for k, v in logs.items():
            self.sums[k] += float(v)
        self.count += 1
        val = {}
        if stage.val_set is not None and (step % config.val_every == 0 or step == config.steps):
            val = evaluate(stage, self.batch_size, self.device, config.seed)
            if state["best_val"] is None or val["loss"] < state["best_val"]:
                state["best_val"] = val["loss"]
                if stage.save_best is not None:
                    stage.save_best(model)
        if self.log is None:  # columns are known after the first step
            val_columns = [f"val_{k}" for k in sorted(logs) if k != "grad_norm"]
            columns = ["step", "lr", "seconds"] + sorted(self.sums) + val_columns
            self.log = CsvLog(self.run / "log.csv", columns, resume_step=self.start if self.resume else None)
        row = {}
        if step % config.log_every == 0 or val or step == config.steps:
            row = {"step": step, "lr": lr, "seconds": time.monotonic() - self.clock,
                   **{k: v / self.count for k, v in self.sums.items()}, **{f"val_{k}": v for k, v in val.items()}}
            self.log.write(row)
            self.sums, self.count = defaultdict(float), 0
        if step % config.ckpt_every == 0 or step == self.end:
            state["seconds"] = time.monotonic() - self.clock
            save_checkpoint(self.run, step, model, optimizer,
                            {**state, "log_sums": dict(self.sums), "log_count": self.count})
        return row


def fit(stage: Stage, config: TrainConfig, run: Path, d: Dist, *, resume: bool = False,
        stop_after: int | None = None, workers: int = 0, progress: bool = True) -> dict:
    """Train `stage.model` in place up to config.steps (or `stop_after` more steps); returns the last logs.

    Rank 0 writes checkpoints to run/checkpoints, rows to run/log.csv and the best model via stage.save_best.
    """
    run = Path(run)
    if stop_after is not None and stop_after < 1:
        raise TrainError(f"--stop-after must be >= 1, got {stop_after}")
    if config.batch_size % d.world:
        raise TrainError(f"--batch-size {config.batch_size} is not divisible by the {d.world} processes")
    model = stage.model.to(d.device)
    optimizer = make_optimizer(model, config)
    state = {"step": 0, "best_val": None, "seconds": 0.0}  # JSON-able: None = no validation yet
    if resume:
        folder = latest_checkpoint(run)
        if folder is None:
            raise TrainError(f"--resume: no checkpoint in {run / 'checkpoints'} (start without --resume)")
        state.update(load_checkpoint(folder, model, optimizer, d.device))
    start = step = int(state.pop("step"))
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    per_rank = config.batch_size // d.world
    sampler = DistributedSampler(stage.train_set, num_replicas=d.world, rank=d.rank, shuffle=True,
                                 seed=config.seed, drop_last=True)
    per_epoch = len(sampler) // per_rank
    if per_epoch == 0:
        raise TrainError(f"the training set has {len(stage.train_set)} items, fewer than one batch of "
                         f"{config.batch_size}: lower --batch-size")
    net = LossModule(model, stage.loss_fn)
    if d.enabled:
        net = DistributedDataParallel(net, device_ids=[d.local_rank] if d.device.type == "cuda" else None,
                                      find_unused_parameters=stage.find_unused_parameters)
    recorder = Recorder(stage, config, run, state, start=start, end=end, resume=resume, batch_size=per_rank,
                        device=d.device) if d.main else None
    bar = tqdm(total=config.steps, initial=start, desc=f"train {stage.name}", disable=not (progress and d.main),
               mininterval=1 if sys.stderr.isatty() else 30, dynamic_ncols=True)
    if start >= config.steps and d.main:
        tqdm.write(f"{run}: the run is already complete ({start} steps)")
    logs = {}
    model.train()
    while step < end:
        epoch, offset = divmod(step, per_epoch)
        sampler.set_epoch(epoch)
        _set_epoch(stage.train_set, epoch)
        loader = DataLoader(stage.train_set, batch_size=per_rank, sampler=SkipSampler(sampler, offset * per_rank),
                            collate_fn=stage.collate, num_workers=workers, drop_last=True,
                            pin_memory=d.device.type == "cuda")
        for batch in loader:
            logs, norm = train_step(net, model, optimizer, batch, config, step, d, stage.name)
            step += 1
            bar.update(1)
            if recorder is not None:
                lr = logs.pop("lr")
                row = recorder.after_step(step, lr, {**logs, "grad_norm": norm}, model, optimizer)
                if row:
                    bar.set_postfix(loss=f"{row['loss']:.4f}", **({"val": f"{row['val_loss']:.4f}"}
                                                                  if "val_loss" in row else {}))
            if step >= end:
                break
    bar.close()
    broadcast_buffers(model, d)  # EMA codebooks differ between ranks after the last forward
    if step == config.steps and stage.val_set is None and stage.save_best is not None and d.main:
        stage.save_best(model)  # no validation split: the final model is the one to ship
    return {**logs, "step": step}
