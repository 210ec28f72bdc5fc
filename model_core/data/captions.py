"""Natural-language captions for labelled motion clips (Bandai-Namco content x style labels).

``training_captions(content, style, clip_id)`` picks several distinct sentences such as
"an elderly person walks forward slowly." from templates x action phrasings (per content label) x
style phrasings (per style label); the choice is deterministic, seeded by the clip id.

``evaluation_captions(content, style)`` uses a held-out phrasing set: its templates (progressive
"is ...ing" sentences), subjects, action phrasings and manner phrasings never occur in the training
captions, and no held-out action phrasing shares four words in a row with a training one, so an
evaluation prompt is never a sentence, nor a paraphrase by inflection, the model was trained on.

The training phrasings are many per action (7-9) on purpose: with few, the transformers memorise the few
points of the text encoder's space those sentences occupy instead of learning to read the action.

Labels are the Bandai-Namco ones without the archive prefix ("walk", "not-confident"). Facts checked on
the motion itself: dataset-1 ``walk-left``/``walk-right`` walk forward on a diagonal towards the side
named; ``bye`` waves the right hand, ``byebye`` both hands; ``respond`` raises the left hand high;
``guide`` gestures forward with the right hand.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass


class CaptionError(KeyError):
    """Unknown content or style label."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class StyleWords:
    subjects: tuple[tuple[str, str], ...]  # (noun phrase, possessive) e.g. ("an old man", "his")
    adverbs: tuple[str, ...]  # short adverbials that also read well after a styled subject
    manners: tuple[str, ...]  # longer adverbials that carry the style on their own


NEUTRAL = (("a person", "their"), ("someone", "their"), ("a man", "his"), ("a woman", "her"))

# content label -> action phrasings, third person present; {their} is the subject's possessive
ACTIONS: dict[str, tuple[str, ...]] = {
    "walk": ("walks forward", "walks straight ahead", "takes several steps forward", "walks in a straight line",
             "strides forward", "walks a few steps ahead", "paces forward at an even speed",
             "steps forward one foot after the other", "goes forward at walking speed"),
    "run": ("runs forward", "jogs forward", "runs straight ahead", "runs in a straight line", "breaks into a run",
            "trots forward", "runs ahead at a moderate speed", "jogs a short way ahead", "goes for a run forward"),
    "dash": ("sprints forward", "dashes forward", "runs forward as fast as possible", "bursts into a sprint",
             "sprints straight ahead", "races forward at full speed", "runs very fast in a straight line",
             "dashes straight ahead very fast"),
    "walk-back": ("walks backwards", "steps backward several times", "walks backward a few steps",
                  "moves backwards one step at a time", "walks in reverse", "takes a few steps back",
                  "walks back without turning around", "moves back a few paces"),
    "walk-left": ("walks diagonally forward to the left", "walks forward while drifting to {their} left",
                  "walks ahead at an angle to the left", "walks forward and veers left",
                  "walks on a diagonal towards {their} left side", "walks forward on a slant to the left",
                  "steps forward and to the left at an angle"),
    "walk-right": ("walks diagonally forward to the right", "walks forward while drifting to {their} right",
                   "walks ahead at an angle to the right", "walks forward and veers right",
                   "walks on a diagonal towards {their} right side", "walks forward on a slant to the right",
                   "steps forward and to the right at an angle"),
    "bow": ("bows", "bows forward at the waist", "takes a bow", "bends forward in a bow", "bows deeply",
            "makes a polite bow", "gives a bow to someone", "bends over at the waist to bow"),
    "bye": ("waves goodbye with {their} right hand", "raises {their} right hand and waves goodbye",
            "waves {their} right hand to say goodbye", "waves bye with {their} right hand",
            "says goodbye by waving {their} right hand", "lifts {their} right hand to wave goodbye",
            "bids farewell, waving {their} right hand"),
    "byebye": ("waves goodbye with both hands", "raises both hands and waves them side to side",
               "waves both arms to say goodbye", "waves bye with both hands", "says goodbye waving both arms",
               "lifts both hands and waves goodbye", "bids farewell, waving both hands"),
    "guide": ("gestures forward with {their} right hand to show the way", "points the way with an open right hand",
              "guides someone by extending {their} right arm", "shows the way with {their} right hand",
              "points ahead with {their} right hand", "signals forward with {their} right arm",
              "leads someone on with a sweep of {their} right hand"),
    "respond": ("raises {their} left hand high to answer", "puts {their} left hand up in response",
                "raises a hand to respond", "answers by raising {their} left hand",
                "puts up {their} left hand as an answer", "lifts {their} left arm up to respond",
                "responds with {their} left hand in the air"),
    "call": ("calls out to someone while gesturing", "leans forward and calls someone over",
             "beckons someone to come over", "waves someone over", "calls someone and beckons with a hand",
             "shouts to someone and gestures them closer", "calls out and signals someone to come"),
    "punch": ("throws a punch", "punches forward", "throws several punches", "punches with {their} fists",
              "punches the air", "throws punches", "throws a jab and a cross", "punches straight ahead"),
    "kick": ("kicks forward", "does a kick", "kicks with one leg", "throws a kick", "kicks a leg forward",
             "lifts a leg and kicks", "kicks the air", "does a forward kick"),
    "slash": ("slashes with a sword", "swings an imaginary sword", "makes a slashing motion with {their} arms",
              "slashes downward with a sword", "hacks at an enemy with a blade", "makes sword strikes",
              "strikes with an imaginary blade"),
    "dance-long": ("dances", "performs a dance", "does a long dance routine", "dances, moving {their} arms and legs",
                   "dances to music", "does a few dance moves", "dances around", "moves to music"),
    "dance-short": ("dances", "performs a short dance", "does a dance routine", "dances, moving {their} arms and legs",
                    "dances to music", "does a few dance moves", "dances around", "moves to music"),
    "walk-turn-left": ("walks forward and turns left", "walks and makes a left turn", "turns to the left while walking",
                       "walks ahead, then turns to {their} left", "walks and turns to the left",
                       "takes a left turn while walking", "walks a few steps, then turns left",
                       "turns left partway through a walk"),
    "walk-turn-right": ("walks forward and turns right", "walks and makes a right turn",
                        "turns to the right while walking", "walks ahead, then turns to {their} right",
                        "walks and turns to the right", "takes a right turn while walking",
                        "walks a few steps, then turns right", "turns right partway through a walk"),
    "wave-both-hands": ("waves both hands", "waves with both hands", "raises both arms and waves",
                        "waves both hands in the air", "waves hello with both hands", "waves both arms",
                        "greets someone, waving both hands", "waves both hands above {their} head"),
    "wave-left-hand": ("waves {their} left hand", "waves with {their} left hand", "raises {their} left hand and waves",
                       "gives a wave with {their} left hand", "waves hello with {their} left hand",
                       "waves {their} left arm", "greets someone by waving {their} left hand",
                       "waves {their} left hand from side to side"),
    "wave-right-hand": ("waves {their} right hand", "waves with {their} right hand",
                        "raises {their} right hand and waves", "gives a wave with {their} right hand",
                        "waves hello with {their} right hand", "waves {their} right arm",
                        "greets someone by waving {their} right hand", "waves {their} right hand from side to side"),
    "raise-up-both-hands": ("raises both hands", "lifts both arms up", "puts both hands up in the air",
                            "raises both arms over {their} head", "holds both hands up", "puts both arms up",
                            "stretches both arms upward", "lifts both hands high over {their} head"),
    "raise-up-left-hand": ("raises {their} left hand", "lifts {their} left arm up", "puts {their} left hand up",
                           "raises {their} left arm above {their} head", "holds {their} left hand up",
                           "stretches {their} left arm upward", "lifts {their} left hand high",
                           "puts {their} left arm up in the air"),
    "raise-up-right-hand": ("raises {their} right hand", "lifts {their} right arm up", "puts {their} right hand up",
                            "raises {their} right arm above {their} head", "holds {their} right hand up",
                            "stretches {their} right arm upward", "lifts {their} right hand high",
                            "puts {their} right arm up in the air"),
}

