"""Stage 1: the RVQ-VAE motion tokenizer, trained on random 64-frame crops of normalised features (MoMask's
window; every clip once per epoch, shorter clips zero-padded with the padding left out of the loss).

    bamm train vq --data <dataset> --preset small --out runs/vq
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.humanml3d import load_split, load_stats
from ..models.checkpoint import load_config, save_tensors
from ..models.vq import VQ_PRESETS, RVQVAE, RVQVAEConfig
from .common import TrainConfig, TrainError, setup_distributed
from .datasets import BALANCE_CAP, MotionCrops, balance_of, balance_settings, repeated
from .loop import Stage, fit
from .runs import open_run, save_best, warm_start

WINDOW = 64  # frames per training crop (MoMask's window)

TRAIN_PRESETS = {
    # MoMask's tokenizer recipe: batch 256, lr 2e-4, 2000 warm-up steps, x0.1 at 150k and 250k, no weight decay.
    "paper": TrainConfig(steps=300_000, batch_size=256, warmup=2000, milestones=(150_000, 250_000),
                         weight_decay=0.0, val_every=5000, ckpt_every=5000, log_every=100),
    # About 21 minutes on one idle CPU core (~0.5 s per step; bench/train_step.py), 70 crops per clip of a
    # 2.3k-clip dataset.
    "small": TrainConfig(steps=2500, batch_size=64, warmup=200, milestones=(1700, 2250),
                         weight_decay=0.0, val_every=250, ckpt_every=250, log_every=25),
    # Unit tests.
    "tiny": TrainConfig(steps=40, batch_size=8, warmup=4, milestones=(30,), weight_decay=0.0,
                        val_every=20, ckpt_every=10, log_every=5),
}


def normalised(clips, mean: np.ndarray, std: np.ndarray) -> list[np.ndarray]:
    return [((c.features - mean) / std).astype(np.float32) for c in clips]


def vq_stage(data, config: RVQVAEConfig, out: Path, device: torch.device, *, seed: int,
             decoder_only: bool = False, balance: bool = False, balance_cap: int = BALANCE_CAP,
             balance_style: bool = False) -> Stage:
    """Model (seeded), crop datasets and loss of a tokenizer run on the dataset folder `data`.
    decoder_only: train the decoder alone (the tokens of every motion stay as they are; `RVQVAE.loss`).
    balance: the clips of rare actions (meta.jsonl "content") listed several times per epoch, each a crop at
    its own offset (`repeat_factors`, at most balance_cap copies), so the codebook learns their poses;
    balance_style: also by (action, style) pair (meta.jsonl "style")."""
    mean, std = load_stats(data)
    f = config.frames_per_token
    clips = load_split(data, "train")
    motions = normalised(clips, mean, std)
    if balance:
        styles = [c.meta.get("style") for c in clips] if balance_style else None
        motions = repeated(motions, [c.meta.get("content") for c in clips], cap=balance_cap, styles=styles)
    train_set = MotionCrops(motions, window=WINDOW, min_frames=f, seed=seed)
    if len(train_set) == 0:
        raise TrainError(f"{data}: the train split has no clip of {f} frames or more")
    val_motions = normalised(load_split(data, "val"), mean, std) if (Path(data) / "val.txt").exists() else []
    val_set = MotionCrops(val_motions, window=WINDOW, min_frames=f, seed=seed + 1)
    torch.manual_seed(seed)
    model = RVQVAE(config)
    mean_t, std_t = torch.from_numpy(mean).to(device), torch.from_numpy(std).to(device)

    def loss_fn(net, batch):
        x, lengths = batch
        return net.loss(x, mean=mean_t, std=std_t, lengths=lengths, decoder_only=decoder_only)

    return Stage("vq", model, loss_fn, train_set, val_set if len(val_set) else None,
                 save_best=lambda m: save_best(out, "vq", m, config))


def warm_start_vq(model: RVQVAE, folder) -> None:
    """Start a tokenizer run from `<folder>/vq.safetensors`, whose encoder (`width`) and decoder
    (`decoder_width`) may be narrower than `model`'s: the stored convolutions fill the first channels and the
    new ones are read by nothing yet (`load_weights_into`), so the widened model encodes to the same tokens and
    decodes exactly as the stored one did, and training brings the new channels in."""
    convs = tuple(k for k in model.state_dict() if k.startswith(("encoder.", "decoder.")))
    warm_start(model, folder, "vq", widen=convs)


def train_vq(data, out, *, preset: str | None = None, steps: int | None = None, batch_size: int | None = None,
             resume: bool = False, device: str = "cpu", stop_after: int | None = None, workers: int = 0,
             progress: bool = True, init=None, decoder_only: bool | None = None, balance: bool | None = None,
             balance_cap: int | None = None, decoder_width: int | None = None, width: int | None = None,
             balance_style: bool | None = None, contact_root: bool | None = None) -> RVQVAE:
    """Train (or resume) a tokenizer run in `out`; returns the model as trained (rank 0 keeps the best on disk).
    decoder_only (with init): fine-tune the decoder of a trained tokenizer without changing its tokens, so
    transformers trained on its tokens stay valid. balance (default on for new runs): rare-action clips
    repeated per epoch, at most balance_cap times (default `BALANCE_CAP`); balance_style: also by (action,
    style) pair (`repeat_factors`). decoder_width: the decoder's
    channels (default: the init tokenizer's, else the preset's width); with init, a wider decoder starts as
    the stored one (`warm_start_vq`); width: the encoder's channels (and the decoder's when decoder_width is 0),
    default and warm start the same way. contact_root: the decoded root follows the planted toes
    (`motion.contact_root`, in the loss and wherever the tokenizer decodes; default: the init tokenizer's)."""
    balancing = balance_settings(balance, balance_cap, resume=resume, balance_style=balance_style)
    if decoder_width is not None and decoder_width < 0:
        raise TrainError(f"--decoder-width must be >= 0 (0: the preset's width), got {decoder_width}")
    if width is not None and width < 1:
        raise TrainError(f"--width must be >= 1, got {width}")
    if init is not None and not resume and (Path(init) / "vq.json").exists():
        try:  # a run from a trained tokenizer keeps its widths unless told otherwise
            stored = load_config(RVQVAEConfig, Path(init) / "vq.json")
        except ValueError as e:
            raise TrainError(f"--init: {e}") from e
        if decoder_width is None:  # a wider encoder keeps the stored decoder's channels
            decoder_width = stored.decoder_width or (stored.width if width is not None else None)
        if width is None:
            width = stored.width
        if contact_root is None:
            contact_root = stored.contact_root or None
    d = setup_distributed(device)
    out = Path(out)
    settings = open_run(out, stage="vq", resume=resume, d=d, presets=TRAIN_PRESETS, preset=preset,
                        model_presets=VQ_PRESETS, data=data, steps=steps, batch_size=batch_size,
                        extra={"init": str(Path(init).resolve()) if init is not None else None,
                               "decoder_only": bool(decoder_only) if not resume else decoder_only,
                               **balancing},
                        model_overrides={"decoder_width": decoder_width, "width": width,
                                         "contact_root": contact_root})
    if settings.extra.get("decoder_only") and settings.extra.get("init") is None:
        raise TrainError("--decoder-only fine-tunes a trained tokenizer: give it with --init")
    stage = vq_stage(settings.data, RVQVAEConfig(**settings.model), out, d.device, seed=settings.train.seed,
                     decoder_only=bool(settings.extra.get("decoder_only")),
                     **balance_of(settings.extra))
    if init is not None and not resume:
        warm_start_vq(stage.model, init)
    if d.main:
        save_tensors(out / "stats.safetensors", dict(zip(("mean", "std"), load_stats(settings.data))))
    fit(stage, settings.train, out, d, resume=resume, stop_after=stop_after, workers=workers, progress=progress)
    return stage.model
