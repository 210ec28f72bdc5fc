"""Resumable checkpoints in a run folder: safetensors + JSON only (no pickle), every file written atomically.

    <run>/checkpoints/step_00001000/model.safetensors      model parameters and buffers
    <run>/checkpoints/step_00001000/optimizer.safetensors  AdamW moments and step counts
    <run>/checkpoints/step_00001000/state.json             step, optimiser groups, best validation loss, ...
    <run>/checkpoints/latest.json                          {"step": 1000, "dir": "step_00001000"}

A checkpoint folder is filled under a temporary name and renamed when complete; `latest.json` is replaced
after that, so a run killed at any moment resumes from the last complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from .common import TrainError

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Flatten `optimizer.state_dict()` into `{"<param index>.<name>": tensor}` and JSON-able param groups."""
    sd = optimizer.state_dict()
    tensors = {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            tensors[f"{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, sd["param_groups"]


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in groups]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(run: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> Path:
    """Write checkpoint `step`, point latest.json at it and delete older checkpoints. Returns its folder."""
    root = Path(run) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp, final = root / f".{name}.tmp", root / name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    tensors, groups = optimizer_to_tensors(optimizer)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "param_groups": groups}, indent=1))
    if final.exists():  # the same step saved again (a run stopped and resumed at once)
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(root / LATEST, json.dumps({"step": step, "dir": name}))
    for old in root.iterdir():
        if old.is_dir() and old.name != name and old.name.startswith(("step_", ".step_")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run: Path) -> Path | None:
    """Folder of the newest complete checkpoint of `run`, or None."""
    pointer = Path(run) / CHECKPOINTS / LATEST
    if not pointer.exists():
        return None
    try:
        folder = pointer.parent / json.loads(pointer.read_text())["dir"]
    except (ValueError, KeyError) as e:
        raise TrainError(f"{pointer} is damaged ({e}); delete it to restart the run") from e
    if not (folder / "state.json").exists():
        raise TrainError(f"{pointer} points to {folder}, which is missing or incomplete")
    return folder


def load_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device) -> dict:
    """Restore model and optimiser from `folder` in place; returns the saved state (step, ...)."""
    folder = Path(folder)
    missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False, device=str(device))
    if missing or unexpected:
        raise TrainError(f"{folder / 'model.safetensors'} does not fit the model: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]} (was the run started with another preset?)")
    state = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "optimizer.safetensors"))  # load_state_dict moves moments to the params
    optimizer_from_tensors(optimizer, tensors, state.pop("param_groups"))
    return state
