"""Caption generation from Bandai-Namco labels, held-out evaluation phrasings and the HumanML3D text format."""

from __future__ import annotations

import tarfile
from pathlib import PurePosixPath

import pytest

from model_core.data import captions as C
from model_core.data.humanml3d import format_text_line, parse_text_file
from model_core.data.pos_tags import is_known, tag_caption, tokens_string

DATASET_1_CONTENTS = ("walk run dash walk-back walk-left walk-right bow bye guide byebye respond call punch kick "
                      "slash dance-long dance-short").split()
DATASET_1_STYLES = ("normal happy sad angry proud not-confident masculinity feminine childish old tired active "
                    "musical giant chimpira").split()
DATASET_2_CONTENTS = ("walk walk-turn-left walk-turn-right run wave-both-hands wave-left-hand wave-right-hand "
                      "raise-up-both-hands raise-up-left-hand raise-up-right-hand").split()
DATASET_2_STYLES = "active elderly exhausted feminine masculine normal youthful".split()
PAIRS = [(c, s) for c in DATASET_1_CONTENTS for s in DATASET_1_STYLES] + \
        [(c, s) for c in DATASET_2_CONTENTS for s in DATASET_2_STYLES]
ALL_STYLES = sorted(set(DATASET_1_STYLES) | set(DATASET_2_STYLES))


def _archive_labels(path) -> tuple[list[str], list[str]]:
    """Label files from the start of an archive (they come before the clips, so this reads little)."""
    labels = {}
    with tarfile.open(path, "r:xz") as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if name.parent.name == "cfg":
                text = tar.extractfile(member).read().decode()
                labels[name.name] = [line.strip().split("_", 1)[1] for line in text.splitlines() if line.strip()]
            if len(labels) == 2:
                return labels["content_label.txt"], labels["style_label.txt"]
    raise AssertionError(f"no label files in {path}")


@pytest.mark.data
@pytest.mark.parametrize("archive", ["dataset-1", "dataset-2"])
def test_every_archive_label_pair_gets_five_distinct_sentences(bandai_dir, archive):
    contents, styles = _archive_labels(bandai_dir / f"{archive}.tar.xz")
    assert len(contents) >= 10 and len(styles) >= 7
    for content in contents:
        for style in styles:
            chosen = C.training_captions(content, style, f"{archive}_{content}_{style}_001")
            assert len(chosen) >= 5 and len(set(chosen)) == len(chosen)


@pytest.mark.parametrize("content,style", PAIRS)
def test_captions_are_sentences_with_a_subject_and_a_verb(content, style):
    chosen = C.training_captions(content, style, f"clip_{content}_{style}")
    assert len(set(chosen)) == len(chosen) == 6
    for sentence in chosen:
        assert sentence.endswith(".") and "{" not in sentence and "  " not in sentence
        tags = tag_caption(sentence)
        assert len(tags) >= 2
        assert tags[0][1] in ("DET", "PRON", "NOUN"), sentence  # "a person", "someone", "an old man"
        assert any(pos == "VERB" for _, pos in tags), sentence
        assert all(is_known(word) for word in sentence.rstrip(".").replace(",", "").split()), sentence


@pytest.mark.parametrize("style", [s for s in ALL_STYLES if s != "normal"])  # 'normal' reads as neutral text
def test_style_shows_in_every_caption(style):
    """The style is carried by the subject, the adverb or the manner phrase of every caption."""
    words = C.STYLES[C.STYLE_ALIASES.get(style, style)]
    style_phrases = [s for s, _ in words.subjects] + [m.split("{")[0] for m in words.manners] + list(words.adverbs)
    chosen = C.training_captions("walk", style, "some_clip")
    carrying = [s for s in chosen if any(p in s for p in style_phrases)]
    assert len(carrying) == len(chosen)


def test_action_phrasings_carry_no_style_adverb():
    """"steps back slowly" would tell every walk-back clip it is elderly, whatever its style label."""
    style_adverbs = {a for words in C.STYLES.values() for a in words.adverbs}
    for content, phrases in C.ACTIONS.items():
        for phrase in phrases:
            assert not set(phrase.split()) & style_adverbs, (content, phrase)


def test_choice_is_deterministic_per_clip_and_varies_between_clips():
    first = C.training_captions("walk", "old", "dataset-1_walk_old_001")
    assert first == C.training_captions("walk", "old", "dataset-1_walk_old_001")
    others = {tuple(C.training_captions("walk", "old", f"dataset-1_walk_old_{i:03d}")) for i in range(20)}
    assert len(others) >= 15
    assert all(sentence in C.training_caption_pool("walk", "old") for sentence in first)


