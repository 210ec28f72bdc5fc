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


SOME_PAIRS = [(c, ALL_STYLES[k % len(ALL_STYLES)]) for k, c in enumerate(sorted(C.ACTIONS))]  # every content


def _phrase_texts() -> list[str]:
    """Every action phrasing in all its forms and every subject, adverb, manner and context phrase."""
    texts = []
    for phrases in C.ACTION_BASES.values():
        texts += [C._fill(C.inflect(p, form), t) for p in phrases for form in ("base", "third", "ing")
                  for t in ("his", "the", "your")]
    for pairs in C.FRONTED.values():
        texts += [C._fill(front, "their") + " " + C.inflect(p, "third") for front, p in pairs]
    texts += [C._noun_phrase(p, "") for phrases in C.NOMINALS.values() for p in phrases]
    for words in C.STYLES.values():
        texts += [s for s, _ in words.subjects] + list(words.adverbs) + list(words.adjectives)
        texts += [C._fill(m, "their") for m in words.manners]
    return texts + list(C.CONTEXTS) + [s for s, _ in C.NEUTRAL]


@pytest.mark.parametrize("content,style", PAIRS)
def test_captions_are_sentences_with_a_verb_or_a_noun_phrase_of_the_action(content, style):
    chosen = C.training_captions(content, style, f"clip_{content}_{style}", n=12)
    assert len(set(chosen)) == len(chosen) == 12
    nouns = [C._noun_phrase(p, "").split(" ", 1)[1] for p in C.NOMINALS[content]]  # "high kick" of "{a} high kick"
    for sentence in chosen:
        assert sentence.endswith(".") and "{" not in sentence and "  " not in sentence and " ," not in sentence
        tags = tag_caption(sentence)
        assert len(tags) >= 2
        assert any(pos == "VERB" for _, pos in tags) or any(n in C.correct_typos(sentence) for n in nouns), sentence
        assert all(is_known(word) for word in C.words_of(sentence)), sentence


def test_every_lexicon_word_is_tagged_from_the_lexicon_not_guessed():
    unknown = {w for text in _phrase_texts() for w in C.words_of(text) if not is_known(w)}
    assert not unknown


@pytest.mark.parametrize("content", sorted(C.ACTIONS))
def test_every_action_has_many_phrasings(content):
    assert len(set(C.ACTIONS[content])) >= 14
    assert len(C.training_caption_pool(content, "normal")) >= 1000


@pytest.mark.parametrize("style", sorted(C.STYLES))
def test_every_style_has_many_phrasings(style):
    words = C.STYLES[style]
    assert len(set(words.subjects)) >= 6
    if style != "normal":  # 'normal' may also say nothing about the style ("" adverb / manner)
        assert len(set(words.adverbs)) >= 2 and "" not in words.adverbs
        assert len(set(words.manners)) >= 4 and "" not in words.manners


@pytest.mark.parametrize("phrase,form,expected", [
    ("wave", "third", "waves"), ("run forward", "ing", "running forward"),
    ("go for a walk", "third", "goes for a walk"),
    ("dance", "ing", "dancing"), ("hurry forward", "third", "hurries forward"), ("punch", "third", "punches"),
    ("raise {their} hand and wave+", "third", "raises {their} hand and waves"),
    ("walk, turn+ left and keep+ walking", "ing", "walking, turning left and keeping walking"),
    ("raise {their} hand and wave+", "base", "raise {their} hand and wave"), ("see", "ing", "seeing")])
def test_inflect(phrase, form, expected):
    assert C.inflect(phrase, form) == expected


def test_inflect_rejects_an_unknown_form():
    with pytest.raises(ValueError, match="form must be one of"):
        C.inflect("walk", "past")


