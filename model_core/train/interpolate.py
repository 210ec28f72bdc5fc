"""Weight interpolation between a weights folder and a fine-tuning run of it (WiSE-FT, Wortsman et al. 2022).

    bamm train interpolate --weights weights --t2m runs/t2m [--res runs/res] --alpha 0.7 --out weights-mix

A run that starts from the shipped transformers (`--init weights`) and trains on new data (more captions,
mirrored copies) learns what the new data holds and forgets some of what the shipped weights could do; the
models on the straight line between the two share both (the run begins at the stored weights, so the line stays
in one basin). Each transformer given becomes ``(1 - alpha) * stored + alpha * run`` (the run's last checkpoint),
tensor by tensor; alpha 0 is the stored model, 1 the run's. The run must be trained on the folder's tokenizer
(same tokens) and text encoder and have the stored model's size. `--out` gets a copy of the folder (its model
card left out: it describes the stored weights) with the interpolated transformers; an existing `--out` is
refused, nothing is overwritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..models.checkpoint import load_model, load_weights_into, save_model
from ..models.residual import ResidualConfig, ResidualTransformer
from ..models.transformer import BAMMConfig, BAMMTransformer
from .checkpoints import latest_checkpoint
from .common import TrainError
from .export import _run
from .runs import vq_fingerprint

MODELS = {"t2m": (BAMMTransformer, BAMMConfig), "res": (ResidualTransformer, ResidualConfig)}
LEFT_OUT = ("MODEL_CARD.md",)  # describes the stored weights, not the interpolated ones


def interpolate_weights(*, weights, runs: dict[str, str | Path], alpha: float, out) -> Path:
    """Write `out`: a copy of the weights folder `weights` whose transformers named in `runs` ({"t2m": run,
    "res": run}) are (1 - alpha) * stored + alpha * the run's last checkpoint (module docstring)."""
    weights, out = Path(weights), Path(out)
    if not runs:
        raise TrainError("give at least one run to interpolate with: --t2m and/or --res")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise TrainError(f"--alpha must be in [0, 1], got {alpha}")
    if not (weights / "bamm.json").is_file() or not (weights / "vq.safetensors").is_file():
        raise TrainError(f"--weights {weights}: not a weights folder (bamm.json / vq.safetensors missing)")
    if out.exists():
        raise TrainError(f"--out {out} already exists; give a new folder (nothing is overwritten)")
    encoder = json.loads((weights / "bamm.json").read_text()).get("text_encoder")
    fingerprint = vq_fingerprint(weights)
    mixed = {}
    for stage, run in runs.items():
        folder, settings = _run(run, stage)
        if settings.get("vq_fingerprint") != fingerprint:
            raise TrainError(f"--{stage} {folder} was trained on the tokens of another tokenizer than {weights}")
        if settings.get("text_encoder") != encoder:
            raise TrainError(f"--{stage} {folder} uses the text encoder {settings.get('text_encoder')!r}, "
                             f"{weights} {encoder!r}")
        checkpoint = latest_checkpoint(folder)
        if checkpoint is None:
            raise TrainError(f"--{stage} {folder}: no checkpoint yet")
        cls, config_cls = MODELS[stage]
        try:
            stored = load_model(cls, config_cls, weights, stage)
            tuned = load_weights_into(cls(stored.config), checkpoint / "model.safetensors")
        except ValueError as e:
            raise TrainError(f"--{stage} {folder} does not fit {weights}: {e}") from e
        tuned_state = tuned.state_dict()
        stored.load_state_dict({k: torch.lerp(v, tuned_state[k], float(alpha)) if v.is_floating_point()
                                else tuned_state[k] for k, v in stored.state_dict().items()})
        mixed[stage] = stored
    shutil.copytree(weights, out, ignore=shutil.ignore_patterns(*LEFT_OUT))
    for stage, model in mixed.items():
        save_model(model, model.config, out, stage)
    return out
