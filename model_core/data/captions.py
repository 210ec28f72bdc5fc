"""Natural-language captions for labelled motion clips (Bandai-Namco content x style labels).

``training_captions(content, style, clip_id)`` picks several distinct sentences such as
"an elderly person walks forward slowly.", "with his left hand, a tired man waves.",
"wave your right hand like a child." or "an angry high kick." (a noun phrase, as many typed prompts are)
from templates x action phrasings (per content label) x style
phrasings (per style label); the choice is deterministic, seeded by the clip id. A small share of the
sentences carries one common misspelling ("rigth", "waives"), as typed prompts do.

The lexicon (caption_lexicon.json) holds the action phrasings as base-form verb phrases ("wave {their}
left hand"); they are inflected here into the third person ("waves"), the gerund ("waving") and the
imperative. Each action also has noun phrases ("{a} high kick"), which a style's adjectives can precede
("an angry high kick"). Subjects, word orders and sentence lengths vary on purpose: with few phrasings the
transformers memorise the few points of the text encoder's space those sentences occupy instead of
learning to read the action.

``evaluation_captions(content, style)`` uses a held-out phrasing set: its templates (progressive
"is ...ing" sentences), subjects, action phrasings and manner phrasings never occur in the training
captions, and no training caption shares four words in a row with a held-out phrasing (the whole
phrasing when it is shorter; such sentences are dropped from the training pool), so an evaluation
prompt is never a sentence, nor a paraphrase by inflection, the model was trained on.

Labels are the Bandai-Namco ones without the archive prefix ("walk", "not-confident"). Facts checked on
the motion itself: dataset-1 ``walk-left``/``walk-right`` walk forward on a diagonal towards the side
named; ``bye`` waves the right hand, ``byebye`` both hands; ``respond`` raises the left hand high;
``guide`` gestures forward with the right hand.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path


class CaptionError(KeyError):
    """Unknown content or style label."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class StyleWords:
    subjects: tuple[tuple[str, str], ...]  # (noun phrase, possessive) e.g. ("an old man", "his")
    adverbs: tuple[str, ...]  # short adverbials that also read well after a styled subject
    manners: tuple[str, ...]  # longer adverbials that carry the style on their own
    adjectives: tuple[str, ...] = ()  # go before a noun phrase of the action: "an angry kick"


_LEXICON = json.loads(Path(__file__).with_name("caption_lexicon.json").read_text(encoding="utf-8"))

# ----- inflection of base-form verb phrases -----

_DOUBLED = set("run step jog put bid hop skip drag swim stop shrug clap trot get sit cut nod jab grab spin tap pat "
               "strut wag chop slip dip snap".split())
_THIRD_IRREGULAR = {"go": "goes", "do": "does", "have": "has"}
_MARKED = re.compile(r"([a-z-]+)(\+?)(,?)")


def _third(verb: str) -> str:
    if verb in _THIRD_IRREGULAR:
        return _THIRD_IRREGULAR[verb]
    if verb.endswith(("s", "sh", "ch", "x")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _gerund(verb: str) -> str:
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith("ee"):
        return verb[:-1] + "ing"
    return verb + verb[-1] + "ing" if verb in _DOUBLED else verb + "ing"


@functools.lru_cache(maxsize=None)
def inflect(phrase: str, form: str) -> str:
    """A base-form verb phrase in ``form`` "base", "third" or "ing": the first word and every word marked
    with a trailing '+' are inflected ("raise {their} hand and wave+" -> "raises {their} hand and waves")."""
    change = {"base": lambda v: v, "third": _third, "ing": _gerund}
    if form not in change:
        raise ValueError(f"form must be one of {sorted(change)}, got {form!r}")
    words = []
    for k, word in enumerate(phrase.split(" ")):
        match = _MARKED.fullmatch(word)
        if match and (k == 0 or match.group(2)):
            word = change[form](match.group(1)) + match.group(3)
        words.append(word)
    return " ".join(words)


def _pairs(rows) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a, b in rows)


