"""The held-out prompt set (hand-written wording) and the scoring of clips generated from it."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from model_core.data import captions as C
from model_core.eval import heldout as H

PROMPTS = H.load_prompts()
RARE = ("punch", "slash", "kick", "dash", "bow", "walk-back", "call", "respond", "guide", "bye", "byebye",
        "dance-short")
LABELS = {"contents": ["walk", "run", "bow"], "styles": ["normal", "old", "elderly", "happy"]}


def test_the_set_is_large_and_covers_every_action():
    assert len(PROMPTS) >= 300
    assert len({p.prompt.lower() for p in PROMPTS}) == len(PROMPTS)
    counts = Counter(p.action for p in PROMPTS)
    assert set(counts) == set(C.ACTIONS) - {"dance-long"}  # the dance clips are labelled dance-short
    assert min(counts.values()) >= 8


@pytest.mark.parametrize("action", RARE)
def test_rare_actions_have_enough_prompts(action):
    assert sum(p.action == action for p in PROMPTS) >= 8


@pytest.mark.parametrize("style", sorted(C.STYLES))
def test_every_style_has_enough_prompts(style):
    assert sum(p.style is not None and H.same_style(p.style) == style for p in PROMPTS) >= 8


@pytest.mark.parametrize("action", sorted({p.action for p in PROMPTS if "left" in p.action or "right" in p.action}))
def test_sided_prompts_name_their_side_only(action):
    side, other = ("left", "right") if "left" in action else ("right", "left")
    for p in (p for p in PROMPTS if p.action == action):
        text = C.correct_typos(p.prompt.lower())
        assert side in text and other not in text, p.prompt


def test_the_overlap_check_finds_training_wording():
    caption = C.training_caption_pool("wave-left-hand", "elderly")[0]
    found = H.training_wording_overlap(H.HeldOutPrompt(prompt=caption, action="wave-left-hand", style="old"))
    assert found is not None and found[0] == caption
    misspelt = H.HeldOutPrompt(prompt="an old man waves his lfet hand at a friend", action="wave-left-hand",
                               style="elderly")
    assert ("waves", "his", "left", "hand") in H.training_wording_overlap(misspelt)[1]  # "lfet" read as "left"
    fresh = H.HeldOutPrompt(prompt="grandpa flaps a lefty hello", action="wave-left-hand", style="elderly")
    assert H.training_wording_overlap(fresh) is None


@pytest.mark.slow
def test_no_prompt_shares_four_words_in_a_row_with_its_training_captions():
    overlaps = [(p.prompt, H.training_wording_overlap(p)) for p in PROMPTS]
    assert [o for o in overlaps if o[1] is not None] == []


@pytest.mark.parametrize("line,message", [
    ("not json", "not JSON"), ('["a", "walk", null]', "keys prompt, action, style"),
    ('{"prompt": "", "action": "walk", "style": null}', "non-empty"),
    ('{"prompt": "x", "action": "fly", "style": null}', "unknown action"),
    ('{"prompt": "x", "action": "walk", "style": "sleepy"}', "unknown style"),
    ('{"prompt": "x", "action": "walk"}', "keys prompt, action, style")])
def test_bad_prompt_lines_are_clear_errors(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "walk", "action": "walk", "style": None}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=f"p.jsonl line 2: .*{message}"):
        H.load_prompts(path)


def test_missing_or_empty_prompt_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        H.load_prompts(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no prompts"):
        H.load_prompts(tmp_path / "empty.jsonl")


def _clip(content, style, frames=40):
    return SimpleNamespace(content=content, style=style, features=np.zeros((frames, 3)))


def test_real_accuracy_per_label_merges_style_aliases():
    clips = [_clip("walk", "old"), _clip("walk", "elderly"), _clip("run", "normal"), _clip("run", "happy")]
    real = H.real_accuracy(np.array([0, 0, 0, 1]), np.array([2, 1, 0, 3]), clips, LABELS)
    assert real == {"action": {"walk": 1.0, "run": 0.5}, "style": {"elderly": 1.0, "normal": 1.0, "happy": 1.0}}


def test_score_prompts_counts_hits_and_compares_with_real():
    prompts = [H.HeldOutPrompt(prompt=f"p{k}", action=a, style=s) for k, (a, s) in
               enumerate([("walk", "old"), ("walk", None), ("run", "elderly"), ("run", "happy"), ("bow", None)])]
    real = {"action": {"walk": 1.0, "run": 0.5, "bow": 1.0}, "style": {"elderly": 1.0, "happy": 0.5}}
    result = H.score_prompts(prompts, np.array([0, 1, 1, 1, 0]), np.array([1, 0, 2, 0, 0]), LABELS, real,
                             from_train={"action": {"bow"}})
    assert result["per_action"]["walk"]["generated"] == 0.5
    assert result["per_action"]["walk"]["confusions"] == [("run", 1)]
    assert result["per_action"]["bow"] == {"prompts": 1, "generated": 0.0, "real": 1.0, "real_from_train": True,
                                           "confusions": [("walk", 1)]}
    assert result["action"]["generated"] == pytest.approx(3 / 5)
    assert result["action"]["real"] == pytest.approx((1 + 1 + 0.5 + 0.5 + 1) / 5)
    assert result["action"]["ratio"] == pytest.approx(0.6 / 0.8)
    # styles: "old" and "elderly" are one style; prompts without a style are not scored
    assert result["style"]["prompts"] == 3
    assert result["per_style"]["elderly"]["generated"] == 1.0
    assert result["per_style"]["happy"]["generated"] == 0.0
    assert result["style"]["real"] == pytest.approx((1 + 1 + 0.5) / 3)
    report = H.format_report(result)
    assert "ratio 0.75" in report and "1.00*" in report and "training clips" in report


def test_score_prompts_rejects_mismatched_predictions():
    with pytest.raises(ValueError, match="2 prompts but 1"):
        H.score_prompts([H.HeldOutPrompt(prompt="a", action="walk", style=None)] * 2, np.array([0]),
                        np.array([0]), LABELS, {"action": {}, "style": {}})


def test_median_frames_per_action_is_a_multiple_of_four():
    clips = [_clip("walk", "normal", 41), _clip("walk", "normal", 60), _clip("walk", "normal", 99),
             _clip("bow", "normal", 2)]
    assert H.median_frames(clips) == {"walk": 60, "bow": 4}


def test_fill_missing_takes_only_absent_labels():
    merged, filled = H.fill_missing({"action": {"walk": 0.9}, "style": {}},
                                    {"action": {"walk": 1.0, "kick": 1.0}, "style": {"happy": 0.8}})
    assert merged == {"action": {"walk": 0.9, "kick": 1.0}, "style": {"happy": 0.8}}
    assert filled == {"action": {"kick"}, "style": {"happy"}}