@pytest.mark.parametrize("style", [s for s in ALL_STYLES if s != "normal"])  # 'normal' reads as neutral text
def test_style_shows_in_every_caption(style):
    """The style is carried by the subject, the adverb or the manner phrase of every caption."""
    words = C.STYLES[C.STYLE_ALIASES.get(style, style)]
    style_phrases = [s for s, _ in words.subjects] + list(words.adverbs) + [f" {a} " for a in words.adjectives]
    style_phrases += [C._fill(m, t) for m in words.manners for t in ("his", "her", "their", "the", "your")]
    for k in range(20):
        for content in ("walk", "wave-left-hand"):
            for sentence in map(C.correct_typos, C.training_captions(content, style, f"clip_{k}")):
                assert any(p in f" {sentence}" for p in style_phrases), sentence


def test_action_phrasings_carry_no_style_adverb():
    """"steps back slowly" would tell every walk-back clip it is elderly, whatever its style label."""
    style_adverbs = {a for words in C.STYLES.values() for a in words.adverbs}
    style_adverbs |= {a for words in C.STYLES.values() for a in words.adjectives}
    for content, phrases in C.ACTION_BASES.items():
        fronted = [w for pair in C.FRONTED.get(content, ()) for w in pair]
        for phrase in list(phrases) + fronted + list(C.NOMINALS[content]):
            assert not set(C.words_of(phrase)) & style_adverbs, (content, phrase)


def test_choice_is_deterministic_per_clip_and_varies_between_clips():
    first = C.training_captions("walk", "old", "dataset-1_walk_old_001")
    assert first == C.training_captions("walk", "old", "dataset-1_walk_old_001")
    others = {tuple(C.training_captions("walk", "old", f"dataset-1_walk_old_{i:03d}")) for i in range(20)}
    assert len(others) >= 19
    pool = set(C.training_caption_pool("walk", "old"))
    assert all(C.correct_typos(sentence) in pool for sentence in first)


def test_sentence_shapes_vary():
    """Over many clips: subject-less imperatives and gerunds, fronted phrases and longer sentences all occur."""
    chosen = [s for k in range(60) for s in C.training_captions("wave-right-hand", "happy", f"c{k}")]
    assert any(s.startswith("wave ") for s in chosen)  # imperative
    assert any(s.startswith("waving ") for s in chosen)  # bare gerund
    assert any(s.startswith(("with ", "using ")) and ", " in s for s in chosen)  # fronted
    assert any(len(s.split()) >= 12 for s in chosen) and any(len(s.split()) <= 6 for s in chosen)
    assert len({s.split()[0] for s in chosen}) >= 15


@pytest.mark.parametrize("phrase,adjective,expected", [
    ("{a} kick", "", "a kick"), ("{a} kick", "angry", "an angry kick"), ("{a} elegant bow", "", "an elegant bow"),
    ("{a} one-handed goodbye wave", "", "a one-handed goodbye wave"),
    ("{a} wave of {their} right hand", "elderly", "an elderly wave of the right hand")])
def test_noun_phrases_get_their_article_and_adjective(phrase, adjective, expected):
    assert C._noun_phrase(phrase, adjective) == expected


@pytest.mark.parametrize("content", sorted(C.ACTIONS))
def test_noun_phrase_captions_occur_and_carry_the_style(content):
    """"an angry high kick." and "a high kick by a furious man.": the words of typed prompts that have no verb."""
    nouns = [C._noun_phrase(p, "").split(" ", 1)[1] for p in C.NOMINALS[content]]
    chosen = [s for k in range(20) for s in C.training_captions(content, "angry", f"c{k}")]
    nominal = [s for s in chosen if not any(pos == "VERB" for _, pos in tag_caption(s))
               or any(s.startswith(("a ", "an ")) and n in s for n in nouns)]
    assert len(nominal) >= len(chosen) // 10
    assert any(f"{a} " in s for s in nominal for a in C.STYLES["angry"].adjectives)
    assert any(" by " in s for s in nominal)


def test_a_small_share_of_captions_carries_a_misspelling():
    chosen = [s for k in range(200) for s in C.training_captions("walk", "happy", f"c{k}")]
    share = sum(C.correct_typos(s) != s for s in chosen) / len(chosen)
    assert 0.04 <= share <= 0.16
    fixes = {typo: word for word, typos in C.TYPOS.items() for typo in typos}
    assert not set(fixes) & set(C.TYPOS)  # a misspelling is never itself a lexicon word
    for typo, word in fixes.items():
        assert tag_caption(typo) == tag_caption(word)