STYLES: dict[str, StyleWords] = {
    "normal": StyleWords(NEUTRAL, ("normally", "casually", "calmly"), ("in a relaxed way", "in an ordinary manner")),
    "happy": StyleWords((("a happy person", "their"), ("a cheerful man", "his"), ("a happy woman", "her")),
                        ("happily", "cheerfully"), ("in a cheerful mood", "with a big smile")),
    "sad": StyleWords((("a sad person", "their"), ("an unhappy man", "his"), ("a sad woman", "her")),
                      ("sadly", "gloomily"), ("with {their} head hanging low", "in a sad, downcast way")),
    "angry": StyleWords((("an angry person", "their"), ("a furious man", "his"), ("an angry woman", "her")),
                        ("angrily", "aggressively"), ("in a rage", "in an angry, forceful way")),
    "proud": StyleWords((("a proud person", "their"), ("a confident man", "his"), ("a proud woman", "her")),
                        ("proudly", "confidently"), ("with {their} chest puffed out", "with {their} head held high")),
    "not-confident": StyleWords((("a shy person", "their"), ("an insecure man", "his"), ("a timid woman", "her")),
                                ("timidly", "hesitantly", "nervously"), ("without any confidence",)),
    "masculine": StyleWords((("a macho man", "his"), ("a tough man", "his"), ("a manly person", "their")),
                            ("boldly", "powerfully"), ("in a masculine way", "with a broad, manly posture")),
    "feminine": StyleWords((("a graceful woman", "her"), ("a poised woman", "her"), ("an elegant person", "their")),
                           ("gracefully", "elegantly"), ("in a feminine way", "in a dainty, ladylike manner")),
    "childish": StyleWords((("a child", "their"), ("a little kid", "their"), ("a childish person", "their")),
                           ("playfully",), ("like a child", "in a childish way", "with childlike energy")),
    "youthful": StyleWords((("a young person", "their"), ("a young man", "his"), ("a teenager", "their")),
                           ("youthfully", "springily"), ("with youthful energy", "in a young, lively way")),
    "elderly": StyleWords((("an elderly person", "their"), ("an old man", "his"), ("an old woman", "her")),
                          ("slowly", "stiffly", "carefully"), ("like an old person", "with a hunched back")),
    "exhausted": StyleWords((("a tired person", "their"), ("an exhausted man", "his"), ("a worn-out woman", "her")),
                            ("wearily", "sluggishly"), ("as if exhausted", "with heavy, tired limbs")),
    "active": StyleWords((("an energetic person", "their"), ("a lively man", "his"), ("an active woman", "her")),
                         ("energetically", "vigorously", "briskly"), ("with lots of energy",)),
    "musical": StyleWords((("a theatrical performer", "their"), ("a musical actor", "their"),
                           ("a showy dancer", "their")),
                          ("theatrically", "rhythmically"), ("as if in a musical", "with exaggerated stage flair")),
    "giant": StyleWords((("a giant", "their"), ("a huge, heavy man", "his"), ("a big lumbering person", "their")),
                        ("heavily", "ponderously"), ("like a giant", "with big, heavy movements")),
    "chimpira": StyleWords((("a thug", "their"), ("a street punk", "their"), ("a cocky hoodlum", "his")),
                           ("menacingly", "cockily"), ("with a swagger", "like a small-time thug")),
}

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

