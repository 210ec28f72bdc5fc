"""Building a vocabulary from caption units: the shipped weights' training captions (``from_lexicon``) and a
dataset folder's (``from_dataset``). Each function takes the ``Vocabulary`` class whose classmethods call it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .words import WORDS, _Lemmas, tokens

HUMANML3D_HINT = "for everyday motions import the published HumanML3D model, see README"
BANDAI_SOURCE = ("training captions written by model_core/data/captions.py for the Bandai-Namco Research Motion "
                 "Dataset's action and style labels")
ANY = "*"  # partner of a word that only ever qualifies an action (a style's or a subject's words)


def from_units(cls, units, *, source: str = "", hint: str = ""):
    """From caption units ``(kind, label, text)``: kind "action" (a phrasing of action ``label``, or a whole
    caption; label None: unlabelled), "style" (a style ``label``'s subject, adverb or manner) or "general"
    (subjects, sentence frames). A motion word is free where its unit holds no motion word of another
    concept (for a light verb such as "throw" without an object, no body word either) or where it names the
    unit's action label ("turn" in walk-turn-left); a word never free is ``bound`` to the other concepts'
    words it stood beside; style and general units qualify an action (``"*"``)."""
    unit_words: list[tuple[str, str | None, list[str]]] = []
    surface: set[str] = set()
    for kind, label, text in units:
        words = [w for w in tokens(text) if not w.isdigit()]
        surface.update(words)
        unit_words.append((kind, label, words))
    lemma = _Lemmas(surface)
    actions: dict[str, set[str]] = {}
    styles: dict[str, set[str]] = {}
    other: set[str] = set()
    free: set[str] = set()
    partners: dict[str, set[str]] = {}
    for kind, label, words in unit_words:
        lemmas = [lemma(w) for w in words]
        content = {w for w in lemmas if w not in WORDS.skip}
        target = (actions.setdefault(label, set()) if kind == "action" and label
                  else styles.setdefault(label, set()) if kind == "style" and label else other)
        target.update(content)
        motions = {w: WORDS.concept_of[w] for w in content
                   if WORDS.category.get(WORDS.concept_of.get(w, "")) == "motion"}
        named = set(label.split("-")) if kind == "action" and label else set()
        for w, concept in motions.items():
            if w in named:  # the action's own name ("turn" in walk-turn-left) stands for the action
                free.add(w)
                continue
            if kind != "action":
                partners.setdefault(w, set()).add(ANY)
                continue
            beside = {o for o, c in motions.items() if c != concept}
            categories = {o: WORDS.category.get(WORDS.concept_of.get(o, "")) for o in content}
            if concept in WORDS.light and "prop" not in categories.values():  # "throw both arms up", not a ball
                beside |= {o for o, c in categories.items() if c == "body"}
            if beside:
                partners.setdefault(w, set()).update(beside)
            else:
                free.add(w)
    bound = {w: sorted(p) for w, p in partners.items() if w not in free}
    return cls(actions={k: sorted(v) for k, v in actions.items()},
               styles={k: sorted(v) for k, v in styles.items()}, words=sorted(other), bound=bound,
               source=source, hint=hint)


def from_lexicon(cls):
    """The vocabulary of the training captions ``data/captions.py`` writes (the shipped weights'): every
    action phrasing of each Bandai-Namco action label, every subject, adverb, manner and adjective of each
    style label, the neutral subjects and the sentence frames."""
    from ..data import captions as cap

    def plain(phrase: str) -> str:
        return cap._fill(phrase.replace("+", "").replace("{a}", "a"), "their")

    units = []
    forms = ("base", "third", "ing")  # as the captions write them: "walk", "walks", "walking"
    for label, phrases in cap.ACTION_BASES.items():
        units += [("action", label, plain(cap.inflect(p, form))) for p in phrases for form in forms]
        units += [("action", label, plain(f"{front}, {cap.inflect(p, form)}"))
                  for front, p in cap.FRONTED.get(label, ()) for form in forms]
        units += [("action", label, plain(p)) for p in cap.NOMINALS.get(label, ())]
    for label, w in cap.STYLES.items():
        parts = [s for s, _ in w.subjects if w.subjects != cap.NEUTRAL] + list(w.adverbs) + list(w.manners)
        units += [("style", label, plain(p)) for p in parts + list(w.adjectives) if p]
    units += [("general", None, s) for s, _ in cap.NEUTRAL] + [("general", None, c) for c in cap.CONTEXTS]
    units += [("general", None, re.sub(r"\{[a-z]+\}", " ", t)) for t in cap.TRAIN_TEMPLATES]
    return cls.from_units(units, source=BANDAI_SOURCE, hint=HUMANML3D_HINT)


def from_dataset(cls, folder, *, split: str = "train"):
    """From a dataset folder in the HumanML3D layout (``texts/<id>.txt``, ``<split>.txt``): each caption a
    unit, labelled with its clip's content and style when ``meta.jsonl`` gives them (a ``bamm data
    build`` folder); HumanML3D's own captions come unlabelled."""
    folder = Path(folder)
    ids_file = folder / f"{split}.txt"
    if not (folder / "texts").is_dir() or not ids_file.is_file():
        raise FileNotFoundError(f"{folder} is not a dataset folder (texts/ and {split}.txt expected)")
    meta: dict[str, dict] = {}
    if (folder / "meta.jsonl").is_file():
        for line in (folder / "meta.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                meta[str(row.get("id", ""))] = row
    units, seen = [], set()
    for clip_id in ids_file.read_text(encoding="utf-8").split():
        path = folder / "texts" / f"{clip_id}.txt"
        if not path.is_file():
            continue
        row = meta.get(clip_id, {})
        for line in path.read_text(encoding="utf-8").splitlines():
            caption = line.split("#")[0].strip().lower()
            key = (caption, row.get("content"))
            if caption and key not in seen:
                seen.add(key)
                units.append(("action", row.get("content"), caption))
    if not units:
        raise ValueError(f"{folder}: no captions for the {split} split")
    named = any(label for _, label, _ in units)
    return cls.from_units(units, source=f"the {split} captions of {folder.name}",
                          hint="" if not named else HUMANML3D_HINT)