NEUTRAL = _pairs(_LEXICON["neutral"])
CONTEXTS: tuple[str, ...] = tuple(_LEXICON["contexts"])
# content label -> base-form action phrasings; {their} is the subject's possessive
ACTION_BASES: dict[str, tuple[str, ...]] = {c: tuple(p) for c, p in _LEXICON["actions"].items()}
# content label -> (fronted phrase, base-form verb phrase): "with his left hand, a man waves."
FRONTED: dict[str, tuple[tuple[str, str], ...]] = {c: _pairs(p) for c, p in _LEXICON["fronted"].items()}
# content label -> noun phrases of the action, "{a}" standing for the article: "{a} high kick"
NOMINALS: dict[str, tuple[str, ...]] = {c: tuple(p) for c, p in _LEXICON["nominals"].items()}
# content label -> action phrasings, third person present
ACTIONS: dict[str, tuple[str, ...]] = {c: tuple(inflect(p, "third") for p in ps) for c, ps in ACTION_BASES.items()}
STYLES: dict[str, StyleWords] = {
    name: StyleWords(NEUTRAL if w["subjects"] == "neutral" else _pairs(w["subjects"]), tuple(w["adverbs"]),
                     tuple(w["manners"]), tuple(w["adjectives"]))
    for name, w in _LEXICON["styles"].items()}
# correct word -> common misspellings
TYPOS: dict[str, tuple[str, ...]] = {w: tuple(t) for w, t in _LEXICON["typos"].items() if t}
TYPO_SHARE = 0.1  # expected share of training captions that carry one misspelling

# ----- held-out evaluation phrasings: nothing below occurs in a training caption -----

EVAL_NEUTRAL = (("an individual", "their"), ("a human", "their"), ("a guy", "his"), ("a lady", "her"))

EVAL_ACTIONS: dict[str, tuple[str, ...]] = {
    "walk": ("strolling ahead", "moving forward on foot"),
    "run": ("running ahead at a steady pace", "jogging along"),
    "dash": ("racing ahead at top speed", "rushing forward as quickly as possible"),
    "walk-back": ("retreating backward on foot", "backing away"),
    "walk-left": ("heading off diagonally to the left", "strolling forward and slightly leftward"),
    "walk-right": ("heading off diagonally to the right", "strolling forward and slightly rightward"),
    "bow": ("bowing politely", "lowering {their} upper body in a bow"),
    "bye": ("saying goodbye with a wave of the right hand", "waving farewell with one hand"),
    "byebye": ("saying goodbye by waving both hands", "waving farewell with two hands"),
    "guide": ("showing someone the way with a hand gesture", "directing someone ahead with an outstretched arm"),
    "respond": ("answering with a raised left hand", "lifting a hand high to reply"),
    "call": ("calling to somebody", "summoning somebody with a gesture"),
    "punch": ("boxing the air", "striking forward with a fist"),
    "kick": ("kicking out with a foot", "delivering a kick"),
    "slash": ("cutting through the air with a blade", "swinging a sword"),
    "dance-long": ("dancing", "busting some dance moves"),
    "dance-short": ("dancing", "busting some dance moves"),
    "walk-turn-left": ("walking and then changing direction to the left", "turning left mid-stride"),
    "walk-turn-right": ("walking and then changing direction to the right", "turning right mid-stride"),
    "wave-both-hands": ("waving with two hands", "waving both arms back and forth"),
    "wave-left-hand": ("waving hello with the left hand", "waving the left arm back and forth"),
    "wave-right-hand": ("waving hello with the right hand", "waving the right arm back and forth"),
    "raise-up-both-hands": ("lifting both hands skyward", "holding both arms up high"),
    "raise-up-left-hand": ("lifting the left hand skyward", "holding the left arm up high"),
    "raise-up-right-hand": ("lifting the right hand skyward", "holding the right arm up high"),
}

