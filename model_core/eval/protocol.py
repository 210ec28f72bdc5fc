"""The evaluation protocol: real test clips vs motions generated from held-out caption phrasings.

For each repeat, every test clip gets one caption written with phrasings never used in training
(``captions.evaluation_captions``); the model generates a motion for it (at the clip's length, or at
the length it predicts itself), and the evaluator embeds real and generated motions and the caption.

With HumanML3D's official evaluator (``evaluate(..., official=<folder>)``) the official protocol is followed
instead: the dataset's own captions, the official test items and crops, and the official embeddings, so the
numbers compare with published tables.

Both protocols also report the dynamics of the joints (``dynamics.py``: acceleration, high-frequency share,
foot skate, floor penetration) of the real clips, of their tokenizer reconstructions and of the generated
motions, with the ratios to real, as rows ``Dynamics <metric> (<set>)``; ours adds the share of directed
locomotion clips (walk, run, walk-back, ...) whose generated motion travels the way the caption says
("Direction match", next to the real clips' share) and the action classifier's walk / walk-back confusion
on the real clips.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.captions import evaluation_captions, training_caption_pool
from ..data.humanml3d import load_split, load_stats
from ..models.text import load_text_encoder
from ..motion.features import recover_from_ric
from . import dynamics, metrics
from .official import OfficialEvaluator, crop_for_eval, official_samples
from .train_evaluator import clip_labels, load_evaluator, pad_batch

R_PRECISION_BATCH = 32  # pairs per R-precision batch (metrics.r_precision's default)


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
                      mean, std, batch: int = 32, **settings) -> list[np.ndarray]:
    """Generated motions as features normalised with the dataset statistics, in caption order.

    With ``frames`` the clips are grouped by length so each group is one batched call. ``settings``
    (temperature, top_k, res_cfg, ...) go to ``bamm.generate``.
    """
    order = defaultdict(list)
    for i in range(len(captions)):
        order[None if frames is None else int(frames[i]) // 4 * 4].append(i)
    out: list[np.ndarray | None] = [None] * len(captions)
    for length, idx in order.items():
        for b in range(0, len(idx), batch):
            chunk = idx[b:b + batch]
            motions = bamm.generate([captions[i] for i in chunk], frames=length, seed=seed + b, rounds=rounds,
                                    amounts=False, **settings)  # the model against real clips: no retiming
            for i, m in zip(chunk, motions):
                out[i] = ((m.features - mean) / std).astype(np.float32)
    return out


def joints_of(features: list[np.ndarray], mean, std) -> list[np.ndarray]:
    """Joints (T, 22, 3) of normalised features (T, 263)."""
    return [recover_from_ric((f * std + mean).astype(np.float32)) for f in features]


@torch.no_grad()
def reconstruct_joints(bamm, features: list[np.ndarray], mean, std) -> list[np.ndarray]:
    """Joints of the tokenizer's encode -> decode round trip of normalised features, each cut to its length."""
    out = []
    for f in features:
        raw = (f * std + mean).astype(np.float32)
        out.append(bamm.decode(bamm.features_to_codes(raw))[1][: len(raw)])
    return out


DYNAMICS_SETS = ("real", "reconstruction", "generated")


def _dynamics_rows(results: dict, real: dict, reconstruction: dict, generated: dict) -> None:
    """Append ``Dynamics <metric> (<set>)`` for the three sets and their ratios to real."""
    sets = dict(zip(DYNAMICS_SETS, (real, reconstruction, generated)))
    for name, _ in dynamics.METRICS:
        for which, values in sets.items():
            results[f"Dynamics {name} ({which})"].append(values[name])
        for which in DYNAMICS_SETS[1:]:
            results[f"Dynamics {name} ({which}/real)"].append(dynamics.ratio(sets[which][name], real[name]))


WALK_PAIR = ("walk", "walk-back")


