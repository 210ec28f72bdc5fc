"""Train the matching evaluator and the action/style classifier on the training split of a dataset.

Both are saved as safetensors + JSON into one folder:
``evaluator.safetensors/json``, ``classifier.safetensors/json`` and ``labels.json`` (class names,
text encoder, dataset statistics used).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.humanml3d import load_split, load_stats
from ..models.checkpoint import load_tensors, save_tensors
from ..models.text import encode_all, load_text_encoder
from .evaluator import EvaluatorConfig, MatchingEvaluator, MotionClassifier


def pad_batch(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, D) arrays into a zero-padded (B, T_max, D) tensor plus (B,) lengths."""
    lengths = torch.tensor([len(a) for a in arrays])
    out = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1])
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return out, lengths


def clip_labels(clip) -> tuple[str, str]:
    """(content, style) names of a clip from its metadata; clear error when the dataset has none."""
    meta = clip.meta or {}
    if "content" not in meta or "style" not in meta:
        raise ValueError(f"clip {clip.id} has no content/style labels in meta.jsonl: the evaluator "
                         "needs a labelled dataset (e.g. one built by 'bamm data build bandai')")
    return str(meta["content"]), str(meta["style"])


def caption_text(caption) -> str:
    return caption if isinstance(caption, str) else caption.text


def _save(module: torch.nn.Module, config: EvaluatorConfig, folder: Path, name: str) -> None:
    save_tensors(folder / f"{name}.safetensors", {k: v.detach().cpu().contiguous()
                                                  for k, v in module.state_dict().items()})
    (folder / f"{name}.json").write_text(json.dumps(config.to_dict(), indent=2))


def _load(cls, folder: Path, name: str, device: str):
    config_path = folder / f"{name}.json"
    if not config_path.exists():
        raise FileNotFoundError(f"no evaluator at {config_path}: train one with "
                                "'bamm eval train-evaluator --data <dataset> --out <folder>'")
    config = EvaluatorConfig(**json.loads(config_path.read_text()))
    module = cls(config)
    module.load_state_dict(load_tensors(folder / f"{name}.safetensors"))
    return module.to(device).eval()


def load_evaluator(folder: str | Path, *, device: str = "cpu"):
    """(MatchingEvaluator, MotionClassifier, labels dict) from a folder written by ``train_evaluator``."""
    folder = Path(folder)
    labels = json.loads((folder / "labels.json").read_text())
    return (_load(MatchingEvaluator, folder, "evaluator", device),
            _load(MotionClassifier, folder, "classifier", device), labels)


def train_evaluator(data_root: str | Path, out_dir: str | Path, *, text_encoder: str = "minilm",
                    steps: int = 1500, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                    device: str = "cpu", log_every: int = 250) -> dict:
    """Train both networks on the training split; returns the final losses."""
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = load_split(data_root, "train")
    mean, std = load_stats(data_root)
    features = [((c.features - mean) / std).astype(np.float32) for c in clips]
    labels = [clip_labels(c) for c in clips]
    contents = sorted({c for c, _ in labels})
    styles = sorted({s for _, s in labels})
    content_ids = torch.tensor([contents.index(c) for c, _ in labels])
    style_ids = torch.tensor([styles.index(s) for _, s in labels])
    groups = content_ids * len(styles) + style_ids

    encoder = load_text_encoder(text_encoder, device=device)
    captions = [[caption_text(t) for t in c.captions] for c in clips]
    unique = sorted({t for cs in captions for t in cs})
    table = encode_all(encoder, unique)
    index = {t: i for i, t in enumerate(unique)}

    config = EvaluatorConfig(dim_pose=features[0].shape[1], text_dim=encoder.dim,
                             n_contents=len(contents), n_styles=len(styles))
    matcher, classifier = MatchingEvaluator(config).to(device), MotionClassifier(config).to(device)
    params = list(matcher.parameters()) + list(classifier.parameters())
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps)
    rng = np.random.default_rng(seed)
    logs = {}
    for step in tqdm(range(steps), desc="evaluator", mininterval=5):
        idx = rng.choice(len(clips), size=min(batch_size, len(clips)), replace=False)
        x, lengths = pad_batch([features[i] for i in idx])
        text = table[[index[captions[i][rng.integers(len(captions[i]))]] for i in idx]]
        idx_t = torch.from_numpy(idx)
        x, lengths, text = x.to(device), lengths.to(device), text.to(device)
        l_match, _ = matcher.loss(x, lengths, text, groups[idx_t].to(device))
        l_cls, _ = classifier.loss(x, lengths, content_ids[idx_t].to(device), style_ids[idx_t].to(device))
        loss = l_match + l_cls
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            logs = {"step": step, "nce": l_match.item(), "ce": l_cls.item()}
            tqdm.write(json.dumps(logs))
    _save(matcher, config, out_dir, "evaluator")
    _save(classifier, config, out_dir, "classifier")
    (out_dir / "labels.json").write_text(json.dumps(
        {"contents": contents, "styles": styles, "text_encoder": text_encoder,
         "data": str(Path(data_root).name), "steps": steps}, indent=2))
    return logs