EVAL_STYLES: dict[str, StyleWords] = {
    "normal": StyleWords((("an average person", "their"),), (), ("in a plain, everyday way",)),
    "happy": StyleWords((("a joyful individual", "their"),), (), ("in high spirits",)),
    "sad": StyleWords((("a sorrowful individual", "their"),), (), ("looking miserable",)),
    "angry": StyleWords((("an enraged individual", "their"),), (), ("looking furious",)),
    "proud": StyleWords((("an arrogant individual", "their"),), (), ("looking very pleased with {themself}",)),
    "not-confident": StyleWords((("an unsure individual", "their"),), (), ("looking self-conscious",)),
    "masculine": StyleWords((("a burly guy", "his"),), (), ("with a strong, male bearing",)),
    "feminine": StyleWords((("a dainty lady", "her"),), (), ("with soft, delicate gestures",)),
    "childish": StyleWords((("a small boy", "his"),), (), ("as a kid would",)),
    "youthful": StyleWords((("a young adult", "their"),), (), ("full of youthful vigour",)),
    "elderly": StyleWords((("a frail senior", "their"),), (), ("with the stiffness of old age",)),
    "exhausted": StyleWords((("a weary individual", "their"),), (), ("looking completely drained",)),
    "active": StyleWords((("a spirited individual", "their"),), (), ("full of pep",)),
    "musical": StyleWords((("a stage performer", "their"),), (), ("with the flair of a broadway show",)),
    "giant": StyleWords((("an enormous brute", "their"),), (), ("with the heavy gait of a very large body",)),
    "chimpira": StyleWords((("a gangster wannabe", "their"),), (), ("acting tough",)),
}

# label spellings used by the two archives that mean the same style
STYLE_ALIASES = {"masculinity": "masculine", "old": "elderly", "tired": "exhausted"}

# {styled}: a subject carrying the style; {person}: a neutral subject; {action}: third person; {acting}: gerund;
# {act}: imperative; {front}: a fronted phrase of the action; {nominal}: a noun
# phrase of the action, {described}: the same with a style adjective ("an angry high kick"); subject-less
# sentences read {their} as "the" (gerund, noun phrase) or "your" (imperative)
TRAIN_TEMPLATES = ("{styled} {action}.", "{person} {action} {manner}.", "{styled} {action} {adverb}.",
                   "{manner}, {person} {action}.", "{adverb}, {styled} {action}.", "{styled} {acting}.",
                   "{acting} {manner}.", "{act} {manner}.", "{act} {adverb}.", "{front}, {styled} {action}.",
                   "{context} {styled} {acting} {adverb}.", "{styled} {acting} {manner}.", "{described}.",
                   "{nominal} by {styled}.", "{nominal}, {manner}.", "{context} {described}.")
EVAL_TEMPLATES = ("{styled} is {action}.", "{person} is {action}, {manner}.")


def _style_key(style: str) -> str:
    key = STYLE_ALIASES.get(style, style)
    if key not in STYLES:
        known = ", ".join(sorted(set(STYLES) | set(STYLE_ALIASES)))
        raise CaptionError(f"unknown style label {style!r}; known styles: {known}")
    return key


def _check_content(content: str) -> None:
    if content not in ACTIONS:
        raise CaptionError(f"unknown content label {content!r}; known contents: {', '.join(sorted(ACTIONS))}")


def _fill(phrase: str, their: str) -> str:
    if "{" not in phrase:
        return phrase
    themself = {"his": "himself", "her": "herself", "your": "yourself"}.get(their, "themselves")
    return phrase.format(their=their, themself=themself)


def _repeats(subject: str, adverb: str) -> bool:
    """True for pairs like "a sad person ... sadly" (the adverb repeats the subject's adjective)."""
    if not adverb:
        return False
    stem = adverb.removesuffix("ly")
    stem = stem[:-1] + "y" if stem.endswith("i") else stem.removesuffix("al")
    return stem in subject


def words_of(text: str) -> list[str]:
    """Lower-case words of a sentence, punctuation dropped (hyphens and apostrophes kept inside words)."""
    return re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", text.lower())


