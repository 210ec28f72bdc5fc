"""Stages 2 and 3: the BAMM transformer (base token layer, "t2m") and the residual transformer (layers
1..Q-1, "res"), trained on text-token pairs.

Every caption range of every train/val clip is tokenised once with the frozen tokenizer of a `bamm train vq`
run, and every caption embedded once with the text encoder; both are cached as safetensors (default
`<run>/cache/`). Training samples a random caption per item and crops motions longer than 49 tokens
(196 frames) at a random offset; the residual transformer also sees half its items as a random shorter
window of the motion (`RES_WINDOW_PROB`), so that it fills in an action wherever it falls in a clip.
With ``mirror`` both also learn from the mirror image of the training ranges (`mirrored_ranges`), as
HumanML3D's "M" copies do (actions performed with one particular hand or leg are left out).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import safe_open

from ..data.captions import ACTIONS, mirror_caption, mirrored_action, shares_held_out_wording
from ..data.humanml3d import load_split
from ..models.checkpoint import load_model, load_tensors, save_tensors
from ..models.residual import RES_PRESETS, ResidualConfig, ResidualTransformer
from ..models.text import encode_all, load_text_encoder
from ..models.transformer import T2M_PRESETS, BAMMConfig, BAMMTransformer
from ..models.vq import RVQVAE, RVQVAEConfig
from ..motion.features import mirror_features
from .checkpoints import atomic_save_tensors, atomic_write_text
from .common import Dist, TrainConfig, TrainError, barrier, setup_distributed
from .datasets import (BALANCE_CAP, MAX_FRAMES, MIN_FRAMES, Segment, TextTokens, balance_of, balance_settings,
                       caption_segments, collate_text_tokens, repeated, segment_clip, segment_key)
from .loop import Stage, fit
from .runs import RUN_FILE, open_run, save_best, vq_fingerprint, warm_start

DEFAULT_TEXT_ENCODER = "minilm-lexical"  # what the shipped weights read (models/text.py)


def _presets(paper: TrainConfig, small: TrainConfig) -> dict[str, TrainConfig]:
    tiny = TrainConfig(steps=40, batch_size=8, warmup=4, milestones=(30,), weight_decay=1e-5,
                       val_every=20, ckpt_every=10, log_every=5)
    return {"paper": paper, "small": small, "tiny": tiny}


T2M_TRAIN_PRESETS = _presets(
    # BAMM's HumanML3D run: batch 512, lr 2e-4, 2000 warm-up steps, x0.1 at 50k and 80k, AdamW decay 1e-5.
    paper=TrainConfig(steps=100_000, batch_size=512, warmup=2000, milestones=(50_000, 80_000),
                      weight_decay=1e-5, val_every=2000, ckpt_every=2000, log_every=100),
    # About 20 minutes on one idle CPU core (~0.45 s per step; bench/train_step.py), 35 epochs of 2.3k clips.
    small=TrainConfig(steps=2500, batch_size=32, warmup=200, milestones=(1700, 2250), weight_decay=1e-5,
                      val_every=250, ckpt_every=250, log_every=25))
RES_TRAIN_PRESETS = _presets(
    # MoMask's residual transformer: batch 64, lr 2e-4, 2000 warm-up steps, x0.1 at 50k, AdamW decay 1e-5.
    paper=TrainConfig(steps=150_000, batch_size=64, warmup=2000, milestones=(50_000,), weight_decay=1e-5,
                      val_every=2000, ckpt_every=2000, log_every=100),
    # About 18 minutes on one idle CPU core (~0.55 s per step), 28 epochs of 2.3k clips.
    small=TrainConfig(steps=2000, batch_size=32, warmup=200, milestones=(1400, 1800), weight_decay=1e-5,
                      val_every=250, ckpt_every=250, log_every=25))


@dataclass(frozen=True)
class TransformerStage:
    train_presets: dict[str, TrainConfig]
    model_presets: dict
    model_cls: type
    config_cls: type
    max_tokens: Callable  # config -> longest training crop in tokens
    loss: Callable  # (model, (codes (B,N,Q), lengths, text)) -> (loss, logs)
    window_prob: float = 0.0  # share of training items cut to a random shorter window (`TextTokens`)


RES_WINDOW_PROB = 0.5  # residual transformer: half its training items are random windows of their clip

STAGES = {
    "t2m": TransformerStage(T2M_TRAIN_PRESETS, T2M_PRESETS, BAMMTransformer, BAMMConfig,
                            max_tokens=lambda c: c.max_tokens - 1,  # one slot is END
                            loss=lambda m, b: m.loss(b[0][..., 0], b[1], b[2])),
    "res": TransformerStage(RES_TRAIN_PRESETS, RES_PRESETS, ResidualTransformer, ResidualConfig,
                            max_tokens=lambda c: c.max_tokens,
                            loss=lambda m, b: m.loss(b[0], b[2], b[1]), window_prob=RES_WINDOW_PROB),
}


def load_vq_run(folder, device) -> tuple[RVQVAE, np.ndarray, np.ndarray, str]:
    """(tokenizer in eval mode, mean, std, fingerprint of its weights) from a vq run or weights folder."""
    folder = Path(folder)
    if not (folder / "vq.json").is_file() or not (folder / "stats.safetensors").is_file():
        raise TrainError(f"--vq {folder}: no trained tokenizer there (vq.json / stats.safetensors missing); "
                         "train one with 'bamm train vq' first")
    try:
        vq = load_model(RVQVAE, RVQVAEConfig, folder, "vq", device=str(device))
        stats = load_tensors(folder / "stats.safetensors")
    except ValueError as e:
        raise TrainError(f"--vq {folder}: {e}") from e
    return vq, stats["mean"].numpy(), stats["std"].numpy(), vq_fingerprint(folder)


def caption_ranges(clips) -> list[tuple[str, np.ndarray, list[str]]]:
    """(segment key, features of the range, captions) for every captioned range of every clip."""
    out = []
    for clip in clips:
        n = len(clip.features)
        for (start, end), texts in caption_segments(clip).items():
            out.append((segment_key(clip.id, start, end, n), clip.features[start:end], texts))
    return out


MIRROR_PREFIX = "mirror:"  # segment keys and clip ids of the mirrored copies


def mirrored_ranges(ranges, content: dict[str, str | None]) -> tuple[list, dict[str, str | None]]:
    """Mirror-image copies of caption ranges and their clips' action labels: features through
    `features.mirror_features`, captions through `captions.mirror_caption` (a mirrored caption that holds a
    held-out phrasing is left out; so is a range left without captions), labels through
    `captions.mirrored_action` ("walk-left" -> "walk-right"). Ranges of one-sided actions (a right-handed
    goodbye, a kick) are not mirrored; unlabelled ones are."""
    out, labels = [], {}
    for key, feats, texts in ranges:
        clip = segment_clip(key)
        label = content.get(clip)
        if label in ACTIONS:
            label = mirrored_action(label)
            if label is None:
                continue
        kept = [t for t in dict.fromkeys(mirror_caption(t) for t in texts) if not shares_held_out_wording(t)]
        if not kept:
            continue
        out.append((MIRROR_PREFIX + key, mirror_features(feats), kept))
        labels[MIRROR_PREFIX + clip] = label
    return out, labels


def balanced(segs: list[Segment], content: dict[str, str | None], *, cap: int = BALANCE_CAP,
             style: dict[str, str | None] | None = None) -> list[Segment]:
    """The training segments with every segment of a rare action repeated (see `repeat_factors`); with
    `style` (clip id -> style label) also of a rare (action, style) pair."""
    clips = [segment_clip(seg.key) for seg in segs]
    styles = None if style is None else [style.get(c) for c in clips]
    return repeated(segs, [content.get(c) for c in clips], cap=cap, styles=styles)


def motion_digest(ranges: dict[str, list]) -> str:
    """Short hash of every split's range keys and features: a changed dataset gets a new token cache."""
    h = hashlib.sha256()
    for split in sorted(ranges):
        for key, feats, _ in ranges[split]:
            h.update(f"{split}/{key}".encode())
            h.update(np.ascontiguousarray(feats).tobytes())
    return h.hexdigest()[:12]


