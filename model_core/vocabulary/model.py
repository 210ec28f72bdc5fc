"""``Vocabulary``: a model's training-caption words, stored as ``vocab.json``, and the reading of a prompt
against them (``Check``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import build
from .build import ANY
from .words import (_INSIDE_PHRASE, _MANNER_SUFFIXES, WORDS, _collapse, _distance, _inflections, _Lemmas,
                    _similarity, _typo_allowed, candidates, tokens)

FILE = "vocab.json"
FORMAT_VERSION = 1
OPEN_NOTE = "open vocabulary (HumanML3D): not checked"


# ----------------------------------------------------------------------------------------------- check
@dataclass
class Check:
    """The answer for one prompt: ``unrecognised`` holds the prompt's words (as typed) that ask for something
    the model's captions never hold, ``closest`` the model's actions or styles nearest to them."""

    in_vocabulary: bool
    unrecognised: list[str] = field(default_factory=list)
    closest: list[str] = field(default_factory=list)
    recognised: list[str] = field(default_factory=list)
    note: str = ""
    hint: str = ""

    def line(self) -> str:
        """One line for the user, empty when nothing is out of the vocabulary."""
        if self.in_vocabulary:
            return ""
        parts = ["not in this model's vocabulary: " + ", ".join(f"'{w}'" for w in self.unrecognised)]
        if self.closest:
            parts.append("closest: " + ", ".join(f"'{w}'" for w in self.closest))
        if self.hint:
            parts.append(self.hint)
        return "; ".join(parts)

    def to_json(self) -> dict:
        out = {"in_vocabulary": self.in_vocabulary, "unrecognised": list(self.unrecognised),
               "closest": list(self.closest), "recognised": list(self.recognised)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class _Item:
    surface: str
    lemma: str
    concept: str | None  # None: a caption word outside the word lists (recognised as it is)
    position: int
    manner: bool = False  # "ballet-like": says how, not what

    @property
    def category(self) -> str | None:
        return WORDS.category[self.concept] if self.concept else None

    @property
    def rides(self) -> bool:
        """Only says how a known action is done: an object, a body part, a minor motion, "X-like" of a motion
        ("a ballet-like kick"; "zombie-like" still asks for a style)."""
        if self.manner:
            return self.category in ("motion", "prop", "body")
        return self.category in ("prop", "body") or self.concept in WORDS.minor


class Vocabulary:
    """A model's vocabulary: the base forms of its training captions' words by action label (``actions``),
    by style label (``styles``) and the rest (subjects, contexts: ``words``); ``bound``: motion words the
    captions only use next to another motion word -> those partners (``"*"``: any action; style and subject
    words). ``open``: not checked (a model trained on open-ended captions whose list is not at hand)."""

    def __init__(self, *, actions: dict[str, list[str]] | None = None, styles: dict[str, list[str]] | None = None,
                 words: list[str] | None = None, bound: dict[str, list[str]] | None = None, source: str = "",
                 hint: str = "", open: bool = False, note: str = ""):
        self.actions = {k: sorted(set(v)) for k, v in (actions or {}).items()}
        self.styles = {k: sorted(set(v)) for k, v in (styles or {}).items()}
        self.words = sorted(set(words or ()))
        self.bound = {k: sorted(set(v)) for k, v in (bound or {}).items()}
        self.source, self.hint, self.open, self.note = source, hint, open, note
        known = set(self.words).union(*self.actions.values(), *self.styles.values())
        self.lemma = _Lemmas(known)
        self.known = {self.lemma(w) for w in known}
        self._bound = {self.lemma(w): set(p) for w, p in self.bound.items()}
        free = self.known - set(self._bound)
        self.free_concepts = {WORDS.concept_of[w] for w in free if w in WORDS.concept_of}
        self._label_words = {("action", k): {self.lemma(w) for w in v} for k, v in self.actions.items()}
        self._label_words.update({("style", k): {self.lemma(w) for w in v} for k, v in self.styles.items()})
        self._typo_pool: dict[str, list[tuple[str, str]]] = {}  # first letter -> (form, base form)
        for w in sorted(self.known | set(WORDS.concept_of) | WORDS.skip):
            if "-" not in w:
                verb = WORDS.category.get(WORDS.concept_of.get(w, "")) == "motion"
                for form in dict.fromkeys([w, *(_inflections(w) if verb else ())]):
                    if len(form) >= 4:
                        self._typo_pool.setdefault(form[0], []).append((form, w))

    # ---- stored form
    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, "source": self.source, "hint": self.hint, "open": self.open,
                "actions": self.actions, "styles": self.styles, "words": self.words, "bound": self.bound}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a vocabulary of format {FORMAT_VERSION}")
        for key in ("actions", "styles", "bound"):
            value = data.get(key) or {}
            if not (isinstance(value, dict) and all(isinstance(v, list) and all(isinstance(w, str) for w in v)
                                                    for v in value.values())):
                raise ValueError(f"'{key}' must map names to lists of words")
        if not (isinstance(data.get("words") or [], list) and all(isinstance(w, str) for w in data.get("words") or [])):
            raise ValueError("'words' must be a list of words")
        return cls(actions=data.get("actions"), styles=data.get("styles"), words=data.get("words"),
                   bound=data.get("bound"), source=data.get("source", ""), hint=data.get("hint", ""),
                   open=bool(data.get("open", False)), note=OPEN_NOTE if data.get("open") else "")

    def save(self, path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(_format(self.to_json()), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "Vocabulary":
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    # ---- building
    @classmethod
    def from_units(cls, units, *, source: str = "", hint: str = "") -> "Vocabulary":
        """From caption units ``(kind, label, text)`` (see ``build.from_units``)."""
        return build.from_units(cls, units, source=source, hint=hint)

    @classmethod
    def from_lexicon(cls) -> "Vocabulary":
        """The vocabulary of the training captions ``data/captions.py`` writes (``build.from_lexicon``)."""
        return build.from_lexicon(cls)

    @classmethod
    def from_dataset(cls, folder, *, split: str = "train") -> "Vocabulary":
        """From a dataset folder in the HumanML3D layout (``build.from_dataset``)."""
        return build.from_dataset(cls, folder, split=split)

    # ---- reading a prompt
    def _item(self, surface: str, word: str, position: int) -> _Item | None:
        """A prompt word as a concept word, a caption word, or None (asks for nothing)."""
        if word.isdigit() or word in WORDS.skip:
            return None
        lem = self.lemma(word)
        if lem in WORDS.skip:
            return None
        if lem in WORDS.concept_of:
            return _Item(surface, lem, WORDS.concept_of[lem], position)
        if lem in self.known:
            return _Item(surface, lem, None, position)
        collapsed = _collapse(word)
        if collapsed != word and (collapsed in WORDS.concept_of or self.lemma(collapsed) != collapsed):
            return self._item(surface, collapsed, position)  # "kneeel", "sitts"
        best = None
        if len(word) >= 4 and word not in WORDS.real:
            for form, target in self._typo_pool.get(word[0], []) + self._typo_pool.get(word[1], []):
                if _distance(word, form, 1) <= 1 and _typo_allowed(word, form, form == target):
                    rank = (target not in self.known and target not in WORDS.skip, form != target, target)
                    if best is None or rank < best[0]:
                        best = (rank, target)
        if best is None or best[1] in WORDS.skip:
            return None
        return _Item(surface, best[1], WORDS.concept_of.get(best[1]), position)

    def _items(self, prompt: str) -> list[_Item]:
        words = tokens(prompt)
        items: list[_Item] = []
        k = 0
        while k < len(words):
            match = self._phrase_at(words, k)
            if match:
                end, concept = match
                items.append(_Item(" ".join(words[k:end]), concept, concept, k))
                k = end
                continue
            word = words[k]
            head, _, tail = word.rpartition("-")
            if head and tail in _MANNER_SUFFIXES:  # "ballet-like", "zombie-style"
                items += [replace(i, manner=True) for part in head.split("-")
                          if (i := self._item(word, part, k)) is not None]
            elif (item := self._item(word, word, k)) is not None:
                items.append(item)
            elif "-" in word and word not in WORDS.skip:
                items += [i for part in word.split("-") if (i := self._item(word, part, k)) is not None]
            k += 1
        return items

    def _phrase_at(self, words: list[str], k: int) -> tuple[int, str] | None:
        for phrase, concept in WORDS.phrases:
            j, ok = k, True
            for n, part in enumerate(phrase):
                while n and j < len(words) and words[j] in _INSIDE_PHRASE and part not in _INSIDE_PHRASE:
                    j += 1
                if j >= len(words) or (part != words[j] and part not in candidates(words[j])
                                       and part != self.lemma(words[j])):
                    ok = False
                    break
                j += 1
            if ok:
                return j, concept
        return None

    def _held(self, item: _Item) -> bool:
        """Whether the model's captions hold ``item``'s word or a word of its concept (not asking whether it
        is bound)."""
        return item.lemma in self.known or bool(WORDS.members[item.concept] & self.known)

    def _knows(self, item: _Item) -> bool:
        """Whether ``item`` is in the vocabulary, bound words left aside (see ``check``)."""
        if item.concept is None:
            return True
        if WORDS.category[item.concept] == "motion":
            return item.concept in self.free_concepts
        return self._held(item)

    def check(self, prompt: str) -> Check:
        """Read ``prompt`` against this vocabulary (see the package docstring)."""
        if self.open:
            return Check(True, note=self.note or OPEN_NOTE)
        items = self._items(prompt or "")
        known = [it for it in items if self._knows(it)]
        concepts = {it.concept for it in known if it.concept}
        moves = {it.category for it in known}
        for it in items:  # words the captions use only beside another motion, and verbs that move a body part
            if it in known:
                continue
            partners = self._bound.get(it.lemma, set())
            if ((ANY in partners and any(k.category == "motion" for k in known))
                    or any(WORDS.concept_of.get(self.lemma(p)) in concepts for p in partners if p != ANY)
                    or (it.concept in WORDS.light and {"body", "direction"} <= moves)):
                known.append(it)
        if any(it.category == "motion" and not it.rides for it in known):
            known += [it for it in items if it.rides and it not in known]
        missing = [it for it in items if it not in known]
        unrecognised = list(dict.fromkeys(it.surface for it in missing))
        recognised = list(dict.fromkeys(it.surface for it in sorted(known, key=lambda i: i.position)))
        closest = self._closest(missing) if missing else []
        return Check(not missing, unrecognised, closest, recognised, hint=self.hint if missing else "")

    # ---- closest
    def _labels_of(self, concept: str) -> list[str]:
        """The model's action (or style) labels that hold a free word of ``concept``, the best first: a label
        named by one of the concept's words, then the one holding most of them, then the shortest."""
        kind = "style" if WORDS.category.get(concept) == "style" else "action"
        members = WORDS.members.get(concept, set())
        scored = []
        for (k, label), words in self._label_words.items():
            held = {w for w in words & members if w not in self._bound}
            if k == kind and held:
                named = any(part in members for part in label.split("-"))
                scored.append((not named, -len(held), len(label.split("-")), label))
        if not self._label_words and concept in self.free_concepts:
            return [concept]
        return [label for *_, label in sorted(scored)]

    def _closest(self, missing: list[_Item], limit: int = 3) -> list[str]:
        labels = {label for _, label in self._label_words}
        out: list[str] = []
        for it in missing:
            near = WORDS.near.get(it.concept, []) if it.concept else []
            found = []
            for name in near:
                if name in labels:
                    found.append(name)
                elif name in WORDS.category:
                    found += self._labels_of(name)[:1]
            if not found:
                found = self._similar(it.lemma)
            out += [f for f in found if f not in out]
        return out[:limit]

    def _similar(self, word: str, threshold: float = 0.3) -> list[str]:
        """The action whose words are nearest ``word`` by letter trigrams, when near enough."""
        best = max(((max((_similarity(word, w) for w in words), default=0.0), label)
                    for (kind, label), words in self._label_words.items() if kind == "action"), default=None)
        return [best[1]] if best and best[0] >= threshold else []

    # ---- listing
    def summary(self) -> dict:
        """What the model knows, for people: its actions, styles, and the concepts of the word lists its
        captions hold (motion, body, direction) and those they do not."""
        by_category: dict[str, list[str]] = {}
        missing: dict[str, list[str]] = {}
        for concept, category in WORDS.category.items():
            known = (concept in self.free_concepts if category == "motion"
                     else bool(WORDS.members[concept] & self.known))
            (by_category if known else missing).setdefault(category, []).append(concept)
        return {"source": self.source, "actions": sorted(self.actions), "styles": sorted(self.styles),
                "known": by_category, "not_known": missing}


def _format(data: dict) -> str:
    """JSON with one line per top-level entry, per label and per bound word (small diffs when captions change)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            inner = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            lines.append(f" {json.dumps(key)}: {{" + ("\n" + ",\n".join(inner) + "\n }" if inner else "}"))
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
