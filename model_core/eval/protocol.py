"""The evaluation protocol: real test clips vs motions generated from held-out caption phrasings.

For each repeat, every test clip gets one caption written with phrasings never used in training
(``captions.evaluation_captions``); the model generates a motion for it (at the clip's length, or at
the length it predicts itself), and the evaluator embeds real and generated motions and the caption.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from ..data.captions import evaluation_captions
from ..data.humanml3d import load_split, load_stats
from . import metrics
from .train_evaluator import clip_labels, load_evaluator, pad_batch


@dataclass
class TestClip:
    id: str
    features: np.ndarray  # (T, 263) normalised with the dataset statistics
    content: str
    style: str


def load_test_clips(data_root, split: str, mean, std) -> list[TestClip]:
    out = []
    for c in load_split(data_root, split):
        content, style = clip_labels(c)
        out.append(TestClip(c.id, ((c.features - mean) / std).astype(np.float32), content, style))
    if not out:
        raise ValueError(f"split {split!r} of {data_root} is empty")
    return out


@torch.no_grad()
def embed_motions(matcher, features: list[np.ndarray], *, batch: int = 64) -> np.ndarray:
    out = []
    for i in range(0, len(features), batch):
        x, lengths = pad_batch(features[i:i + batch])
        out.append(matcher.embed_motion(x, lengths).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def embed_texts(matcher, text_encoder, captions: list[str], *, batch: int = 256) -> np.ndarray:
    out = []
    for i in range(0, len(captions), batch):
        out.append(matcher.embed_text(text_encoder.encode(captions[i:i + batch]).float()).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def classify(classifier, features: list[np.ndarray], *, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    cs, ss = [], []
    for i in range(0, len(features), batch):
        x, lengths = pad_batch(features[i:i + batch])
        c, s = classifier.predict(x, lengths)
        cs.append(c.numpy()), ss.append(s.numpy())
    return np.concatenate(cs), np.concatenate(ss)


def generate_features(bamm, captions: list[str], frames: list[int] | None, *, seed: int, rounds: int,
                      mean, std, batch: int = 32) -> list[np.ndarray]:
    """Generated motions as features normalised with the dataset statistics, in caption order.

    With ``frames`` the clips are grouped by length so each group is one batched call.
    """
    order = defaultdict(list)
    for i in range(len(captions)):
        order[None if frames is None else int(frames[i]) // 4 * 4].append(i)
    out: list[np.ndarray | None] = [None] * len(captions)
    for length, idx in order.items():
        for b in range(0, len(idx), batch):
            chunk = idx[b:b + batch]
            motions = bamm.generate([captions[i] for i in chunk], frames=length, seed=seed + b, rounds=rounds)
            for i, m in zip(chunk, motions):
                out[i] = ((m.features - mean) / std).astype(np.float32)
    return out


def pick_captions(clips: list[TestClip], repeat: int) -> list[str]:
    caps = []
    for k, c in enumerate(clips):
        options = evaluation_captions(c.content, c.style)
        caps.append(options[(k + repeat) % len(options)])
    return caps


def evaluate(bamm, data_root, evaluator_dir, *, split: str = "test", repeats: int = 3, rounds: int = 2,
             length: str = "gt", seed: int = 0, mm_prompts: int = 32, mm_samples: int = 10,
             text_encoder=None, log=print) -> dict[str, list[float]]:
    """Per-repeat values of every metric (real references included). ``length``: "gt" or "predicted"."""
    if length not in ("gt", "predicted"):
        raise ValueError(f"length must be 'gt' or 'predicted', got {length!r}")
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    matcher, classifier, labels = load_evaluator(evaluator_dir)
    mean, std = load_stats(data_root)
    clips = load_test_clips(data_root, split, mean, std)
    text_encoder = text_encoder or bamm.text_encoder
    real = [c.features for c in clips]
    real_emb = embed_motions(matcher, real)
    c_true = np.array([labels["contents"].index(c.content) if c.content in labels["contents"] else -1 for c in clips])
    s_true = np.array([labels["styles"].index(c.style) if c.style in labels["styles"] else -1 for c in clips])
    c_real, s_real = classify(classifier, real)
    results: dict[str, list[float]] = defaultdict(list)
    rng = np.random.default_rng(seed)
    for r in range(repeats):
        caps = pick_captions(clips, r)
        text_emb = embed_texts(matcher, text_encoder, caps)
        perm = rng.permutation(len(clips))
        real_p, text_p = real_emb[perm], text_emb[perm]
        frames = None if length == "predicted" else [len(c.features) for c in clips]
        gen = generate_features(bamm, caps, frames, seed=seed + 1000 * r, rounds=rounds, mean=mean, std=std)
        gen_emb = embed_motions(matcher, gen)[perm]
        half = len(clips) // 2
        results["FID"].append(metrics.fid(real_p, gen_emb))
        results["FID real-vs-real (halves)"].append(metrics.fid(real_p[:half], real_p[half:]))
        for k, v in enumerate(metrics.r_precision(text_p, gen_emb)):
            results[f"R-precision top-{k + 1}"].append(v)
        for k, v in enumerate(metrics.r_precision(text_p, real_p)):
            results[f"R-precision top-{k + 1} (real)"].append(v)
        results["MM-Dist"].append(metrics.matching_score(text_p, gen_emb))
        results["MM-Dist (real)"].append(metrics.matching_score(text_p, real_p))
        results["Diversity"].append(metrics.diversity(gen_emb, seed=seed + r))
        results["Diversity (real)"].append(metrics.diversity(real_p, seed=seed + r))
        c_gen, s_gen = classify(classifier, gen)
        results["Action accuracy"].append(metrics.accuracy(c_gen, c_true))
        results["Action accuracy (real)"].append(metrics.accuracy(c_real, c_true))
        results["Style accuracy"].append(metrics.accuracy(s_gen, s_true))
        results["Style accuracy (real)"].append(metrics.accuracy(s_real, s_true))
        if length == "predicted":
            gen_len = np.array([len(g) for g in gen])
            real_len = np.array([len(c.features) for c in clips])
            results["Length MAE (frames)"].append(float(np.abs(gen_len - real_len).mean()))
            for content in sorted({c.content for c in clips}):
                sel = np.array([c.content == content for c in clips])
                results[f"Length MAE {content} (frames)"].append(float(np.abs(gen_len - real_len)[sel].mean()))
        if mm_prompts and mm_samples >= 2:
            sub = rng.choice(len(clips), size=min(mm_prompts, len(clips)), replace=False)
            groups = []
            for i in sub:
                samples = bamm.generate([caps[i]], n=mm_samples, seed=seed + 7 * r + int(i),
                                        frames=None if frames is None else frames[i] // 4 * 4, rounds=rounds)
                groups.append(embed_motions(matcher, [((m.features - mean) / std).astype(np.float32)
                                                      for m in samples]))
            results["Multimodality"].append(metrics.multimodality(np.stack(groups), seed=seed + r))
        log(f"repeat {r + 1}/{repeats}: FID {results['FID'][-1]:.3f}, "
            f"top-1 {results['R-precision top-1'][-1]:.3f}, action acc {results['Action accuracy'][-1]:.3f}")
    return dict(results)


def format_table(results: dict[str, list[float]], *, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'metric':<36} {'mean':>10} {'± 95% CI':>10}")
    for name, values in results.items():
        mean, half = metrics.mean_ci(values)
        lines.append(f"{name:<36} {mean:>10.4f} {half:>10.4f}")
    return "\n".join(lines)