def walk_confusion(results: dict, predicted: np.ndarray, truth: np.ndarray, contents: list[str], log) -> None:
    """Share of real walk / walk-back clips the classifier labels walk and walk-back (rows
    ``Classifier <true> -> <predicted> (real)``). Logs the counts and a verdict: it separates them when each
    label's clips are more often given their own label than the other one."""
    if not all(name in contents for name in WALK_PAIR):
        log("walk / walk-back confusion skipped: the classifier does not know both labels")
        return
    ids = [contents.index(name) for name in WALK_PAIR]
    table = metrics.confusion_matrix(predicted, truth, len(contents))
    for true_name, t in zip(WALK_PAIR, ids):
        if not table[t].any():
            log(f"walk / walk-back confusion skipped: no real {true_name} clip in the split")
            return
    own, crossed = [], []
    for true_name, t, other in zip(WALK_PAIR, ids, ids[::-1]):
        n = int(table[t].sum())
        for pred_name, p in zip(WALK_PAIR, ids):
            results[f"Classifier {true_name} -> {pred_name} (real)"].append(table[t, p] / n)
        own.append(table[t, t]), crossed.append(table[t, other])
        others = ", ".join(f"{table[t, k]} -> {contents[k]}" for k in np.flatnonzero(table[t]) if k not in ids)
        log(f"classifier on {n} real {true_name} clips: {table[t, ids[0]]} -> walk, {table[t, ids[1]]} -> walk-back"
            + (f", {others}" if others else ""))
    if all(o > c for o, c in zip(own, crossed)):
        log("the classifier separates walk from walk-back on real clips")
    elif not any(crossed):
        log("WARNING: the classifier never swaps walk and walk-back on real clips, but gives some of them "
            "another label (counts above)")
    else:
        log("WARNING: the classifier does not separate walk from walk-back on real clips")


PHRASINGS = ("held-out", "training")


def pick_captions(clips: list[TestClip], repeat: int, phrasings: str = "held-out") -> list[str]:
    """One caption per clip: a held-out phrasing (the protocol), or with ``phrasings="training"`` a sentence
    of the training captions' pool (a diagnostic: unseen clips, seen wording)."""
    if phrasings not in PHRASINGS:
        raise ValueError(f"phrasings must be one of {PHRASINGS}, got {phrasings!r}")
    caps = []
    for k, c in enumerate(clips):
        if phrasings == "held-out":
            options = evaluation_captions(c.content, c.style)
        else:
            options = training_caption_pool(c.content, c.style)
        caps.append(options[(k + repeat) % len(options)])
    return caps


def _matching_metrics(results: dict, text: np.ndarray, real: np.ndarray, gen: np.ndarray, *, seed: int) -> None:
    """Append FID, R-precision, MM-Dist and diversity (generated and real) for row-aligned embeddings."""
    half = len(real) // 2
    results["FID"].append(metrics.fid(real, gen))
    results["FID real-vs-real (halves)"].append(metrics.fid(real[:half], real[half:]))
    for k, v in enumerate(metrics.r_precision(text, gen)):
        results[f"R-precision top-{k + 1}"].append(v)
    for k, v in enumerate(metrics.r_precision(text, real)):
        results[f"R-precision top-{k + 1} (real)"].append(v)
    results["MM-Dist"].append(metrics.matching_score(text, gen))
    results["MM-Dist (real)"].append(metrics.matching_score(text, real))
    results["Diversity"].append(metrics.diversity(gen, seed=seed))
    results["Diversity (real)"].append(metrics.diversity(real, seed=seed))


def _accuracies(results: dict, classifier, gen: list[np.ndarray], real_pred, c_true, s_true) -> None:
    c_gen, s_gen = classify(classifier, gen)
    results["Action accuracy"].append(metrics.accuracy(c_gen, c_true))
    results["Action accuracy (real)"].append(metrics.accuracy(real_pred[0], c_true))
    results["Style accuracy"].append(metrics.accuracy(s_gen, s_true))
    results["Style accuracy (real)"].append(metrics.accuracy(real_pred[1], s_true))


