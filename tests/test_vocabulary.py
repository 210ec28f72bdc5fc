"""The vocabulary check (`model_core/vocabulary/`): what a prompt asks for outside a model's training captions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from model_core import vocabulary as V
from model_core.data import captions

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
OOV_PROMPTS = ROOT / "bench" / "prompts_oov.jsonl"
DEV_PROMPTS = ROOT / "bench" / "prompts_vocab_dev.jsonl"
HELDOUT = ROOT / "model_core" / "eval" / "prompts_heldout.jsonl"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def vocab() -> V.Vocabulary:
    return V.for_folder(WEIGHTS)


# ------------------------------------------------------------------------------------------- the prompts
@pytest.mark.parametrize("prompt, unrecognised, closest", [
    ("a person sits down on a chair", ["sits", "chair"], ["bow", "walk"]),
    ("a person jumps over a box", ["jumps"], ["run", "kick", "dash"]),
    ("a person does a cartwheel", ["cartwheel"], ["kick", "dance-long"]),
])
def test_the_reported_prompts_are_flagged_with_the_closest_known_actions(vocab, prompt, unrecognised, closest):
    found = vocab.check(prompt)
    assert not found.in_vocabulary
    assert found.unrecognised == unrecognised
    assert found.closest == closest


def test_the_line_names_the_words_the_closest_actions_and_the_published_model(vocab):
    assert vocab.check("a person sits down on a chair").line() == (
        "not in this model's vocabulary: 'sits', 'chair'; closest: 'bow', 'walk'; "
        "for everyday motions import the published HumanML3D model, see README")
    assert vocab.check("a man walks forward").line() == ""


@pytest.mark.parametrize("prompt", [
    "a person walks forward and waves with the right hand",
    "an elderly person walks forward and waves with the right hand",
    "npc strolling down the street toward the camera, loopable walk cycle",
    "a tired man shuffles along",
    "throws a few punches",
    "throws both arms up in the air",
    "walks as if about to collapse",
    "a man walks to the door",
    "graceful ballet-like kick",
    "martial arts front kick",
    "karate kick",
    "waveing goodby with rigth hand",
    "charcter wlaking foward",
    "1. walk 2. bow",
    "",
    "   ",
    "走る人",
])
def test_prompts_the_model_knows_are_not_flagged(vocab, prompt):
    found = vocab.check(prompt)
    assert found.in_vocabulary, found.unrecognised
    assert found.line() == ""


@pytest.mark.parametrize("prompt, word", [
    ("sits", "sits"), ("sitting on the floor", "sitting"), ("she sat", "sat"), ("sittin on teh floor", "sittin"),
    ("sittting down", "sittting"), ("jmups", "jmups"), ("kneeel", "kneeel"), ("a man thorws a rock", "thorws"),
    ("crawlng", "crawlng"), ("cartweels", "cartweels"), ("lyin on the ground", "lyin"), ("swims", "swims"),
    ("A PERSON SITS", "sits"), ("a person lies down", "lies down"), ("gets up from the floor", "gets up"),
    ("throws a ball", "throws"), ("a man collapses", "collapses"), ("a zombie-like walk", "zombie-like"),
    ("drunk walk", "drunk"), ("walks in a circle", "circle"), ("walks up the stairs", "stairs"),
    ("holds a cup", "cup"), ("raises his knee", None), ("t-pose", "t-pose"), ("does push-ups", "push-ups"),
    ("salsa dancing", "salsa"), ("tiptoeing quietly", "tiptoeing"),
])
def test_words_outside_the_vocabulary_are_named_as_typed(vocab, prompt, word):
    found = vocab.check(prompt)
    if word is None:  # a body part beside a known motion only says how it is done
        assert found.in_vocabulary
        return
    assert not found.in_vocabulary and word in found.unrecognised, found.unrecognised


@pytest.mark.parametrize("word, base", [
    ("sits", "sit"), ("sitting", "sit"), ("sat", "sit"), ("walking", "walk"), ("strides", "stride"),
    ("shoulders", "shoulder"), ("hoping", "hoping"), ("hopping", "hop"), ("dancers", "dance"), ("cries", "cry"),
    ("boxes", "box"), ("happily", "happy"), ("jumpin", "jump"), ("knelt", "kneel"), ("threw", "throw"),
])
def test_inflected_words_are_read_as_their_base_form(vocab, word, base):
    assert vocab.lemma(word) == base


def test_a_verb_the_captions_only_use_with_a_punch_counts_only_with_one(vocab):
    assert vocab.check("throws a punch").in_vocabulary
    assert vocab.check("throws a left hand up").in_vocabulary  # moves a known body part a known way
    found = vocab.check("throws a ball")
    assert found.unrecognised == ["throws", "ball"] and found.closest[:2] == ["punch", "slash"]


def test_objects_ride_along_with_a_known_motion_only(vocab):
    assert vocab.check("walks toward the car").in_vocabulary
    assert vocab.check("opens the car door").unrecognised == ["car", "door"]


def test_real_words_one_letter_from_a_motion_are_not_misspellings(vocab):
    for prompt in ("a student in class raises her left hand", "waiting, then waves", "a coach walks by"):
        assert vocab.check(prompt).in_vocabulary, prompt


# ------------------------------------------------------------------------------------------- measured rates
def test_flags_the_written_out_of_vocabulary_prompts_and_few_held_out_ones(vocab):
    oov = read(OOV_PROMPTS)
    assert len(oov) >= 100
    flagged = sum(not vocab.check(r["prompt"]).in_vocabulary for r in oov)
    assert flagged / len(oov) >= 0.95, f"{flagged}/{len(oov)} out-of-vocabulary prompts flagged"
    held = read(HELDOUT)
    assert len(held) == 336
    wrong = [r["prompt"] for r in held if not vocab.check(r["prompt"]).in_vocabulary]
    assert len(wrong) / len(held) <= 0.05, wrong


def test_the_prompt_lists_are_apart_from_each_other_and_from_the_training_captions():
    oov = {r["prompt"].lower() for r in read(OOV_PROMPTS)}
    dev = {r["prompt"].lower() for r in read(DEV_PROMPTS)}
    held = {r["prompt"].lower() for r in read(HELDOUT)}
    assert not (oov & dev) and not (oov & held) and not (dev & held)
    phrasings = {captions.inflect(p, form).replace("{their}", t).replace("+", "").lower()
                 for ps in captions.ACTION_BASES.values() for p in ps for form in ("base", "third", "ing")
                 for t in ("his", "her", "their")}
    assert not (oov & phrasings)


def test_a_check_takes_milliseconds(vocab):
    prompts = [r["prompt"] for r in read(OOV_PROMPTS)]
    start = time.perf_counter()
    for p in prompts:
        V.Vocabulary.check(vocab, p)
    assert (time.perf_counter() - start) / len(prompts) < 0.02


# ------------------------------------------------------------------------------------------- building, folders
def test_the_shipped_vocab_json_is_the_training_captions_vocabulary():
    stored = V.Vocabulary.load(WEIGHTS / V.FILE)
    built = V.Vocabulary.from_lexicon()
    assert stored.to_json() == built.to_json(), "weights/vocab.json is stale: rewrite it with bamm vocab --write"
    assert sorted(stored.actions) == sorted(captions.ACTION_BASES)
    assert sorted(stored.styles) == sorted(captions.STYLES)
    assert (WEIGHTS / V.FILE).stat().st_size < 20_000


@pytest.mark.parametrize("content, style", [("punch", "chimpira"), ("walk-turn-left", "elderly"),
                                            ("respond", "musical"), ("bye", "normal")])
def test_every_word_of_the_training_caption_pool_is_in_the_vocabulary(vocab, content, style):
    missing = {w for sentence in captions.training_caption_pool(content, style) for w in V.tokens(sentence)
               if vocab.lemma(w) not in vocab.known and vocab.lemma(w) not in V.WORDS.skip and not w.isdigit()}
    assert not missing


def test_none_of_the_held_out_evaluation_phrasings_builds_the_vocabulary(vocab):
    held_out_only = {"individual", "lady", "skyward", "enraged", "summoning"}
    assert not (held_out_only & vocab.known)


def _folder(tmp_path: Path, name: str, encoder: str, config: str = "bamm.json") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / config).write_text(json.dumps({"text_encoder": encoder}))
    return folder


def test_folders_without_a_vocabulary(tmp_path):
    bandai = _folder(tmp_path, "older", "minilm-lexical")
    assert V.for_folder(bandai).to_json() == V.Vocabulary.from_lexicon().to_json()
    for name, encoder, config in (("published", "clip:clip_text.safetensors", "bamm.json"),
                                  ("runtime", "clip", "runtime.json")):
        found = V.check("a person sits down on a chair", _folder(tmp_path, name, encoder, config))
        assert found.in_vocabulary and found.note == V.OPEN_NOTE == "open vocabulary (HumanML3D): not checked"
        assert found.to_json()["note"] == V.OPEN_NOTE and found.line() == ""


def test_write_vocabulary_copies_builds_or_leaves_out(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    assert V.write_vocabulary(runtime, WEIGHTS) == runtime / V.FILE
    assert (runtime / V.FILE).read_bytes() == (WEIGHTS / V.FILE).read_bytes()
    older = _folder(tmp_path, "older", "minilm")
    assert V.write_vocabulary(older, older) == older / V.FILE
    assert V.Vocabulary.load(older / V.FILE).to_json() == V.Vocabulary.from_lexicon().to_json()
    published = _folder(tmp_path, "published", "clip")
    assert V.write_vocabulary(published, published) is None and not (published / V.FILE).exists()


def test_a_vocabulary_from_a_dataset_folder(tmp_path):
    """HumanML3D's captions (unlabelled): sitting is known there, and the concepts stand for the actions."""
    data = tmp_path / "hml"
    (data / "texts").mkdir(parents=True)
    texts = {"000001": ["a person sits down on a chair.#a/DET person/NOUN#0.0#0.0",
                        "someone takes a seat#x#0.0#0.0"],
             "000002": ["a man jumps forward twice#x#0.0#0.0"],
             "000003": ["a person throws a ball with the right hand#x#0.0#0.0"],
             "000004": ["a person walks in a circle#x#0.0#0.0"]}
    for clip, lines in texts.items():
        (data / "texts" / f"{clip}.txt").write_text("\n".join(lines) + "\n")
    (data / "train.txt").write_text("000001\n000002\n000003\n")  # 000004 is not a training clip
    vocab = V.Vocabulary.from_dataset(data)
    assert vocab.hint == "" and not vocab.actions
    assert vocab.check("a person sits down on a chair").in_vocabulary
    assert vocab.check("a woman throws a ball").in_vocabulary
    found = vocab.check("a person walks in a circle")
    assert found.unrecognised == ["walks", "circle"] and found.hint == ""
    folder = _folder(tmp_path, "published", "clip")
    assert V.write_vocabulary(folder, folder, data=data) == folder / V.FILE
    assert V.check("a person jumps", folder).in_vocabulary
    assert not V.check("a person crawls", folder).in_vocabulary


def test_motion_words_are_consistent():
    labels = set(captions.ACTION_BASES) | set(captions.STYLES)
    for concept, near in V.WORDS.near.items():
        for name in near:
            assert name in V.WORDS.category or name in labels, (concept, name)
    assert not (V.WORDS.real & set(V.WORDS.concept_of))
    assert set(V.WORDS.category.values()) == {"motion", "body", "direction", "style", "prop", "terrain"}