@pytest.mark.parametrize("content", sorted(C.ACTIONS))
def test_left_and_right_are_never_mixed_up(content):
    side = {"left", "right"} & set(content.split("-"))
    side |= {"right"} if content in ("bye", "guide") else {"left"} if content == "respond" else set()
    for text in list(C.ACTION_BASES[content]) + [" ".join(p) for p in C.FRONTED.get(content, ())] + list(
            C.NOMINALS[content]):
        words = set(C.words_of(text.replace("-handed", " handed")))
        assert {"left", "right"} & words <= side, (content, text)
    for style in ("normal", "elderly", "happy"):
        for k in range(20):
            for sentence in map(C.correct_typos, C.training_captions(content, style, f"c{k}")):
                assert {"left", "right"} & set(C.words_of(sentence.replace("-", " "))) <= side, sentence
    if content.endswith(("left-hand", "right-hand")):
        pool = C.training_caption_pool(content, "normal")
        assert all(side <= set(C.words_of(s.replace("-", " "))) for s in pool)


@pytest.mark.parametrize("content,style", SOME_PAIRS)
def test_evaluation_captions_are_never_training_captions(content, style):
    held_out = C.evaluation_captions(content, style)
    assert len(held_out) >= 3 and len(set(held_out)) == len(held_out)
    pool = C.training_caption_pool(content, style)
    assert not set(held_out) & set(pool)
    assert all(C.shares_held_out_wording(s) for s in held_out)  # the check sees the held-out wording
    assert not any(C.shares_held_out_wording(s) or " is " in s for s in pool)


def test_evaluation_phrasings_are_disjoint_from_training_phrasings():
    train_subjects = {s for s, _ in C.NEUTRAL} | {s for w in C.STYLES.values() for s, _ in w.subjects}
    eval_subjects = {s for s, _ in C.EVAL_NEUTRAL} | {s for w in C.EVAL_STYLES.values() for s, _ in w.subjects}
    assert not train_subjects & eval_subjects
    train_actions = {a for phrases in C.ACTIONS.values() for a in phrases}
    eval_actions = {a for phrases in C.EVAL_ACTIONS.values() for a in phrases}
    assert not train_actions & eval_actions
    assert set(C.TRAIN_TEMPLATES).isdisjoint(C.EVAL_TEMPLATES)
    assert all(" is " in t for t in C.EVAL_TEMPLATES) and not any(" is " in t for t in C.TRAIN_TEMPLATES)
    assert not any(" is " in f" {text} " for text in _phrase_texts())  # so no training sentence has " is "


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


@pytest.mark.parametrize("caption, mirrored", [
    ("a man waves his left hand.", "a man waves his right hand."),
    ("Right hand up, she says bye.", "Left hand up, she says bye."),
    ("walk forward while drifting leftward", "walk forward while drifting rightward"),
    ("a right-handed goodbye, then a left turn", "a left-handed goodbye, then a right turn"),
    ("raise the rigth arm, then the lfet one", "raise the left arm, then the right one"),
    ("a bright, upright person bows.", "a bright, upright person bows."),
])
def test_mirror_caption_swaps_the_sides(caption, mirrored):
    assert C.mirror_caption(caption) == mirrored


def test_mirrored_action_swaps_the_labels_that_have_a_side():
    m = C.mirrored_action
    assert m("walk-left") == "walk-right" and m("wave-right-hand") == "wave-left-hand"
    assert m("walk-turn-left") == "walk-turn-right" and m("raise-up-right-hand") == "raise-up-left-hand"
    assert m("walk") == "walk" and m("wave-both-hands") == "wave-both-hands"
    assert m("bye") is None and m("kick") is None  # one-sided: no left-handed goodbye, one kicking leg
    assert all(m(m(a)) == a for a in C.ACTIONS if m(a) is not None)
    with pytest.raises(C.CaptionError, match="unknown content label"):
        m("moonwalk")