def _multimodality(bamm, captions: list[str], frames, embed, *, n_prompts: int, n_samples: int, rounds: int,
                   gen_seed: int, seed: int, rng, decoding: dict | None = None) -> float:
    """Mean distance between motions generated for the same caption; ``embed``: list of Motion -> (n, D)."""
    groups = []
    for i in rng.choice(len(captions), size=min(n_prompts, len(captions)), replace=False):
        samples = bamm.generate([captions[i]], n=n_samples, seed=gen_seed + int(i),
                                frames=None if frames is None else frames[i] // 4 * 4, rounds=rounds,
                                amounts=False, **(decoding or {}))
        groups.append(embed(samples))
    return metrics.multimodality(np.stack(groups), seed=seed)


def evaluate(bamm, data_root, evaluator_dir=None, *, official=None, split: str = "test", repeats: int = 3,
             rounds: int = 2, length: str = "gt", seed: int = 0, mm_prompts: int = 32, mm_samples: int = 10,
             phrasings: str = "held-out", text_encoder=None, decoding: dict | None = None,
             log=print) -> dict[str, list[float]]:
    """Per-repeat values of every metric (real references included). ``length``: "gt" or "predicted";
    ``phrasings``: captions of held-out wording (the protocol) or of the training wording (``pick_captions``);
    ``decoding``: settings for ``bamm.generate`` other than rounds (e.g. ``{"cfg": (2.0, 1.0), "res_cfg": 4.0}``;
    None: the generator's defaults).

    ``official``: a folder with HumanML3D's official evaluator (layout in ``official.py``) or a loaded
    ``OfficialEvaluator``; the run then follows the official protocol (``evaluate_official``) and
    ``evaluator_dir`` (optional) only supplies the action/style classifier.
    """
    if length not in ("gt", "predicted"):
        raise ValueError(f"length must be 'gt' or 'predicted', got {length!r}")
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if phrasings not in PHRASINGS:
        raise ValueError(f"phrasings must be one of {PHRASINGS}, got {phrasings!r}")
    if official is not None:
        if phrasings != "held-out":
            raise ValueError("the official protocol uses the dataset's own captions; phrasings does not apply")
        if decoding:
            raise ValueError("the official protocol decodes with the published settings; decoding does not apply")
        return evaluate_official(bamm, data_root, official, evaluator_dir, split=split, repeats=repeats,
                                 rounds=rounds, length=length, seed=seed, mm_prompts=mm_prompts,
                                 mm_samples=mm_samples, log=log)
    if evaluator_dir is None:
        raise ValueError("evaluate needs evaluator_dir (our trained evaluator) or official (the official one)")
    decoding = decoding or {}
    matcher, classifier, labels = load_evaluator(evaluator_dir)
    mean, std = load_stats(data_root)
    clips = load_test_clips(data_root, split, mean, std)
    # captions are embedded for the matcher with the encoder it was trained with, whatever the model reads
    text_encoder = text_encoder or load_text_encoder(labels.get("text_encoder", "minilm"))
    real = [c.features for c in clips]
    real_emb = embed_motions(matcher, real)
    c_true = np.array([labels["contents"].index(c.content) if c.content in labels["contents"] else -1 for c in clips])
    s_true = np.array([labels["styles"].index(c.style) if c.style in labels["styles"] else -1 for c in clips])
    real_pred = classify(classifier, real)
    results: dict[str, list[float]] = defaultdict(list)
    contents = [c.content for c in clips]
    real_joints = joints_of(real, mean, std)
    dyn_real = dynamics.set_dynamics(real_joints)
    dyn_rec = dynamics.set_dynamics(reconstruct_joints(bamm, real, mean, std))
    real_share, n_directed = dynamics.direction_matches(real_joints, contents)
    log(f"direction check on {n_directed} directed locomotion clips: {real_share:.3f} of the real ones travel "
        "the way their label says" if n_directed else "direction check skipped: no directed locomotion clip")
    rng = np.random.default_rng(seed)
    for r in range(repeats):
        walk_confusion(results, real_pred[0], c_true, labels["contents"], log if r == 0 else (lambda m: None))
        caps = pick_captions(clips, r, phrasings)
        text_emb = embed_texts(matcher, text_encoder, caps)
        perm = rng.permutation(len(clips))
        frames = None if length == "predicted" else [len(c.features) for c in clips]
        gen = generate_features(bamm, caps, frames, seed=seed + 1000 * r, rounds=rounds, mean=mean, std=std,
                                **decoding)
        _matching_metrics(results, text_emb[perm], real_emb[perm], embed_motions(matcher, gen)[perm], seed=seed + r)
        _accuracies(results, classifier, gen, real_pred, c_true, s_true)
        gen_joints = joints_of(gen, mean, std)
        _dynamics_rows(results, dyn_real, dyn_rec, dynamics.set_dynamics(gen_joints))
        if n_directed:
            results["Direction match"].append(dynamics.direction_matches(gen_joints, contents)[0])
            results["Direction match (real)"].append(real_share)
        if length == "predicted":
            gen_len = np.array([len(g) for g in gen])
            real_len = np.array([len(c.features) for c in clips])
            results["Length MAE (frames)"].append(float(np.abs(gen_len - real_len).mean()))
            for content in sorted({c.content for c in clips}):
                sel = np.array([c.content == content for c in clips])
                results[f"Length MAE {content} (frames)"].append(float(np.abs(gen_len - real_len)[sel].mean()))
        if mm_prompts and mm_samples >= 2:
            def embed(ms):
                return embed_motions(matcher, [((m.features - mean) / std).astype(np.float32) for m in ms])
            results["Multimodality"].append(_multimodality(
                bamm, caps, frames, embed, n_prompts=mm_prompts, n_samples=mm_samples, rounds=rounds,
                gen_seed=seed + 7 * r, seed=seed + r, rng=rng, decoding=decoding))
        log(f"repeat {r + 1}/{repeats}: FID {results['FID'][-1]:.3f}, "
            f"top-1 {results['R-precision top-1'][-1]:.3f}, action acc {results['Action accuracy'][-1]:.3f}")
    return dict(results)


