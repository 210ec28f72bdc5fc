"""The word lists of ``data/motion_words.json`` (``WORDS``) and the word-level tools of the vocabulary check:
tokens, base-form candidates and lemmas, typo distance and rules, inflections, letter-trigram similarity."""

from __future__ import annotations

import json
import re
from pathlib import Path

_LEXICON = json.loads((Path(__file__).parent.parent / "data" / "motion_words.json").read_text(encoding="utf-8"))
_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_MANNER_SUFFIXES = {"like", "style", "esque", "ish", "inspired", "type"}
_INSIDE_PHRASE = {"a", "an", "the", "his", "her", "their", "its", "my", "your", "our", "one's", "both"}


class _Words:
    """The model-independent word lists of ``data/motion_words.json``."""

    def __init__(self, raw: dict):
        self.concept_of: dict[str, str] = {}
        self.category: dict[str, str] = {}
        self.near: dict[str, list[str]] = {}
        self.members: dict[str, set[str]] = {}
        self.light: set[str] = set()
        self.minor: set[str] = set()
        for name, c in raw["concepts"].items():
            self.category[name] = c["category"]
            self.near[name] = c.get("near", "").split()
            self.members[name] = set(c["words"].split())
            if c.get("light"):
                self.light.add(name)
            if c.get("minor"):
                self.minor.add(name)
            for word in c["words"].split():
                if word in self.concept_of:
                    raise ValueError(f"motion_words.json: {word!r} is in {self.concept_of[word]!r} and {name!r}")
                self.concept_of[word] = name
        self.irregular: dict[str, str] = dict(raw["irregular"])
        self.skip: set[str] = set(raw["skip"].split())
        self.phrases: list[tuple[tuple[str, ...], str]] = sorted(
            ((tuple(p.split()), c) for p, c in raw["phrases"].items()), key=lambda pc: -len(pc[0]))
        for words, concept in self.phrases:
            if concept not in self.category:
                raise ValueError(f"motion_words.json: phrase {' '.join(words)!r} names no concept ({concept!r})")
        self.base = set(self.concept_of) | self.skip | set(self.irregular.values())
        self.real: set[str] = set(raw.get("real_words", "").split())


WORDS = _Words(_LEXICON)


# ----------------------------------------------------------------------------------------------- words
def tokens(text: str) -> list[str]:
    """Lower-case words of ``text``: hyphens kept inside words, an apostrophe's tail dropped ("jumpin'",
    "person's", "doesn't" -> "jumpin", "person", "doesn")."""
    return [t.split("'")[0] for t in _TOKEN.findall(text.lower()) if t.split("'")[0]]


def _collapse(word: str) -> str:
    """A letter typed three times -> twice, then a doubled letter -> once, where a typo doubled it
    ("kneeel", "sitts")."""
    return re.sub(r"(.)\1+", r"\1", re.sub(r"(.)\1\1+", r"\1\1", word))


def _short_cvc(stem: str) -> bool:
    """One syllable ending consonant-vowel-consonant ("hop", "wav"): such a verb doubles its last letter before
    -ing / -ed ("hopping"), so "hoping" is "hope", not "hop"."""
    return len(re.findall(r"[aeiouy]+", stem)) == 1 and re.search(r"[^aeiou][aeiou][^aeiouwxy]$", stem) is not None


def candidates(word: str) -> list[str]:
    """The base forms ``word`` may be an inflection of, ``word`` first, the likelier before the less likely:
    irregular forms, "jumpin" for "jumping", plural and third person (-s, -es after s, x, z, ch, sh, o; -ies),
    gerund, past and agent noun (-ing, -ed, -er: a doubled consonant undone, a final e restored, the bare
    stem unless the verb would have doubled its last letter), adverbs (-ly, -ily, -ally)."""
    out = [word]
    if word in WORDS.irregular:
        out.append(WORDS.irregular[word])
    if word.endswith("in") and len(word) >= 4:
        out += candidates(word + "g")[1:]
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ily", "y")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            out.append(word[: -len(suffix)] + repl)
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh", "o")):
            out.append(word[:-2])
        out.append(word[:-1])
        if word.endswith(("ers", "ings")):  # "dancers", "landings"
            out += candidates(word[:-1])[1:]
    for suffix in ("ing", "ed", "er"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 2 + (suffix != "ed"):
            if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
                out.append(stem[:-1])
            out.append(stem + "e")
            if not _short_cvc(stem):
                out.append(stem)
    if word.endswith("ally") and len(word) > 7:
        out.append(word[:-4])
    if word.endswith("ly") and len(word) > 5:
        out.append(word[:-2])
    return list(dict.fromkeys(out))


class _Lemmas:
    """Base forms against a set of known words: the word itself when the word lists name it, else its first
    candidate that is a known word, else the word itself."""

    def __init__(self, known: set[str]):
        self.known = known | WORDS.base
        self._cache: dict[str, str] = {}

    def __call__(self, word: str) -> str:
        found = self._cache.get(word)
        if found is None:
            if word in WORDS.concept_of or word in WORDS.skip:
                found = word
            else:
                found = next((c for c in candidates(word)[1:] if c in self.known), word)
            self._cache[word] = found
        return found


def _distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (insertions, deletions, substitutions, swaps of two neighbours),
    or ``limit + 1`` once it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    if a == b:
        return 0
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        prev2, prev = prev, row
    return prev[-1]


def _typo_allowed(word: str, target: str, base: bool) -> bool:
    """Whether ``word`` may be a misspelling of ``target`` (a base form when ``base``, else an inflected one),
    one edit away: the first letter kept (or the first two swapped); four-letter words only swap two letters
    or lose one of a base form ("jmup", "clmb"); five-letter words do not put one letter for another ("class"
    is not "claps")."""
    if not (target[0] == word[0] or target[:2] == word[1::-1]):
        return False
    swapped = len(word) == len(target) and sorted(word) == sorted(target)
    if len(word) == 4:
        return swapped or (base and len(target) == 5)
    if len(word) == 5 and len(target) == 5:
        return swapped
    return True


def _inflections(base: str) -> list[str]:
    """Third person, gerund and past of a base form (for matching misspelt inflected words)."""
    if base.endswith(("s", "sh", "ch", "x")):
        third = base + "es"
    elif base.endswith("y") and len(base) > 2 and base[-2] not in "aeiou":
        third = base[:-1] + "ies"
    else:
        third = base + "s"
    stem = base[:-1] if base.endswith("e") and not base.endswith("ee") else base
    if _short_cvc(stem) and stem == base:
        stem += stem[-1]
    return [third, stem + "ing", stem + "ed"]


def _trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


def _similarity(a: str, b: str) -> float:
    ta, tb = _trigrams(a), _trigrams(b)
    return len(ta & tb) / (len(ta) * len(tb)) ** 0.5

