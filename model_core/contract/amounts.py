"""Words about how long and how fast: a prompt's explicit duration, counted steps, short / long, and its pace.
Pure Python (no numpy): the request contract calls it, in Blender and in the CLI alike.

    from model_core.contract.amounts import parse, pace_of

    parse("a person waves for 3 seconds").seconds         # 3.0
    parse("a two-second wave").seconds                    # 2.0
    parse("a person takes a few steps forward").steps     # 3
    parse("the woman walks straight ahead slowly").speed  # SLOW (0.7)
    pace_of("a person walks slowly", None, limits)        # Pace: the model's length, played at 0.7x speed

What the words do (`Pace`, applied to the generated motion by `pacing.apply`, inside `Generator.generate`, which
every path goes through):

* **a duration** ("for 3 seconds", "3s", "a two-second wave", "for half a minute", "for a few seconds") sets the
  length, in whole tokens, unless the request gives frames or seconds (the user's length always wins); a
  duration over the model's limit is clamped to it, with a note;
* **counted steps** ("two steps", "a step", "a couple of paces", "a few strides", "several steps"): the motion
  the model chooses is cut where a foot comes down for that many-th time (at least ``MIN_KEEP_TOKENS`` tokens),
  so it travels that many steps' worth;
* **short / long** ("a short walk", "a brief wave", "briefly", "for a moment" / "a long walk", "for a while"):
  ``SHORT_SECONDS``, or the model's longest motion;
* **pace** ("slowly", "slow", "leisurely", "quickly", "fast", "briskly", "rapidly", "very slowly", ...) of
  locomotion (walks, runs): the decoded joints are resampled in time (`motion.retime`): slower is more frames for
  the same path and steps; with a length from the request or the words, the model makes ``length x speed``
  frames, stretched to the length. The model alone walks as fast whatever the word. Other actions are left to
  the model, which reads some of these words already ("bows slowly": 0.60x the head and hand speed of "bows")
  and the training captions use them for styles ("slowly" of the elderly): stretched as well, a slow bow was
  slowed twice (0.42x) and the hand-written style prompts were read right less often (`bench/amounts.py
  --levers`, the model card). The dash idioms of the captions ("as fast as possible") stay the model's.

The model reads the prompt without its durations ("a person walks forward for 1.5 seconds" made runs), and a
walk without its pace word too: "a person walks slowly" given a length walked backwards (8 of 10 clips at 120
frames) and at the longest length made an elderly walk, slowed twice with the stretch, so a walk's pace is the
stretch's alone. A short walk whose length the words choose (a duration, short, or a pace over a given length)
is made at ``WALK_FRAMES`` and its middle kept: walks given under 40 frames mostly go the wrong way. Plain prompts
(none of these words) keep the model's own length choice and are generated exactly as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .kinds import kind_of
from .limits import Limits

SLOW, VERY_SLOW, SLOWER = 0.7, 0.5, 0.8
FAST, VERY_FAST, FASTER = 1.35, 1.7, 1.2
SHORT_SECONDS = 2.0
MIN_KEEP_TOKENS = 5  # counted steps keep at least this many tokens (1 s), the shortest motion the model chooses
MAX_COUNT = 20  # counted steps beyond this are the model's own length
# Walks given a short length often go the wrong way: 'a person walks' asked for 20-36 frames went backwards in 24
# of 25 clips (bench/amounts.py --levers), while from 64 frames on the walks of the texts the model reads here
# (pace words taken out) went the way they say in 540 of 540 clips. So a walk shorter than WALK_FRAMES whose
# length the words choose is made at WALK_FRAMES and its middle kept. Runs given a short length go forward.
WALK_FRAMES = 80

_UNITS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90}
WORD_NUMBERS = {w: k for k, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())} | _UNITS
VAGUE = {"a": 1, "an": 1, "a single": 1, "one single": 1, "a couple of": 2, "a couple": 2, "couple of": 2,
         "a pair of": 2, "a few": 3, "a few more": 3, "few": 3, "several": 4, "a handful of": 5}
UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "min": 60, "mins": 60, "minute": 60,
                "minutes": 60, "hour": 3600, "hours": 3600, "ms": 0.001, "millisecond": 0.001,
                "milliseconds": 0.001}

_WORD = "|".join(sorted([*WORD_NUMBERS, *(f"{t}[ -]{u}" for t in _UNITS for u in list(WORD_NUMBERS)[1:10])],
                        key=len, reverse=True))
_VAGUE = "|".join(sorted((re.escape(v) for v in VAGUE), key=len, reverse=True))
_NUM = rf"(?:\d+(?:\.\d+)?|half an?|(?:{_WORD}|an?)\s+and\s+an?\s+half|{_VAGUE}|{_WORD})"
_PREP = r"for|in|within|over|during|lasting|taking|takes|about|around|roughly|nearly|almost|only|just|some"
_DURATION = re.compile(
    rf"(?<![\w.])(?:(?P<prep>{_PREP})\s+)?(?P<num>{_NUM})(?:\s*-\s*|\s*)(?P<unit>milliseconds?|ms|seconds?|secs?|s|"
    rf"minutes?|mins?|hours?)\b(?P<half>\s+and\s+an?\s+half)?(?!\s*(?:time|place|step|half|hand)\b)")
_ADJ = ("small|short|little|tiny|quick|slow|big|long|large|careful|light|heavy|brisk|more|full|huge|giant|cautious|"
        "hesitant|backward|backwards|forward|sideways|wide|deliberate|measured|quiet|uneven|shaky|steady|further")
_STEPS = re.compile(rf"(?<![\w.])(?P<num>\d+|{_VAGUE}|{_WORD})\s+(?:(?:{_ADJ})\s+){{0,2}}(?P<unit>steps?|paces?|"
                    rf"strides?)\b(?!\s+at\s+a\s+time|\s+(?:per|a|each|every)\s+(?:second|minute)\b)")
_SHORT = re.compile(r"\b(?:(?:short|brief)\s+(?:walk|stroll|run|jog|wave|bow|dance|sprint|dash|hike|march|jump|"
                    r"distance|way|while|moment|time|trip|spin|turn|spell|bit)|briefly|momentarily|for a (?:moment|"
                    r"bit|second or two)|a little way)\b")
_LONG = re.compile(r"\b(?:long\s+(?:walk|stroll|run|jog|wave|dance|hike|march|distance|way|time|while|trip|spell)|"
                   r"for a (?:long )?while|for ages)\b")
_NEG = r"(?<!not )(?<!not too )(?<!not very )(?<!n't )(?<!never )(?<!no )"
_VERY = r"(?:very|really|extremely|super|incredibly|painfully|exceedingly|so)\s+"
_SPEED = [  # (pattern, factor): the first pattern that matches in each group counts
    (rf"{_NEG}\b{_VERY}(?:slowly|slow)\b|\bsnail'?s pace\b|\bslow motion\b", VERY_SLOW),
    (rf"{_NEG}\b{_VERY}(?:quickly|fast|rapidly|swiftly|briskly)\b", VERY_FAST),
    (rf"{_NEG}\b(?:slowly|leisurely|unhurriedly|unhurried|lazily|at a (?:slow|gentle|relaxed|leisurely) pace|"
     r"slow(?![ -](?:down|motion))(?:-paced)?)\b", SLOW),
    (rf"{_NEG}\b(?:quickly|quick|fast|briskly|brisk|rapidly|rapid|swiftly|swift|hastily|hurriedly|speedily|"
     r"at a (?:fast|quick|brisk|rapid|good) pace)\b(?!\s+as\b)", FAST),
    (rf"{_NEG}\b(?:slower|more slowly)\b", SLOWER),
    (rf"{_NEG}\b(?:faster|more quickly)\b(?!\s+than\b)", FASTER),
]
_RUNNING = re.compile(r"\b(?:run|runs|running|ran|jog|jogs|jogging|sprint|sprints|sprinting|dash|dashes|dashing|"
                      r"race|races|racing|rush|rushes|rushing|hurry|hurries|hurrying|bolt|bolts|charge|charges|trot|"
                      r"trots|trotting)\b")
_DASH = re.compile(r"\b(?:as fast as|at full speed|full tilt|flat out|at top speed)\b")


@dataclass(frozen=True)
class Amounts:
    """What a prompt says about length and pace. seconds: an explicit duration (summed when several); steps:
    counted steps; size: "short" / "long" / None; speed: 1 plain, < 1 slower, > 1 faster; words: the phrases read;
    text: the prompt without its durations (what the model reads: "for 1.5 seconds" turned walks into runs), or
    None when it names none; bare: without its pace words too (what the model reads of a walk: see ``pace_of``)."""

    seconds: float | None = None
    steps: int | None = None
    size: str | None = None
    speed: float = 1.0
    words: tuple[str, ...] = ()
    text: str | None = None
    bare: str | None = None

    @property
    def plain(self) -> bool:
        return self.seconds is None and self.steps is None and self.size is None and self.speed == 1.0


@dataclass(frozen=True)
class Pace:
    """How one generate request's length and pace come out of its frames and its prompt's words.

    frames: frames the model is asked for (None: it chooses, the unidirectional pass); text: what the model reads
    instead of the prompt (None: the prompt as written); keep: frames kept of them (a short walk from the words:
    made at ``WALK_FRAMES``, its middle kept); steps: keep the motion up to this many foot touch-downs; speed:
    the result is resampled in time to play at this speed; out: the result's frames when fixed (a length from
    the request or the words), else None (the generated or kept length / speed, in whole tokens); source:
    "request", "prompt" or "model"; words: the phrases read; notes: lines for the user (a duration clamped to
    the model's limit, a pace capped by it)."""

    frames: int | None = None
    text: str | None = None
    keep: int | None = None
    steps: int | None = None
    speed: float = 1.0
    out: int | None = None
    source: str = "model"
    words: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def plain(self) -> bool:
        """Generation as without words: the request's length, the prompt as written, no cut, no resampling."""
        return (self.text is None and self.keep is None and self.steps is None and self.speed == 1.0
                and self.source != "prompt")

    def describe(self) -> str:
        """How the length and pace came about, for a report ("from the prompt ('for 3 seconds')")."""
        what = {"request": "requested", "prompt": "from the prompt", "model": "chosen by the model"}[self.source]
        if self.steps is not None:
            what = f"chosen by the model, cut at {self.steps} step(s)"
        if self.speed != 1.0:
            what += f", played at {self.speed:.2f}x speed"
        return what + (f" ({', '.join(repr(w) for w in self.words)})" if self.words else "")


def number(text: str) -> float | None:
    """'3', '2.5', 'two', 'twenty-one', 'a', 'half a', 'one and a half', 'a couple of', 'a few' -> a number."""
    t = re.sub(r"\s+", " ", text.strip().lower().replace("-", " "))
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        return float(t)
    if t in VAGUE:
        return float(VAGUE[t])
    if re.fullmatch(r"half an?", t):
        return 0.5
    m = re.fullmatch(r"(.+) and an? half", t)
    if m:
        base = number(m[1])
        return None if base is None else base + 0.5
    parts = t.split(" ")
    if all(p in WORD_NUMBERS for p in parts) and len(parts) <= 2:
        return float(sum(WORD_NUMBERS[p] for p in parts))
    return None


def _clean(prompt: str) -> str:
    text = re.sub(r"[\u2010-\u2015]", "-", prompt.lower())
    return re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip()


def parse(prompt: str) -> Amounts:
    """The `Amounts` of a prompt (or of one clause of it)."""
    text = _clean(prompt)
    words: list[str] = []
    seconds = 0.0
    found, spans = False, []
    for m in _DURATION.finditer(text):
        num, unit, prep = m["num"], m["unit"], m["prep"]
        if unit in ("s", "sec", "secs", "min", "mins", "ms") and not re.fullmatch(r"\d+(?:\.\d+)?", num):
            continue  # '3s' / '3 min', never 'a s'
        if num in ("a", "an") and unit in ("second", "minute") and not prep and not m["half"]:
            continue  # 'a second wave', 'a second time': an ordinal
        if re.search(r"\b(?:per|each|every)\s*$", text[:m.start()]) and not prep:
            continue  # 'two steps per second', 'every 2 seconds'
        value = number(num)
        if value is None:
            continue
        value = (value + 0.5 * bool(m["half"])) * UNIT_SECONDS[unit]
        if value > 0:
            seconds, found = seconds + value, True
            words.append(m[0].strip())
            spans.append(m.span())
    steps = None
    for m in _STEPS.finditer(text):
        value = number(m["num"])
        if value is not None and value >= 1 and value == int(value):
            steps = (steps or 0) + int(value)
            words.append(m[0])
    size = None
    if _SHORT.search(text):
        size = "short"
        words.append(_SHORT.search(text)[0])
    elif _LONG.search(text):
        size = "long"
        words.append(_LONG.search(text)[0])
    pace: list[tuple[int, int]] = []
    speed = _speed(text, words, pace)
    return Amounts(seconds=seconds if found else None, steps=steps if steps and steps <= MAX_COUNT else None,
                   size=size, speed=speed, words=tuple(words), text=_without(text, spans),
                   bare=_without(text, spans + pace))


def _without(text: str, spans: list[tuple[int, int]]) -> str | None:
    """``text`` less the ``spans``, spaces and commas tidied; None when there are none or nothing is left."""
    if not spans:
        return None
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + " " + text[end:]
    text = re.sub(r"\s+([,.;!?])", r"\1", re.sub(r"\s+", " ", text))
    text = re.sub(r"([,;])(?:\s*[,;])+", r"\1", text).strip(" ,;")
    return text if re.search(r"[a-z]", text) else None


def clause_length(clause: str, limits=None) -> tuple[str, float | None]:
    """(the clause without its durations, their seconds clamped to one token .. the limit, or None) of one step
    of a plan (`plan.make_plan`); ``limits``: a `limits.Limits` (None: its defaults)."""
    lim, a = limits or Limits(), parse(clause)
    if a.seconds is None:
        return clause, None
    return a.text or clause, min(max(a.seconds, lim.frames_per_token / lim.fps), lim.max_seconds)


def _speed(text: str, words: list[str], spans: list[tuple[int, int]]) -> float:
    """The pace factor of ``text``; its phrase is added to ``words`` and its span to ``spans``."""
    text = _DASH.sub(lambda m: " " * len(m[0]), text)  # the model's own dash words, offsets kept
    slow = fast = None
    for pattern, factor in _SPEED:
        m = re.search(pattern, text)
        if m:
            if factor < 1 and slow is None:
                slow = (factor, m)
            elif factor > 1 and fast is None:
                fast = (factor, m)
    if slow and fast:
        return 1.0  # 'slowly, then quickly': no single pace
    hit = slow or fast
    if hit is None:
        return 1.0
    words.append(hit[1][0])
    spans.append(hit[1].span())
    return hit[0]


def _tokens(frames: float, fpt: int) -> int:
    return max(fpt, int(round(frames / fpt)) * fpt)


def pace_of(prompt: str | None, frames: int | None, limits) -> Pace:
    """The `Pace` of a prompt generated with the request's ``frames`` (None: no length given) against ``limits``
    (a `limits.Limits`). The request's length wins over the words' duration, counted steps and size."""
    fpt, fps, top = limits.frames_per_token, limits.fps, limits.max_frames
    a = parse(prompt or "")
    moving = kind_of(prompt or "") == "locomotion"
    walk = moving and not _RUNNING.search((prompt or "").lower())  # runs given a length go the way they say
    words = a.words if moving or a.speed == 1.0 else a.words[:-1]  # the pace phrase is the last one read
    notes: list[str] = []
    target, steps, source = frames, None, "request" if frames is not None else "model"
    if frames is None:
        if a.seconds is not None:
            target = _tokens(a.seconds * fps, fpt)
            if target > top:
                notes.append(f"'{a.words[0]}' is {a.seconds:g} s: the model makes at most {top / fps:g} s, "
                             f"so the motion is {top / fps:g} s long")
                target = top
            source = "prompt"
        elif a.size == "long":
            target, source = top, "prompt"
        elif a.size == "short":
            target, source = _tokens(SHORT_SECONDS * fps, fpt), "prompt"
        elif a.steps is not None:
            steps, source = a.steps, "prompt"
    speed, made, out = a.speed if moving else 1.0, target, None
    if target is not None and speed != 1.0:
        made, out = _tokens(target * speed, fpt), target
        if made > top:  # a fast pace over a long length: the model's longest motion, played as fast as fits
            made = top
            notes.append(f"at {target / fps:g} s the pace can be at most {top / target:.2f}x: the model makes at "
                         f"most {top / fps:g} s")
        speed = made / target
    keep = None
    if made is not None and made != frames and made < min(WALK_FRAMES, top) and walk:
        keep, made = made, min(WALK_FRAMES, top)  # a short walk: made longer, its middle kept
    text = a.bare if a.speed != 1.0 and walk else a.text
    return Pace(frames=made, text=text, keep=keep, steps=steps, speed=speed, out=out, source=source,
                words=words, notes=tuple(notes))
