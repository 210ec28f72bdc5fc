"""Run folders: the settings a run was started with (run.json), the best model, the dataset statistics.

    <run>/run.json            stage, preset, data folder, training settings, model config, ...
    <run>/<stage>.safetensors, <stage>.json   best model so far (lowest validation loss), loadable with
                              `models.checkpoint.load_model`
    <run>/stats.safetensors   mean, std of the features the model was trained on
    <run>/log.csv             one row per log interval (see loop.py)
    <run>/checkpoints/        resumable checkpoints (see checkpoints.py)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .checkpoints import CHECKPOINTS, LATEST, atomic_write_text
from .common import Dist, TrainConfig, TrainError, barrier
from ..models.checkpoint import load_weights_into, save_model

RUN_FILE = "run.json"


def vq_fingerprint(folder) -> str:
    """Fingerprint of the tokenizer weights in `folder` (a vq run or weights folder): transformer runs record
    it (`vq_fingerprint` in run.json), so tokens of another tokenizer are told apart."""
    return hashlib.sha256((Path(folder) / "vq.safetensors").read_bytes()).hexdigest()[:16]


@dataclass
class RunSettings:
    stage: str
    preset: str
    data: str  # dataset folder (absolute)
    train: TrainConfig
    model: dict  # the model config dataclass as a dict
    extra: dict  # stage-specific options: vq run folder, text encoder, ...

    def to_dict(self) -> dict:
        return {"stage": self.stage, "preset": self.preset, "data": self.data, "train": self.train.to_dict(),
                "model": self.model, **self.extra}


def check_data_dir(data) -> Path:
    if data is None:
        raise TrainError("--data is required: a dataset folder written by 'bamm data build'")
    data = Path(data).resolve()
    if not data.is_dir():
        raise TrainError(f"--data {data}: no such dataset folder")
    for name in ("Mean.npy", "Std.npy", "train.txt", "new_joint_vecs"):
        if not (data / name).exists():
            raise TrainError(f"--data {data}: not a dataset folder ({name} is missing)")
    return data


def open_run(out, *, stage: str, resume: bool, d: Dist, presets: dict[str, TrainConfig], preset: str | None,
             model_presets: dict, data=None, steps: int | None = None, batch_size: int | None = None,
             extra: dict | None = None, model_overrides: dict | None = None) -> RunSettings:
    """Settings of a new run (written to run.json) or of the run being resumed (read from it).

    `presets` are the training settings and `model_presets` the model config dataclasses, by preset name;
    `model_overrides` (None values ignored) replace fields of the preset's model config, e.g. text_noise.
    On --resume, options given again must agree with the stored ones (a schedule cannot change mid-run).
    """
    model_overrides = {k: v for k, v in (model_overrides or {}).items() if v is not None}
    out = Path(out)
    run_file = out / RUN_FILE
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} is a file, not a folder")
    if resume:
        if not run_file.exists():
            raise TrainError(f"--resume: {out} holds no run ({RUN_FILE} not found); start without --resume")
        if not (out / CHECKPOINTS / LATEST).exists():
            raise TrainError(f"--resume: no checkpoint in {out / CHECKPOINTS} yet; start without --resume")
        stored = json.loads(run_file.read_text())
        if stored.get("stage") != stage:
            raise TrainError(f"--resume: {out} is a {stored.get('stage')!r} run, not {stage!r}")
        train = TrainConfig.from_dict(stored["train"])
        given = {"preset": (preset, stored["preset"]), "steps": (steps, train.steps),
                 "batch-size": (batch_size, train.batch_size)}
        if data is not None:
            given["data"] = (str(Path(data).resolve()), stored["data"])
        for key, value in (extra or {}).items():
            if value is not None and key in stored:
                given[{"vq_run": "vq"}.get(key, key.replace("_", "-"))] = (value, stored[key])
        defaults = {f.name: f.default for f in dataclasses.fields(model_presets[stored["preset"]])}
        for key, value in model_overrides.items():  # runs started before a field existed used its default
            given[key.replace("_", "-")] = (value, stored["model"].get(key, defaults[key]))
        for name, (new, old) in given.items():
            if new is not None and new != old:
                raise TrainError(f"--resume: the run was started with --{name} {old}, not {new}")
        extra_stored = {k: v for k, v in stored.items() if k not in ("stage", "preset", "data", "train", "model")}
        return RunSettings(stage, stored["preset"], stored["data"], train, stored["model"], extra_stored)

    preset = preset or "small"
    if preset not in presets or preset not in model_presets:
        raise TrainError(f"unknown --preset {preset!r} (choose from {', '.join(presets)})")
    data = str(check_data_dir(data))
    if (out / CHECKPOINTS / LATEST).exists():
        raise TrainError(f"--out {out} already holds a run with checkpoints: pass --resume to continue it, "
                         "or choose another --out")
    train = presets[preset]
    if steps is not None:
        train = train.with_steps(steps)
    if batch_size is not None:
        train = dataclasses.replace(train, batch_size=batch_size)
    model = {**dataclasses.asdict(model_presets[preset]), **model_overrides}
    settings = RunSettings(stage, preset, data, train, model, dict(extra or {}))
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("log.csv", f"{stage}.safetensors", f"{stage}.json"):
            (out / stale).unlink(missing_ok=True)  # leftovers of a run killed before its first checkpoint
        atomic_write_text(run_file, json.dumps(settings.to_dict(), indent=2) + "\n")
    barrier(d)
    return settings


def save_best(run: Path, name: str, model, config) -> None:
    """`<run>/<name>.safetensors` + `.json` via `save_model`, each file replaced atomically."""
    tmp = Path(run) / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, config, tmp, name)
    for suffix in (".safetensors", ".json"):
        os.replace(tmp / f"{name}{suffix}", Path(run) / f"{name}{suffix}")
    shutil.rmtree(tmp, ignore_errors=True)


def warm_start(model, folder, name: str, *, widen: tuple[str, ...] = ()) -> None:
    """Start a new run from the weights in `<folder>/<name>.safetensors` (a run folder or a weights folder);
    the optimiser and schedule start afresh. A model whose text embedding grew (e.g. minilm -> minilm-lexical,
    which keeps minilm's dimensions first) starts with zero weights on the new dimensions; so do the tensors
    named in `widen` (`load_weights_into`)."""
    path = Path(folder) / f"{name}.safetensors"
    if not path.exists():
        raise TrainError(f"--init {folder}: no {name}.safetensors there (pass a '{name}' run folder or a "
                         "weights folder)")
    text_input = getattr(model, "text_input", None)
    try:
        load_weights_into(model, path, widen=tuple(widen) + ((text_input,) if text_input else ()))
    except ValueError as e:
        raise TrainError(f"--init: {e} (the preset of this run must match the one it starts from)") from e