def _runs(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _held_out_runs() -> dict[int, set[tuple[str, ...]]]:
    """Runs of four words of every held-out phrasing (the whole phrasing when shorter), by run length."""
    phrases = [a for ps in EVAL_ACTIONS.values() for a in ps]
    phrases += [m for w in EVAL_STYLES.values() for m in w.manners]
    phrases += [s for s, _ in EVAL_NEUTRAL] + [s for w in EVAL_STYLES.values() for s, _ in w.subjects]
    runs: dict[int, set] = {}
    for phrase in phrases:
        for their in ("his", "her", "their"):
            words = words_of(_fill(phrase, their))
            runs.setdefault(min(4, len(words)), set()).update(_runs(words, min(4, len(words))))
    return runs


_HELD_OUT_RUNS = _held_out_runs()


def shares_held_out_wording(sentence: str) -> bool:
    """True when ``sentence`` holds four words in a row of a held-out phrasing (all of a shorter one)."""
    words = words_of(sentence)
    return any(tuple(words[i:i + n]) in runs for n, runs in _HELD_OUT_RUNS.items()
               for i in range(len(words) - n + 1))


def _noun_phrase(phrase: str, adjective: str) -> str:
    """A noun phrase of the action ("{a} high kick") with its article and, when given, an adjective after it."""
    rest = phrase.removeprefix("{a} ")
    if adjective:
        rest = f"{adjective} {rest}"
    article = "an" if rest[0] in "aeiou" and not rest.startswith(("one", "usu", "uni")) else "a"
    return _fill(f"{article} {rest}", "the")


def _choices(template: str, content: str, words: StyleWords) -> list[list]:
    """The option lists a template draws from: subjects, actions, manners, adverbs, contexts."""
    if "{styled}" in template:
        subjects = list(words.subjects)
    elif "{person}" in template:
        subjects = list(NEUTRAL)
    else:
        subjects = [("", "your" if "{act}" in template else "the")]
    if "{front}" in template:
        actions = list(FRONTED.get(content, ()))
    elif "{nominal}" in template or "{described}" in template:
        adjectives = words.adjectives if "{described}" in template else ("",)
        actions = [("", _noun_phrase(a, adjective)) for adjective in adjectives for a in NOMINALS[content]]
    else:
        actions = [("", a) for a in ACTION_BASES[content]]
    manners = list(words.manners) if "{manner}" in template else [""]
    adverbs = list(words.adverbs) if "{adverb}" in template else [""]
    contexts = list(CONTEXTS) if "{context}" in template else [""]
    return [subjects, actions, manners, adverbs, contexts]


def _render(template: str, subject: tuple[str, str], action: tuple[str, str], manner: str, adverb: str,
            context: str) -> str | None:
    """One training sentence, or None when the parts clash (repeated words, held-out wording)."""
    noun, their = subject
    if _repeats(noun, adverb) or (noun and manner and noun.split()[-1] in manner.split()):
        return None
    front, phrase = action
    fields = dict(styled=noun, person=noun, action=(phrase, "third"), acting=(phrase, "ing"), act=(phrase, "base"),
                  front=front, nominal=phrase, described=phrase, manner=manner, adverb=adverb, context=context)
    sentence = template.format(**{k: _fill(inflect(*v) if isinstance(v, tuple) else v, their)
                                  for k, v in fields.items() if "{" + k + "}" in template})
    sentence = re.sub(r"\s+", " ", sentence).replace(" ,", ",").replace(" .", ".").strip(" ,")
    sentence = sentence.replace(",,", ",").replace(",.", ".")
    return None if shares_held_out_wording(sentence) else sentence


@functools.lru_cache(maxsize=32)
def _pool(content: str, key: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for template in TRAIN_TEMPLATES:
        for parts in itertools.product(*_choices(template, content, STYLES[key])):
            sentence = _render(template, *parts)
            if sentence is not None:
                seen.setdefault(sentence)
    return tuple(seen)


# ----- mirrored training copies (left and right swapped) -----

_SIDES = {"left": "right", "right": "left"}
_SIDE_WORDS = {w: side for side in _SIDES for w in (side, *TYPOS.get(side, ()))}  # misspellings read back
_SIDE_RE = re.compile(r"\b(" + "|".join(sorted(_SIDE_WORDS, key=len, reverse=True)) + r")", re.IGNORECASE)


# Actions whose clips are all performed with one particular hand or leg, with no label for the other side
# (a goodbye with the right hand, a kick with one leg): their mirror image is a variant no clip shows, so
# training does not mirror them (`mirrored_action` gives None).
ONE_SIDED_ACTIONS = frozenset({"bye", "guide", "respond", "call", "punch", "kick", "slash", "dance-short",
                               "dance-long"})


def mirrored_action(content: str) -> str | None:
    """The action a motion's mirror image shows: "wave-left-hand" -> "wave-right-hand", "walk" -> "walk";
    None for the one-sided actions (`ONE_SIDED_ACTIONS`), whose mirror image has no label."""
    _check_content(content)
    if content in ONE_SIDED_ACTIONS:
        return None
    other = re.sub(r"\b(left|right)\b", lambda m: _SIDES[m.group(1)], content)
    return other if other in ACTIONS else content


def mirror_caption(text: str) -> str:
    """A caption of the mirror image: every "left" and "right" (also inside "leftward", "right-handed" and
    in their misspellings, written correctly) becomes the other side, keeping a leading capital."""
    def swap(m: re.Match) -> str:
        word = _SIDES[_SIDE_WORDS[m.group(1).lower()]]
        return word.capitalize() if m.group(1)[0].isupper() else word
    return _SIDE_RE.sub(swap, text)


def training_caption_pool(content: str, style: str) -> list[str]:
    """All training sentences for a content/style pair, without misspellings (``training_captions`` samples
    from these)."""
    _check_content(content)
    return list(_pool(content, _style_key(style)))


def correct_typos(sentence: str) -> str:
    """``sentence`` with the lexicon's misspellings replaced by the words they stand for."""
    fix = {typo: word for word, typos in TYPOS.items() for typo in typos}
    return re.sub(r"[a-z]+", lambda m: fix.get(m.group(0), m.group(0)), sentence)


def _misspell(sentence: str, rng: random.Random) -> str:
    """``sentence`` with one of its words replaced by a misspelling (unchanged when none applies)."""
    words = [w for w in dict.fromkeys(words_of(sentence)) if w in TYPOS]
    if not words:
        return sentence
    word = rng.choice(words)
    return re.sub(rf"\b{re.escape(word)}\b", rng.choice(TYPOS[word]), sentence, count=1)


def training_captions(content: str, style: str, clip_id: str, *, n: int = 6) -> list[str]:
    """``n`` distinct captions for one clip; the same clip id always gets the same captions.

    Sentences are drawn round-robin over the templates (in an order shuffled per clip), so each clip mixes
    styled subjects ("a tired man bows."), neutral subjects with a manner ("someone bows wearily."),
    gerunds, imperatives and fronted phrases; about ``TYPO_SHARE`` of them carry one misspelling.
    """
    _check_content(content)
    key = _style_key(style)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = random.Random(int.from_bytes(hashlib.sha256(clip_id.encode("utf-8")).digest()[:8], "little"))
    order = list(TRAIN_TEMPLATES)
    rng.shuffle(order)
    chosen: list[str] = []
    for _ in range(20):
        for template in order:
            options = _choices(template, content, STYLES[key])
            for _ in range(10 if len(chosen) < n and all(options) else 0):
                sentence = _render(template, *(rng.choice(o) for o in options))
                if sentence is not None and sentence not in chosen:
                    chosen.append(sentence)
                    break
        if len(chosen) >= n:
            break
    if len(chosen) < n:  # a tiny lexicon: take the rest from the whole pool
        rest = [s for s in _pool(content, key) if s not in chosen]
        if n > len(chosen) + len(rest):
            raise ValueError(f"asked for {n} captions but {content!r}/{style!r} has only "
                             f"{len(chosen) + len(rest)} phrasings")
        rng.shuffle(rest)
        chosen += rest[:n - len(chosen)]
    return [_misspell(s, rng) if rng.random() < TYPO_SHARE else s for s in chosen]


def evaluation_captions(content: str, style: str) -> list[str]:
    """Held-out captions for a content/style pair, in a fixed order; disjoint from every training caption."""
    _check_content(content)
    words = EVAL_STYLES[_style_key(style)]
    seen: dict[str, None] = {}
    for template in EVAL_TEMPLATES:
        for action in EVAL_ACTIONS[content]:
            if "{person}" in template:
                fills = [dict(person=s, action=_fill(action, t), manner=_fill(m, t))
                         for s, t in EVAL_NEUTRAL for m in words.manners + words.adverbs]
            else:
                fills = [dict(styled=s, action=_fill(action, t)) for s, t in words.subjects]
            for fill in fills:
                seen.setdefault(template.format(**fill))
    return list(seen)


def caption_labels() -> tuple[list[str], list[str]]:
    """(content labels, style labels) this module can caption, aliases included."""
    return sorted(ACTIONS), sorted(set(STYLES) | set(STYLE_ALIASES))