def _optional_classifier(evaluator_dir, samples, log):
    """(classifier, (content ids, style ids)) when our evaluator folder exists and every clip is labelled."""
    if evaluator_dir is None or not (Path(evaluator_dir) / "classifier.json").is_file():
        log("action/style accuracy skipped: no evaluator folder with a classifier")
        return None, None
    if not all("content" in s.meta and "style" in s.meta for s in samples):
        log("action/style accuracy skipped: the dataset has no content/style labels")
        return None, None
    _, classifier, labels = load_evaluator(evaluator_dir)

    def ids(names, key):
        return np.array([names.index(s.meta[key]) if s.meta[key] in names else -1 for s in samples])
    return classifier, (ids(labels["contents"], "content"), ids(labels["styles"], "style"))


def evaluate_official(bamm, data_root, official, evaluator_dir=None, *, split: str = "test", repeats: int = 3,
                      rounds: int = 2, length: str = "gt", seed: int = 0, mm_prompts: int = 32,
                      mm_samples: int = 10, log=print) -> dict[str, list[float]]:
    """The official HumanML3D protocol with the official evaluator.

    Test items are built like the official loader (``official.official_samples``: clips of 40–199 frames,
    captioned sub-ranges as items of their own). Each repeat draws one of the item's own captions, a random
    window of a multiple of 4 frames of the real motion (``official.crop_for_eval``) and generates at that
    length; items are shuffled and cut to full batches of 32 (R-precision batches), like the official
    loader's ``drop_last``. Published tables use 20 repeats and multimodality over 100 captions × 30 samples.
    """
    judge = official if isinstance(official, OfficialEvaluator) else OfficialEvaluator.load(official)
    mean, std = load_stats(data_root)
    if mean.shape != judge.mean.shape:
        raise ValueError(f"{data_root} has {mean.shape[0]}-d features; the official evaluator expects "
                         f"{judge.dim_pose}-d")
    samples = official_samples(load_split(data_root, split, skip_missing=True))
    if len(samples) < R_PRECISION_BATCH:
        raise ValueError(f"the {split} split of {data_root} has {len(samples)} captioned motions of 40-199 "
                         f"frames; R-precision needs at least {R_PRECISION_BATCH}")
    classifier, truth = _optional_classifier(evaluator_dir, samples, log)
    results: dict[str, list[float]] = defaultdict(list)
    rng = np.random.default_rng(seed)
    for r in range(repeats):
        keep = rng.permutation(len(samples))[: len(samples) // R_PRECISION_BATCH * R_PRECISION_BATCH]
        caps = [samples[i].captions[rng.integers(len(samples[i].captions))] for i in keep]
        real = [crop_for_eval(samples[i].features, rng) for i in keep]
        frames = None if length == "predicted" else [len(m) for m in real]
        texts = [c.text for c in caps]
        gen = generate_features(bamm, texts, frames, seed=seed + 1000 * r, rounds=rounds, mean=mean, std=std)
        real_emb = judge.embed_motion(real)
        gen_emb = judge.embed_motion([g * std + mean for g in gen])
        real_norm = [((m - mean) / std).astype(np.float32) for m in real]
        _dynamics_rows(results, dynamics.set_dynamics(joints_of(real_norm, mean, std)),
                       dynamics.set_dynamics(reconstruct_joints(bamm, real_norm, mean, std)),
                       dynamics.set_dynamics(joints_of(gen, mean, std)))
        _matching_metrics(results, judge.embed_text(caps), real_emb, gen_emb, seed=seed + r)
        if classifier is not None:
            c_true, s_true = truth[0][keep], truth[1][keep]
            real_pred = classify(classifier, real_norm)
            _accuracies(results, classifier, gen, real_pred, c_true, s_true)
        if length == "predicted":
            gen_len, real_len = np.array([len(g) for g in gen]), np.array([len(m) for m in real])
            results["Length MAE (frames)"].append(float(np.abs(gen_len - real_len).mean()))
        if mm_prompts and mm_samples >= 2:
            results["Multimodality"].append(_multimodality(
                bamm, texts, frames, lambda ms: judge.embed_motion([m.features for m in ms]), n_prompts=mm_prompts,
                n_samples=mm_samples, rounds=rounds, gen_seed=seed + 7 * r, seed=seed + r, rng=rng))
        log(f"repeat {r + 1}/{repeats} (official evaluator): FID {results['FID'][-1]:.3f}, "
            f"top-1 {results['R-precision top-1'][-1]:.3f}, MM-Dist {results['MM-Dist'][-1]:.3f}")
    return dict(results)


def format_table(results: dict[str, list[float]], *, title: str = "") -> str:
    """Mean and 95% CI over repeats of every metric; the ``Dynamics`` rows follow as one table (means over
    repeats of real / reconstruction / generated, ratios to real)."""
    rows = {k: v for k, v in results.items() if not k.startswith("Dynamics ")}
    width = max([36] + [len(k) for k in rows])
    lines = [title] if title else []
    lines.append(f"{'metric':<{width}} {'mean':>10} {'± 95% CI':>10}")
    for name, values in rows.items():
        mean, half = metrics.mean_ci(values)
        lines.append(f"{name:<{width}} {mean:>10.4f} {half:>10.4f}")
    sets = {which: {name: float(np.mean(results[f"Dynamics {name} ({which})"])) for name, _ in dynamics.METRICS}
            for which in DYNAMICS_SETS if f"Dynamics acceleration ({which})" in results}
    if sets:
        lines += ["", dynamics.format_dynamics_table(sets, title="dynamics (median over clips; ratios to real)")]
    return "\n".join(lines)