TRAIN_TEMPLATES = ("{styled} {action}.", "{person} {action} {manner}.", "{styled} {action} {adverb}.")
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
    themself = {"his": "himself", "her": "herself"}.get(their, "themselves")
    return phrase.format(their=their, themself=themself)


def _repeats(subject: str, adverb: str) -> bool:
    """True for pairs like "a sad person ... sadly" (the adverb repeats the subject's adjective)."""
    if not adverb:
        return False
    stem = adverb.removesuffix("ly")
    stem = stem[:-1] + "y" if stem.endswith("i") else stem.removesuffix("al")
    return stem in subject


def _pool(templates, actions, neutral, words: StyleWords) -> list[list[str]]:
    """Every sentence the templates can make, one list per template, no sentence twice."""
    seen: set[str] = set()
    groups: list[list[str]] = []
    for template in templates:
        group: list[str] = []
        for action in actions:
            if "{person}" in template:
                fills = [dict(person=s, action=_fill(action, t), manner=_fill(m, t))
                         for s, t in neutral for m in words.manners + words.adverbs]
            else:
                adverbs = words.adverbs if "{adverb}" in template else ("",)
                fills = [dict(styled=s, action=_fill(action, t), adverb=a)
                         for s, t in words.subjects for a in adverbs if not _repeats(s, a)]
            for fill in fills:
                sentence = template.format(**fill)
                if sentence not in seen:
                    seen.add(sentence)
                    group.append(sentence)
        groups.append(group)
    return groups


def training_caption_pool(content: str, style: str) -> list[str]:
    """All training sentences for a content/style pair (the set ``training_captions`` samples from)."""
    _check_content(content)
    return [s for group in _pool(TRAIN_TEMPLATES, ACTIONS[content], NEUTRAL, STYLES[_style_key(style)]) for s in group]


def training_captions(content: str, style: str, clip_id: str, *, n: int = 6) -> list[str]:
    """``n`` distinct captions for one clip; the same clip id always gets the same captions.

    Sentences are drawn round-robin over the templates so each clip mixes styled subjects
    ("a tired man bows.") with neutral subjects and a manner ("someone bows wearily.").
    """
    _check_content(content)
    groups = _pool(TRAIN_TEMPLATES, ACTIONS[content], NEUTRAL, STYLES[_style_key(style)])
    total = sum(len(group) for group in groups)
    if n > total:
        raise ValueError(f"asked for {n} captions but {content!r}/{style!r} has only {total} phrasings")
    rng = random.Random(int.from_bytes(hashlib.sha256(clip_id.encode("utf-8")).digest()[:8], "little"))
    for group in groups:
        rng.shuffle(group)
    chosen: list[str] = []
    while len(chosen) < n:
        for group in groups:
            if group and len(chosen) < n:
                chosen.append(group.pop())
    return chosen


def evaluation_captions(content: str, style: str) -> list[str]:
    """Held-out captions for a content/style pair, in a fixed order; disjoint from every training caption."""
    _check_content(content)
    key = _style_key(style)
    return [s for group in _pool(EVAL_TEMPLATES, EVAL_ACTIONS[content], EVAL_NEUTRAL, EVAL_STYLES[key]) for s in group]


def caption_labels() -> tuple[list[str], list[str]]:
    """(content labels, style labels) this module can caption, aliases included."""
    return sorted(ACTIONS), sorted(set(STYLES) | set(STYLE_ALIASES))