@torch.inference_mode()
def build_token_cache(path: Path, vq: RVQVAE, ranges, mean, std, device, *, fingerprint: str) -> None:
    """Tokenise every range missing from the cache file at `path` (one motion at a time, exact)."""
    known = set()
    if path.exists():
        with safe_open(str(path), "pt") as f:
            known = set(f.keys())
    todo = [(k, feats) for k, feats, _ in ranges if k not in known]
    if not todo:
        return
    tensors = load_tensors(path) if known else {}
    f = vq.config.frames_per_token
    mean_t, std_t = torch.from_numpy(mean).to(device), torch.from_numpy(std).to(device)
    for key, feats in todo:
        feats = torch.from_numpy(np.ascontiguousarray(feats[: len(feats) // f * f])).to(device)
        codes = vq.encode(((feats - mean_t) / std_t)[None])[0]
        tensors[key] = codes.to(torch.int16 if vq.config.code_num <= 32767 else torch.int64).cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(path, tensors, metadata={"vq": fingerprint})


def build_text_cache(path: Path, captions: list[str], spec: str, device) -> None:
    """Embed every caption missing from the cache file at `path` ("emb" (C, D) + the captions as metadata)."""
    old, emb = [], None
    if path.exists():
        with safe_open(str(path), "pt") as f:
            old = json.loads(f.metadata()["captions"])
            emb = f.get_tensor("emb")
    missing = sorted(set(captions) - set(old))
    if not missing:
        return
    try:
        encoder = load_text_encoder(spec, device=str(device))
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as e:
        raise TrainError(f"--text-encoder {spec}: {e}") from e
    new = encode_all(encoder, missing)
    emb = new if emb is None else torch.cat([emb, new])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(path, {"emb": emb}, metadata={"captions": json.dumps(old + missing), "encoder": spec})


def read_text_cache(path: Path) -> tuple[torch.Tensor, dict[str, int]]:
    with safe_open(str(path), "pt") as f:
        captions = json.loads(f.metadata()["captions"])
        return f.get_tensor("emb"), {t: i for i, t in enumerate(captions)}


def segments(ranges, tokens: dict[str, torch.Tensor], index: dict[str, int]) -> list[Segment]:
    out = []
    for key, _, texts in ranges:
        codes = tokens[key].long().numpy()
        if len(codes):
            out.append(Segment(key, codes, tuple(index[t] for t in texts)))
    return out


@dataclass
class Pairs:
    """The text-token pairs of a dataset: tokenised caption ranges per split, the caption embedding table."""

    segments: dict[str, list[Segment]]
    content: dict[str, str | None]  # clip id -> action label from meta.jsonl (None: not labelled)
    style: dict[str, str | None]  # clip id -> style label from meta.jsonl (None: not labelled)
    table: torch.Tensor  # (captions, text_dim)
    vq_config: dict
    mean: np.ndarray
    std: np.ndarray
    fingerprint: str  # of the tokenizer weights


def text_token_pairs(data, vq_dir: Path, encoder: str, cache: Path, d: Dist, *, mirror: bool = False) -> Pairs:
    """Tokenise and embed (rank 0, cached in `cache`), then read the caches (every rank). mirror: add the
    mirror image of the training ranges (`mirrored_ranges`; validation stays as captured)."""
    vq, mean, std, fingerprint = load_vq_run(vq_dir, d.device)
    splits = ["train"] + (["val"] if (Path(data) / "val.txt").exists() else [])
    clips = {split: load_split(data, split) for split in splits}
    ranges = {split: caption_ranges(clips[split]) for split in splits}
    content = {c.id: c.meta.get("content") for split in splits for c in clips[split]}
    style = {c.id: c.meta.get("style") for split in splits for c in clips[split]}
    if mirror:
        extra, labels = mirrored_ranges(ranges["train"], content)
        ranges["train"] = ranges["train"] + extra
        content.update(labels)
        style.update({clip: style.get(clip.removeprefix(MIRROR_PREFIX)) for clip in labels})  # a mirror keeps its style
    token_path = cache / f"tokens-{fingerprint}-{motion_digest(ranges)}.safetensors"
    text_path = cache / f"text-{encoder.replace(':', '_').replace('/', '_')}.safetensors"
    all_ranges = [r for split in splits for r in ranges[split]]
    if d.main:
        build_token_cache(token_path, vq, all_ranges, mean, std, d.device, fingerprint=fingerprint)
        build_text_cache(text_path, sorted({t for _, _, texts in all_ranges for t in texts}), encoder, d.device)
    barrier(d)
    tokens = load_tensors(token_path)
    table, index = read_text_cache(text_path)
    return Pairs({split: segments(ranges[split], tokens, index) for split in splits}, content, style, table,
                 dataclasses.asdict(vq.config), mean, std, fingerprint)


def transformer_stage(name: str, model_config: dict, pairs: Pairs, out: Path, *, seed: int,
                      balance: bool = False, balance_cap: int = BALANCE_CAP, balance_style: bool = False) -> Stage:
    """Model (seeded; code_num, num_quantizers and text_dim set from the tokenizer and the text table),
    datasets and loss of a "t2m" or "res" run. balance: rare actions repeated in the training set, each item
    at most balance_cap times; balance_style: also rare (action, style) pairs (`repeat_factors`)."""
    spec = STAGES[name]
    overrides = {"code_num": pairs.vq_config["code_num"], "text_dim": int(pairs.table.shape[1])}
    if "num_quantizers" in model_config:
        overrides["num_quantizers"] = pairs.vq_config["num_quantizers"]
    config = dataclasses.replace(spec.config_cls(**model_config), **overrides)
    torch.manual_seed(seed)
    model = spec.model_cls(config)
    crop = min(MAX_FRAMES // 4, spec.max_tokens(config))
    train = pairs.segments["train"]
    if balance:
        train = balanced(train, pairs.content, cap=balance_cap, style=pairs.style if balance_style else None)
    train_set = TextTokens(train, pairs.table, max_tokens=crop, seed=seed, window_prob=spec.window_prob,
                           min_tokens=MIN_FRAMES // 4)
    val = pairs.segments.get("val")
    val_set = TextTokens(val, pairs.table, max_tokens=crop, seed=seed + 1) if val else None
    return Stage(name, model, spec.loss, train_set, val_set, collate=collate_text_tokens,
                 save_best=lambda m: save_best(out, name, m, config))


def train_transformer(stage: str, data, out, *, vq_run=None, text_encoder: str | None = None, cache_dir=None,
                      preset: str | None = None, steps: int | None = None, batch_size: int | None = None,
                      resume: bool = False, device: str = "cpu", stop_after: int | None = None, workers: int = 0,
                      progress: bool = True, init=None, text_noise: float | None = None,
                      balance: bool | None = None, balance_cap: int | None = None,
                      balance_style: bool | None = None, mirror: bool | None = None) -> torch.nn.Module:
    """Train (or resume) a "t2m" or "res" run in `out`; returns the model as trained.

    ``text_noise`` overrides the preset's training noise on text embeddings (``layers.noisy_text``).
    ``balance`` (default on for new runs) repeats the training items of rare actions (`repeat_factors`), each
    at most ``balance_cap`` times (default `BALANCE_CAP`); ``balance_style`` (default off for new runs) also
    the items of rare (action, style) pairs. ``mirror`` (default off for new runs; a resumed run
    keeps its own) adds the mirror image of the training ranges but those of one-sided actions
    (`mirrored_ranges`).
    """
    if stage not in STAGES:
        raise TrainError(f"unknown stage {stage!r} (choose from {', '.join(STAGES)})")
    if text_noise is not None and not text_noise >= 0:
        raise TrainError(f"--text-noise must be >= 0, got {text_noise}")
    balancing = balance_settings(balance, balance_cap, resume=resume, balance_style=balance_style)
    if vq_run is None and not resume:
        raise TrainError(f"--vq is required: the tokenizer run folder the {stage} model learns the tokens of")
    spec = STAGES[stage]
    d = setup_distributed(device)
    out = Path(out)
    extra = {"vq_run": str(Path(vq_run).resolve()) if vq_run is not None else None,
             "text_encoder": text_encoder if text_encoder or resume else DEFAULT_TEXT_ENCODER,
             "init": str(Path(init).resolve()) if init is not None else None,
             "mirror": mirror if resume else bool(mirror), **balancing}
    settings = open_run(out, stage=stage, resume=resume, d=d, presets=spec.train_presets, preset=preset,
                        model_presets=spec.model_presets, data=data, steps=steps, batch_size=batch_size,
                        extra=extra, model_overrides={"text_noise": text_noise})
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    pairs = text_token_pairs(settings.data, Path(settings.extra["vq_run"]), settings.extra["text_encoder"],
                             cache, d, mirror=bool(settings.extra.get("mirror", False)))
    started_with = settings.extra.get("vq_fingerprint", pairs.fingerprint)
    if started_with != pairs.fingerprint:
        raise TrainError(f"--resume: the tokenizer in {settings.extra['vq_run']} changed since this run started "
                         f"(weights {pairs.fingerprint}, the run's tokens come from {started_with})")
    stage_ = transformer_stage(stage, settings.model, pairs, out, seed=settings.train.seed,
                               **balance_of(settings.extra))
    if init is not None and not resume:
        warm_start(stage_.model, init, stage)
    if d.main:  # record the model actually trained and the tokenizer its tokens come from
        stored = json.loads((out / RUN_FILE).read_text())
        update = {"model": dataclasses.asdict(stage_.model.config), "vq_fingerprint": pairs.fingerprint}
        if {k: stored.get(k) for k in update} != update:
            atomic_write_text(out / RUN_FILE, json.dumps({**stored, **update}, indent=2) + "\n")
        save_tensors(out / "stats.safetensors", {"mean": pairs.mean, "std": pairs.std})
    fit(stage_, settings.train, out, d, resume=resume, stop_after=stop_after, workers=workers, progress=progress)
    return stage_.model
