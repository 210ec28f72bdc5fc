"""Metric functions against hand-computed values."""

import numpy as np
import pytest

from model_core.eval import metrics


@pytest.fixture
def emb():
    rng = np.random.default_rng(0)
    return rng.normal(size=(256, 8))


def test_fid_of_identical_sets_is_zero(emb):
    assert metrics.fid(emb, emb) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_shifted_gaussian_equals_squared_shift(emb):
    shift = np.zeros(8)
    shift[0] = 3.0
    # same covariance, means differ by 3 along one axis: FID = 9
    assert metrics.fid(emb, emb + shift) == pytest.approx(9.0, rel=1e-6)


def test_frechet_distance_closed_form_for_diagonal_covariances():
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    # |mu|^2 = 5; trace term = (1 + 4 - 2*2) + (4 + 1 - 2*2) = 2
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(7.0, rel=1e-9)


def test_diversity_of_identical_samples_is_zero():
    x = np.tile(np.arange(5.0), (40, 1))
    assert metrics.diversity(x) == 0.0


def test_diversity_of_two_points_is_their_distance_times_pair_mismatch():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    assert metrics.diversity(x, n_pairs=300, seed=0) == pytest.approx(5.0 * np.mean(i != j))


def test_r_precision_of_perfect_matcher_is_one(emb):
    top = metrics.r_precision(emb[:64], emb[:64].copy())
    np.testing.assert_allclose(top, [1.0, 1.0, 1.0])


def test_r_precision_of_reversed_matcher_counts_rank():
    # 32 points on a line; text i matches motion i but motion i is shifted to sit nearest text i+1:
    t = np.arange(32.0)[:, None]
    m = t + 0.6
    top1, top2, top3 = metrics.r_precision(t, m)
    # nearest motion to text i is motion i-1 (distance 0.4) except i = 0, so top-1 = 1/32; top-2 = 1
    assert top1 == pytest.approx(1 / 32)
    assert top2 == pytest.approx(1.0)
    assert top3 == pytest.approx(1.0)


def test_r_precision_ignores_incomplete_batch(emb):
    assert metrics.r_precision(emb[:40], emb[:40]).shape == (3,)
    with pytest.raises(ValueError, match="batch_size"):
        metrics.r_precision(emb[:10], emb[:10])


def test_matching_score_is_mean_pair_distance():
    t = np.zeros((2, 2))
    m = np.array([[3.0, 4.0], [0.0, 1.0]])
    assert metrics.matching_score(t, m) == pytest.approx(3.0)


def test_multimodality_zero_for_identical_samples_and_exact_for_two():
    same = np.ones((4, 3, 5))
    assert metrics.multimodality(same) == 0.0
    g = np.stack([np.zeros((2, 2)), np.ones((2, 2))], axis=1)  # (2 texts, 2 samples, 2): pair distance sqrt(2)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, 2, (2, 10)), rng.integers(0, 2, (2, 10))
    assert metrics.multimodality(g, n_pairs=10, seed=0) == pytest.approx(np.sqrt(2) * np.mean(i != j))


def test_mean_ci():
    mean, half = metrics.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(1.96 * 1.0 / np.sqrt(3))
    assert metrics.mean_ci([5.0]) == (5.0, 0.0)


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(3), np.full((4, 2), np.nan)])
def test_bad_embeddings_raise(bad):
    with pytest.raises(ValueError):
        metrics.matching_score(bad, bad)


class _ShiftingTokenizer:
    """A stand-in tokenizer whose round trip adds `shift` to chosen feature channels (hand-computable MPJPE)."""

    def __init__(self, channel: int | None, shift: float):
        from types import SimpleNamespace

        self.config, self.channel, self.shift = SimpleNamespace(frames_per_token=4, contact_root=False), channel, shift

    def eval(self):
        return self

    def encode(self, x):
        return x

    def decode(self, x):
        x = x.clone()
        if self.channel is not None:
            x[..., self.channel] += self.shift
        return x


@pytest.mark.parametrize("channel, shift, global_mm, aligned_mm", [
    (None, 0.0, 0.0, 0.0),  # perfect round trip
    (4, 0.05, 50 / 22, 50 / 22),  # one joint (ric x of joint 1) 5 cm off; the pelvis stays
    (3, 0.05, 50 / 22, 21 * 50 / 22),  # pelvis height 5 cm off: after aligning, the other 21 joints are off
])
def test_tokenizer_mpjpe_global_and_pelvis_aligned(tmp_path, channel, shift, global_mm, aligned_mm):
    from support.tiny_dataset import write_tiny_dataset

    from model_core.eval.reconstruction import tokenizer_mpjpe

    root = write_tiny_dataset(tmp_path / "data", n_train=2, n_val=1, n_test=3)
    mean, std = np.zeros(263, np.float32), np.ones(263, np.float32)
    out = tokenizer_mpjpe(_ShiftingTokenizer(channel, shift), mean, std, root, split="test")
    assert out["clips"] == 3
    assert out["mpjpe_mm"] == pytest.approx(global_mm, abs=1e-3)
    assert out["aligned_mpjpe_mm"] == pytest.approx(aligned_mm, abs=1e-3)
