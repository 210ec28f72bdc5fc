"""Text-to-motion metrics of the HumanML3D protocol (Guo et al. 2022), on embedding arrays.

All functions take numpy arrays of embeddings produced by a text–motion matching evaluator:
``motion`` (N, D) and ``text`` (N, D), row i of one matching row i of the other.

- FID: Fréchet distance between Gaussian fits of real and generated motion embeddings.
- R-precision: in batches of 32 pairs, how often the matching motion is among the k nearest
  (Euclidean) motions of a text.
- MM-Dist: mean Euclidean distance between matching text and motion embeddings.
- Diversity: mean distance between random pairs of motions (300 pairs).
- Multimodality: mean distance between pairs of motions generated for the same text.
"""

from __future__ import annotations

import numpy as np


def _check_2d(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) embeddings."""
    x = _check_2d("embeddings", embeddings)
    if x.shape[0] < 2:
        raise ValueError("need at least 2 embeddings for a covariance")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2)).

    Tr(sqrt(S1 S2)) is the sum of the square roots of the eigenvalues of S1 S2 (real and non-negative for
    covariance matrices; round-off below zero is clipped): the same value as a matrix square root, ten
    times faster and without its failures on near-singular products.
    """
    diff = mu1 - mu2
    eig = np.linalg.eigvals(sigma1 @ sigma2)
    tr_covmean = np.sqrt(np.clip(eig.real, 0.0, None)).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """FID between two sets of motion embeddings."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(generated))


def euclidean_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) Euclidean distances between rows of a (N, D) and b (M, D)."""
    sq = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.maximum(sq, 0.0))


def r_precision(text: np.ndarray, motion: np.ndarray, *, top_k: int = 3, batch_size: int = 32) -> np.ndarray:
    """Top-1…top-k retrieval accuracy of the matching motion, over full batches of ``batch_size`` pairs.

    Returns an array of k accuracies (cumulative: top-2 includes top-1 hits).
    """
    text, motion = _check_2d("text", text), _check_2d("motion", motion)
    if text.shape != motion.shape:
        raise ValueError(f"text {text.shape} and motion {motion.shape} embeddings must match")
    n_batches = text.shape[0] // batch_size
    if n_batches == 0:
        raise ValueError(f"need at least batch_size={batch_size} pairs, got {text.shape[0]}")
    hits = np.zeros(top_k)
    for b in range(n_batches):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        dist = euclidean_matrix(text[sl], motion[sl])
        # rank of the true match (diagonal) among each row, 0 = nearest; ties count against the match
        true = np.diag(dist)[:, None]
        rank = (dist < true).sum(axis=1)
        for k in range(top_k):
            hits[k] += (rank <= k).sum()
    return hits / (n_batches * batch_size)


def matching_score(text: np.ndarray, motion: np.ndarray) -> float:
    """MM-Dist: mean Euclidean distance between matching text and motion embeddings."""
    text, motion = _check_2d("text", text), _check_2d("motion", motion)
    return float(np.linalg.norm(text - motion, axis=1).mean())


def diversity(motion: np.ndarray, *, n_pairs: int = 300, seed: int = 0) -> float:
    """Mean distance between ``n_pairs`` random pairs of motion embeddings (with replacement)."""
    motion = _check_2d("motion", motion)
    if motion.shape[0] < 2:
        raise ValueError("diversity needs at least 2 motions")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, motion.shape[0], n_pairs)
    j = rng.integers(0, motion.shape[0], n_pairs)
    return float(np.linalg.norm(motion[i] - motion[j], axis=1).mean())


def multimodality(groups: np.ndarray, *, n_pairs: int = 10, seed: int = 0) -> float:
    """Mean distance between pairs of motions generated for the same text.

    ``groups``: (n_texts, n_samples, D) embeddings, n_samples ≥ 2.
    """
    g = np.asarray(groups, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] < 2:
        raise ValueError(f"groups must be (n_texts, n_samples >= 2, D), got {g.shape}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, g.shape[1], (g.shape[0], n_pairs))
    j = rng.integers(0, g.shape[1], (g.shape[0], n_pairs))
    rows = np.arange(g.shape[0])[:, None]
    return float(np.linalg.norm(g[rows, i] - g[rows, j], axis=-1).mean())


def mean_ci(values, *, z: float = 1.96) -> tuple[float, float]:
    """Mean and half-width of the normal confidence interval over repeats (0 for one repeat)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values")
    half = z * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0
    return float(v.mean()), float(half)


def accuracy(predicted: np.ndarray, target: np.ndarray) -> float:
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.size == 0:
        raise ValueError(f"predicted {predicted.shape} and target {target.shape} must be equal and non-empty")
    return float((predicted == target).mean())


def confusion_matrix(predicted: np.ndarray, target: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts: row = true class, column = predicted class; targets of -1 (a label the
    classifier does not know) are left out."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.ndim != 1:
        raise ValueError(f"predicted {predicted.shape} and target {target.shape} must be equal 1-d arrays")
    if n_classes < 1 or ((predicted < 0) | (predicted >= n_classes)).any() or (target >= n_classes).any():
        raise ValueError(f"class ids must lie in [0, {n_classes})")
    known = target >= 0
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (target[known], predicted[known]), 1)
    return out
