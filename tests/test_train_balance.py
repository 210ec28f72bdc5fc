"""Repeat-factor sampling of the transformer trainers: rare actions are listed more often per epoch."""

import numpy as np
import pytest

from model_core.train.datasets import Segment, repeat_factors
from model_core.train.tokens import balanced


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


@pytest.mark.parametrize("items,expected", [
    # one style holds a walk and a walk backwards: by action the rare one would be listed 10 times as often
    ([("walk", "normal")] * 100 + [("walk", "angry"), ("walk-back", "angry")],
     {("walk", "normal"): 1, ("walk", "angry"): 10, ("walk-back", "angry"): 10}),
    # the pair's copies never lower the action's: kick is one item (20 by action, 10 by pair)
    ([("walk", s) for s in "abcd" for _ in range(100)] + [("kick", "a")],
     {("walk", "a"): 1, ("kick", "a"): 20}),
    # an item without a style label keeps its action's copies
    ([("walk", "a")] * 100 + [("walk-back", None)], {("walk", "a"): 1, ("walk-back", None): 10}),
])
def test_repeat_factors_by_action_and_style(items, expected):
    labels, styles = [a for a, _ in items], [s for _, s in items]
    factors = repeat_factors(labels, cap=32, styles=styles)
    assert {k: factors[items.index(k)] for k in expected} == expected
    assert repeat_factors(labels, cap=32) == repeat_factors(labels, cap=32, styles=[None] * len(items))


def test_balancing_pairs_keeps_a_one_clip_actions_share_of_the_epoch():
    # three styles with a single walk each get 10 copies by pair (the epoch grows from 113 to 140 items);
    # punch (one clip, 10 copies by action and by pair) would drop from 10/113 to 10/140 of the epoch
    items = [("walk", "a")] * 100 + [("walk", s) for s in "bcd"] + [("punch", "a")]
    labels, styles = [a for a, _ in items], [s for _, s in items]
    by_action, by_pair = repeat_factors(labels, cap=32), repeat_factors(labels, cap=32, styles=styles)
    assert (by_action[0], by_action[100], by_action[-1]) == (1, 1, 10)
    assert (by_pair[0], by_pair[100], by_pair[-1]) == (1, 10, int(10 * 140 / 113))
    share_by_action, share_by_pair = by_action[-1] / sum(by_action), by_pair[-1] / sum(by_pair)
    assert share_by_pair >= share_by_action * (1 - 1 / by_pair[-1])


def test_repeat_factors_refuses_styles_of_another_length():
    with pytest.raises(ValueError, match="2 action labels but 1 style labels"):
        repeat_factors(["walk", "run"], styles=["angry"])


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


def test_balanced_by_style_lists_a_styles_walk_as_often_as_its_walk_back():
    segs = [Segment(f"c{i}@0-40", np.zeros((3, 2), np.int64), (0,)) for i in range(102)]
    content = {f"c{i}": "walk" for i in range(101)} | {"c101": "walk-back"}
    style = {f"c{i}": "normal" for i in range(100)} | {"c100": "angry", "c101": "angry"}
    by_action = [s.key for s in balanced(segs, content, cap=32)]
    by_style = [s.key for s in balanced(segs, content, cap=32, style=style)]
    assert (by_action.count("c100@0-40"), by_action.count("c101@0-40")) == (1, 10)
    assert (by_style.count("c100@0-40"), by_style.count("c101@0-40")) == (10, 10)
    assert by_style.count("c0@0-40") == 1


@pytest.mark.parametrize("cap", [0, -3, 2.5])
def test_balance_cap_must_be_a_positive_integer(tmp_path, cap):
    from model_core.train.common import TrainError
    from model_core.train.tokens import train_transformer
    with pytest.raises(TrainError, match="--balance-cap must be an integer >= 1"):
        train_transformer("t2m", tmp_path, tmp_path / "run", vq_run=tmp_path, balance_cap=cap)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def one_rare_clip(tmp_path_factory):
    """A tiny dataset whose first training clip is the only one of its action."""
    import json
    from tests.support.tiny_dataset import write_tiny_dataset
    root = write_tiny_dataset(tmp_path_factory.mktemp("rare") / "data", n_train=16, min_frames=100)
    train = (root / "train.txt").read_text().split()
    meta = [json.loads(line) for line in (root / "meta.jsonl").read_text().splitlines()]
    for m in meta:
        m["content"] = "kick" if m["id"] == train[0] else "walk"
    (root / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return root, train[0]


@pytest.mark.parametrize("balance,copies", [(True, round(np.sqrt(15))), (False, 1)])
def test_tokenizer_crops_repeat_the_clips_of_rare_actions(one_rare_clip, tmp_path, balance, copies):
    import torch
    from model_core.data.humanml3d import load_split
    from model_core.models.vq import VQ_PRESETS
    from model_core.train.vq import vq_stage
    root, rare = one_rare_clip
    stage = vq_stage(root, VQ_PRESETS["tiny"], tmp_path, torch.device("cpu"), seed=0, balance=balance)
    assert len(stage.train_set) == 15 + copies
    n_rare = len(next(c for c in load_split(root, "train") if c.id == rare).features)
    same = [i for i, m in enumerate(stage.train_set.motions) if len(m) == n_rare
            and np.array_equal(m, stage.train_set.motions[0])]
    assert len(same) == copies
    if copies > 1:  # every copy is its own crop of the clip
        starts = {tuple(stage.train_set[i][0][0, :4].tolist()) for i in same}
        assert len(starts) > 1


def test_tokenizer_run_records_balance_and_refuses_a_bad_cap(one_rare_clip, tmp_path, capsys):
    import json
    from model_core.train.cli import main
    root, _ = one_rare_clip
    assert main("train", ["vq", "--data", str(root), "--out", str(tmp_path / "a"), "--preset", "tiny",
                          "--steps", "2", "--no-progress"]) == 0
    assert json.loads((tmp_path / "a" / "run.json").read_text())["balance"] is True
    assert main("train", ["vq", "--data", str(root), "--out", str(tmp_path / "b"), "--preset", "tiny",
                          "--steps", "2", "--no-progress", "--no-balance"]) == 0
    assert json.loads((tmp_path / "b" / "run.json").read_text())["balance"] is False
    assert json.loads((tmp_path / "a" / "run.json").read_text())["balance_style"] is False
    assert main("train", ["vq", "--data", str(root), "--out", str(tmp_path / "d"), "--preset", "tiny",
                          "--steps", "2", "--no-progress", "--balance-style"]) == 0
    assert json.loads((tmp_path / "d" / "run.json").read_text())["balance_style"] is True
    assert main("train", ["vq", "--data", str(root), "--out", str(tmp_path / "c"), "--balance-cap", "0"]) == 2
    assert "--balance-cap must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