def test_left_and_right_are_not_mixed_up():
    for sentence in C.training_caption_pool("wave-left-hand", "normal"):
        assert "left" in sentence and "right" not in sentence
    for sentence in C.training_caption_pool("raise-up-right-hand", "elderly"):
        assert "right" in sentence and "left" not in sentence


@pytest.mark.parametrize("content,style", PAIRS)
def test_evaluation_captions_are_never_training_captions(content, style):
    held_out = C.evaluation_captions(content, style)
    assert len(held_out) >= 3 and len(set(held_out)) == len(held_out)
    assert not set(held_out) & set(C.training_caption_pool(content, style))


def test_evaluation_phrasings_are_disjoint_from_training_phrasings():
    every_training = set()
    for content in C.ACTIONS:
        for style in ALL_STYLES:
            every_training.update(C.training_caption_pool(content, style))
    train_subjects = {s for s, _ in C.NEUTRAL} | {s for w in C.STYLES.values() for s, _ in w.subjects}
    eval_subjects = {s for s, _ in C.EVAL_NEUTRAL} | {s for w in C.EVAL_STYLES.values() for s, _ in w.subjects}
    assert not train_subjects & eval_subjects
    train_actions = {a for phrases in C.ACTIONS.values() for a in phrases}
    eval_actions = {a for phrases in C.EVAL_ACTIONS.values() for a in phrases}
    assert not train_actions & eval_actions
    assert set(C.TRAIN_TEMPLATES).isdisjoint(C.EVAL_TEMPLATES)
    for content in C.ACTIONS:
        for style in ALL_STYLES:
            for sentence in C.evaluation_captions(content, style):
                assert sentence not in every_training
                assert " is " in sentence  # the held-out template shape never appears in training
    assert not any(" is " in s for s in every_training)
    eval_manners = {m.format(their="their", themself="themselves") for w in C.EVAL_STYLES.values() for m in w.manners}
    for manner in eval_manners:
        assert not any(manner in s for s in every_training), manner
    for action in eval_actions:
        assert not any(action.format(their="their") in s for s in every_training), action


def _runs(phrase: str, n: int) -> set[tuple[str, ...]]:
    words = phrase.replace(",", "").split()
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def test_no_held_out_action_wording_shares_four_words_in_a_row_with_a_training_phrasing():
    """Held out means more than "not the same string": no run of four words (the whole phrasing when shorter)."""
    fills = ("his", "her", "their")
    train_runs: dict[int, set] = {n: set() for n in range(1, 5)}
    for phrase in (a.format(their=t) for phrases in C.ACTIONS.values() for a in phrases for t in fills):
        for n in train_runs:
            train_runs[n] |= _runs(phrase, n)
    for content, phrases in C.EVAL_ACTIONS.items():
        for phrase in (a.format(their=t) for a in phrases for t in fills):
            n = min(4, len(phrase.split()))
            shared = _runs(phrase, n) & train_runs[n]
            assert not shared, (content, phrase, shared)


@pytest.mark.parametrize("content,style", [("fly", "normal"), ("walk", "sleepy"), ("dataset-1_walk", "old")])
def test_unknown_labels_are_clear_errors(content, style):
    with pytest.raises(C.CaptionError, match="unknown (content|style) label"):
        C.training_captions(content, style, "x")
    with pytest.raises(C.CaptionError):
        C.evaluation_captions(content, style)


def test_tokens_match_the_humanml3d_style():
    assert tokens_string("A man kicks something or someone with his left leg.") == (
        "a/DET man/NOUN kick/VERB something/PRON or/CCONJ someone/PRON with/ADP his/DET left/ADJ leg/NOUN")
    assert tokens_string("someone bends forward in a bow.") == (
        "someone/PRON bend/VERB forward/ADV in/ADP a/DET bow/NOUN")
    assert tokens_string("an old woman is walking slowly") == (
        "an/DET old/ADJ woman/NOUN be/AUX walk/VERB slowly/ADV")


def test_text_line_round_trip(tmp_path):
    path = tmp_path / "x.txt"
    lines = [format_text_line("an old man walks forward slowly."), format_text_line("he waves", 1.0, 2.5)]
    path.write_text("\n".join(lines) + "\n")
    assert lines[0] == ("an old man walks forward slowly.#an/DET old/ADJ man/NOUN walk/VERB forward/ADV "
                        "slowly/ADV#0.0#0.0")
    whole, part = parse_text_file(path, n_frames=100)
    assert (whole.text, whole.start_frame, whole.end_frame) == ("an old man walks forward slowly.", 0, 100)
    assert (part.text, part.start_frame, part.end_frame) == ("he waves", 20, 50)
    with pytest.raises(ValueError, match="#"):
        format_text_line("a # b")
