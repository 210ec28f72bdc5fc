"""Repeat-factor sampling of the transformer trainers: rare actions are listed more often per epoch."""

import numpy as np
import pytest

from model_core.train.datasets import Segment
from model_core.train.tokens import balanced, repeat_factors


@pytest.mark.parametrize("counts,expected", [
    ({"walk": 300, "walk-back": 12}, {"walk": 1, "walk-back": 5}),  # round(sqrt(25))
    ({"walk": 300, "punch": 1}, {"walk": 1, "punch": 8}),  # capped
    ({"a": 10, "b": 10}, {"a": 1, "b": 1}),
    ({"a": 100, "b": 40}, {"a": 1, "b": 2}),  # round(1.58)
])
def test_repeat_factors(counts, expected):
    labels = [k for k, n in counts.items() for _ in range(n)]
    factors = repeat_factors(labels)
    assert {k: factors[labels.index(k)] for k in counts} == expected


def test_unlabelled_items_count_once():
    assert repeat_factors([None, None]) == [1, 1]
    assert repeat_factors(["a", None, "a"]) == [1, 1, 1]


def test_balanced_repeats_segments_of_rare_clips_by_clip_id():
    segs = [Segment(f"c{i}", np.zeros((3, 2), np.int64), (0,)) for i in range(5)] + \
        [Segment("r0@0-40", np.zeros((3, 2), np.int64), (1,))]
    content = {**{f"c{i}": "common" for i in range(5)}, "r0": "rare"}
    out = balanced(segs, content)
    assert [s.key for s in out].count("r0@0-40") == round(np.sqrt(5)) and len(out) == 5 + round(np.sqrt(5))


@pytest.mark.parametrize("cap,expected", [(8, 8), (32, 17), (1, 1)])  # round(sqrt(300)) = 17
def test_balance_cap_bounds_the_copies_of_a_single_clip_action(cap, expected):
    segs = [Segment(f"c{i}", np.zeros((3, 2), np.int64), (0,)) for i in range(300)] + \
        [Segment("p0@0-40", np.zeros((3, 2), np.int64), (1,))]
    content = {**{f"c{i}": "walk" for i in range(300)}, "p0": "punch"}
    assert [s.key for s in balanced(segs, content, cap=cap)].count("p0@0-40") == expected


@pytest.mark.parametrize("cap", [0, -3, 2.5])
def test_balance_cap_must_be_a_positive_integer(tmp_path, cap):
    from model_core.train.common import TrainError
    from model_core.train.tokens import train_transformer
    with pytest.raises(TrainError, match="--balance-cap must be an integer >= 1"):
        train_transformer("t2m", tmp_path, tmp_path / "run", vq_run=tmp_path, balance_cap=cap)
    assert not (tmp_path / "run").exists()
