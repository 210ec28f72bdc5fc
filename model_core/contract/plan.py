"""The plan of a prompt that names several actions: clauses in time order, the person words they share, and
the kind of each clause. Pure python (no numpy): it runs in Blender and in the CLI alike.

Two ways of naming several actions:

* **in turn** -- "walks forward, then bows", "waves and then runs off", "after waving, jogs", "bows before
  walking away", "1. walk 2. bow", "waves, walks forward, bows": each clause becomes a `Step`, generated with
  its own length and joined with the model's transitions (`Generator.generate_long`);
* **at once** -- "walks forward while waving", "jogs with both hands up", "walks ahead holding the left hand
  up", "walks forward and waves": a locomotion clause and an arm clause become one `Step` whose ``together``
  prompt is the arm action, composed onto the locomotion's arms (`decoding/compose.py`).

The words that describe the person ("an elderly person", "a tired woman") are taken from the start of the
prompt and put in front of every clause ("an elderly person walks forward" / "an elderly person bows").
A prompt naming one action gives a plan of one step whose prompt is the prompt itself, so single-action
generation is unchanged. The plan is plain data (`Plan.to_json` / `Plan.from_json`, checked by `check_plan`)
so users can read and edit it before generating.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..data.captions import _third
from ..data.pos_tags import tag_word
from .amounts import clause_length
from .kinds import KINDS, kind_of, verb_lemma
from .limits import InputError, Limits, _number, check_prompt

STEP_KEYS = {"prompt", "kind", "seconds", "together"}
MAX_STEPS = 16  # steps of one plan: 16 x the model's longest motion at most
SEQUENCE_BODY = {"bow", "kick", "jump", "dance", "sit", "squat", "crouch", "kneel", "spin"}  # 'waves and bows'
PRONOUNS = {"he": "a man", "she": "a woman", "they": "a person", "it": "a person"}
DETERMINERS = {"a", "an", "the", "one", "some", "this", "that"}
DEFAULT_PERSON = "a person"

_THEN = re.compile(r"\s*(?:,|;)?\s*\b(?:and then|and after that|after that|afterwards|afterward|then|and finally|"
                   r"finally|and next|next|followed by)\b\s*,?\s*")
_NUMBERED = re.compile(r"(?:^|\s)(?:\(?\d+[.)]|step \d+:?|first,?|second,?|third,?)\s+")
_TOGETHER = re.compile(r"\s*,?\s*\b(?:while|whilst|and at the same time|at the same time as|as)\b\s*,?\s*")
_WITH_ARM = re.compile(
    r"\s*,?\s*\b(?:with|holding|keeping|having)\s+(?:(?:his|her|their|the|one|both|a)\s+)?(?:(left|right|both)\s+)?"
    r"(hand|hands|arm|arms)\s+(?:up|raised|lifted|in the air|above (?:his|her|their|the) head|over (?:his|her|"
    r"their|the) head|high|held high|held up)\b\s*")
_WITH_BOTH = re.compile(r"\s*,?\s*\bwith\s+(?:his|her|their|the)?\s*(?:arms|hands)\s+(?:up|raised)\b\s*")
_PARTICIPLE = re.compile(r"\s*,?\s*\b(waving|raising|lifting|punching|pointing|saluting|clapping|"
                         r"holding up|putting up|swinging)\b")


@dataclass
class Step:
    """One clause in time. prompt: what the model reads (person words included); kind: one of KINDS;
    seconds: None lets the model choose; together: an arm-action prompt done at the same time, or None."""

    prompt: str
    kind: str = "other"
    seconds: float | None = None
    together: str | None = None


@dataclass
class Plan:
    person: str
    steps: list[Step] = field(default_factory=list)

    @property
    def single(self) -> bool:
        """One step, one action: generate the prompt as it is."""
        return len(self.steps) == 1 and self.steps[0].together is None

    def describe(self) -> str:
        """A few readable lines ("1. an elderly person walks forward  [locomotion, auto]  + at once: ...")."""
        lines = [f"plan: {len(self.steps)} step(s), person: {self.person!r}"]
        for k, s in enumerate(self.steps, 1):
            length = "auto" if s.seconds is None else f"{s.seconds:g} s"
            lines.append(f"  {k}. {s.prompt}  [{s.kind}, {length}]")
            if s.together:
                lines.append(f"     + at once: {s.together}")
        return "\n".join(lines)

    def to_data(self) -> dict:
        """The plan object (``to_json``'s content): what the worker's ``plan`` op and plan files carry."""
        steps = [{"prompt": s.prompt, "kind": s.kind, "seconds": s.seconds, "together": s.together}
                 for s in self.steps]
        return {"person": self.person, "steps": steps}

    def to_json(self) -> str:
        return json.dumps(self.to_data(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, limits: Limits | None = None) -> "Plan":
        """A plan written by `to_json` (possibly edited), checked by `check_plan`. Raises InputError."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            where = f" ({e.msg} at line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
            raise InputError(f"the plan is not valid JSON{where}") from None
        return check_plan(data, limits)


def check_plan(data, limits: Limits | None = None) -> Plan:
    """A plan object (a dict as `Plan.to_data` writes it, or a `Plan`) checked against ``limits`` before any
    model loads: an object with ``person`` and a ``steps`` list of 1..MAX_STEPS steps, each a prompt (the
    request contract's prompt check), ``seconds`` null or one token .. the model's limit, ``together`` null or
    a prompt; no other keys. Raises InputError with a one-line reason."""
    lim = limits or Limits()
    if isinstance(data, Plan):
        data = data.to_data()
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
        raise InputError("the plan must be a JSON object with a non-empty 'steps' list")
    if set(data) - {"person", "steps"}:
        raise InputError(f"the plan has unknown key(s) {_names(set(data) - {'person', 'steps'})}")
    if len(data["steps"]) > MAX_STEPS:
        raise InputError(f"the plan has {len(data['steps'])} steps; at most {MAX_STEPS} are allowed")
    steps = []
    for k, s in enumerate(data["steps"], 1):
        if not isinstance(s, dict) or not isinstance(s.get("prompt"), str) or not s["prompt"].strip():
            raise InputError(f"plan step {k} needs a non-empty 'prompt' string")
        if set(s) - STEP_KEYS:
            raise InputError(f"plan step {k} has unknown key(s) {_names(set(s) - STEP_KEYS)}")
        try:
            prompt = check_prompt(s["prompt"], lim, required=True)
            seconds, together = s.get("seconds"), s.get("together")
            if seconds is not None:
                seconds = _number(seconds, "'seconds'", lim.frames_per_token / lim.fps, lim.max_seconds)
            if together is not None and (not isinstance(together, str) or not together.strip()):
                raise InputError("'together' must be null or a non-empty string")
            together = check_prompt(together, lim, required=False)
        except InputError as e:
            raise InputError(f"plan step {k}: {e}") from None
        kind = s.get("kind") if s.get("kind") in KINDS else kind_of(prompt)
        steps.append(Step(prompt, kind, seconds, together))
    person = data.get("person")
    person = check_prompt(person, lim, required=False) if isinstance(person, str) and person.strip() else None
    return Plan(person or DEFAULT_PERSON, steps)


def _names(keys) -> str:
    return ", ".join(sorted(map(str, keys)))[:200]


# ------------------------------------------------------------------------------------------ words

def _words(text: str) -> list[str]:
    return text.split()


def _first_verb(words: list[str]) -> int | None:
    for k, w in enumerate(words):
        if verb_lemma(w) is not None and w not in DETERMINERS:
            return k
    return None


def _is_subject(words: list[str]) -> bool:
    """True for a noun phrase naming the person: a pronoun, 'someone', or a determiner + words with a person noun
    ("an elderly person", "a tired woman", "the old man"); optionally followed by adverbs ("slowly")."""
    if not words:
        return False
    core = [w for w in words if not w.endswith("ly") or w in ("elderly", "lively", "friendly")]
    if not all(w.replace("-", "").isalpha() for w in core):
        return False
    if len(core) == 1 and (core[0] in PRONOUNS or core[0] in ("someone", "somebody", "everyone")):
        return True
    if "," in " ".join(words) or not core:
        return False
    if core[0] in DETERMINERS:
        return 2 <= len(core) <= 5 and tag_word(core[-1])[1] in ("NOUN", "ADJ")  # "a giant", "an old man"
    return len(core) <= 3 and all(tag_word(w)[1] in ("NOUN", "ADJ") for w in core) and tag_word(core[-1])[1] == "NOUN"


def _third_person(clause: str) -> str:
    """A clause starting with a verb in any form ("waving the hand", "wave", "waves") -> third person."""
    words = _words(clause)
    if not words:
        return clause
    head = words[0].strip(",")
    if head == "holding" and len(words) > 1 and words[1] == "up":
        return "holds up " + " ".join(words[2:])
    lemma = verb_lemma(head)
    if lemma is not None:
        words[0] = _third(lemma)
    elif len(words) > 1 and head in ("a", "an") and verb_lemma(words[1]) is not None:  # "followed by a bow"
        return " ".join([_third(verb_lemma(words[1]))] + words[2:])
    return " ".join(words)


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text.lower().replace(";", ",")).strip()
    text = re.sub(r"(?<!\d)[.!?]\s+", ", ", text)
    return re.sub(r"^[,\s]+|[,.!?\s]+$", "", text)


def _strip_subject(clause: str) -> str:
    """Drop a clause's own subject ("he bows" -> "bows", "the man then bows" -> "bows")."""
    words = _words(clause)
    k = _first_verb(words)
    if k and _is_subject(words[:k]):
        return " ".join(words[k:])
    return clause


def _finite(clause: str) -> bool:
    """The clause starts with a verb in the base or third-person form ("bows", "wave"), not "bent", "waving"."""
    words = _words(clause)
    lemma = verb_lemma(words[0]) if words else None
    return lemma is not None and words[0].strip(",") in (lemma, _third(lemma))


def _is_turn(clause: str) -> bool:
    """A change of direction ("turns left", "a right turn", "veers to the right", "goes left"): after walking it
    is the walk-and-turn action the model knows, not a step of its own."""
    words = set(re.findall(r"[a-z]+", clause))
    return bool(words & {"left", "right", "leftwards", "rightwards", "turn", "turns", "turning", "around"}) and not (
        words & {"hand", "hands", "arm", "arms", "leg", "foot", "fist", "fists"})


# ------------------------------------------------------------------------------------------ splitting

def split_person(text: str) -> tuple[str, str]:
    """(person words, the rest) of a cleaned prompt; the person is DEFAULT_PERSON for imperative prompts. A
    phrase fronted before the subject ("bent over with age, a man walks") belongs to the person words."""
    person, rest = _subject(text)
    if person is not None:
        return person, rest
    pieces = text.split(", ")
    for i in range(1, len(pieces)):
        if any(_finite(p) for p in pieces[:i]):
            break
        person, rest = _subject(", ".join(pieces[i:]))
        if person is not None:
            return f"{', '.join(pieces[:i])}, {person}", rest
    return DEFAULT_PERSON, text


def _subject(text: str) -> tuple[str | None, str]:
    words = _words(text)
    k = _first_verb(words)
    if k is None or k == 0 or not _is_subject([w for w in words[:k] if w not in ("is", "are", "was")]):
        return None, text
    subject = words[:k - 1] if words[k - 1] in ("is", "are", "was", "keeps") else words[:k]
    person = " ".join(subject)
    return PRONOUNS.get(person, person), " ".join(words[k:])


def split_sequence(text: str) -> list[str]:
    """Clauses of ``text`` (person words removed) in time order."""
    numbered = [p for p in _NUMBERED.split(" " + text) if p.strip(" ,")]
    if len(numbered) >= 2:
        return [c for p in numbered for c in split_sequence(p.strip(" ,"))]
    m = re.match(r"^(after|before)\s+(.+?),\s*(.+)$", text)
    if m:  # "after waving, walks" / "before walking off, bows"
        first, second = (m[2], m[3]) if m[1] == "after" else (m[3], m[2])
        return split_sequence(first) + split_sequence(second)
    m = re.match(r"^(.+?)\s*,?\s+\b(after|before)\b\s+(?!a few|several|some|turning)(.+)$", text)
    if m and _first_verb(_words(m[3])) == 0:  # "bows after walking", "walks before bowing"
        first, second = (m[3], m[1]) if m[2] == "after" else (m[1], m[3])
        return split_sequence(first) + split_sequence(second)
    parts = [p for p in _THEN.split(text) if p.strip(" ,")]
    if len(parts) >= 2:
        return [c for p in parts for c in split_sequence(p.strip(" ,"))]
    pieces = [p.strip() for p in text.split(",") if p.strip()]
    if len(pieces) >= 2 and all(_finite(_strip_subject(p)) for p in pieces):
        kinds = [kind_of(p) for p in pieces]  # bare commas: steps only when each names a different kind of action
        if "other" not in kinds and all(a != b for a, b in zip(kinds, kinds[1:])):
            return [c for p in pieces for c in split_sequence(p)]
    return [text]


def _split_and(clause: str) -> tuple[list[str], bool]:
    """'walks forward and waves' -> (['walks forward', 'waves'], together=True); 'walks and bows' -> in turn;
    'raises both hands and waves' (same kind) stays one clause."""
    parts = re.split(r"\s*,?\s+and\s+", clause)
    if len(parts) == 2 and all(_first_verb(_words(_strip_subject(p))) == 0 for p in parts):
        a, b = (_strip_subject(p) for p in parts)
        kinds = (kind_of(a), kind_of(b))
        turn = "locomotion" in kinds and (_is_turn(a) or _is_turn(b))  # walk-turn-left is one action
        if kinds[0] == kinds[1] or "other" in kinds or turn:
            return [clause], False
        if "locomotion" not in kinds and not verb_lemma(_words((a, b)[kinds.index("body")])[0]) in SEQUENCE_BODY:
            return [clause], False  # "leans forward and calls someone over" is one action
        return [a, b], set(kinds) == {"locomotion", "arm"}
    return [clause], False


def _split_together(clause: str) -> tuple[str, str] | None:
    """(main clause, arm clause) of an 'at once' clause, or None."""
    if _first_verb(_words(clause)) != 0 and not clause.startswith(("while ", "whilst ")):
        return None  # a fronted phrase ("with a strong, manly stride, a person waves"): one action
    m = _WITH_ARM.search(clause) or _WITH_BOTH.search(clause)
    if m and kind_of(clause[:m.start()]) == "locomotion":
        side = m.group(1) if m.re is _WITH_ARM else "both"
        noun = m.group(2) if m.re is _WITH_ARM else "hands"
        if side == "both" or noun.endswith("s"):
            arm = "raises both hands"
        else:
            arm = f"raises {'the ' + side + ' ' if side else 'a '}{noun}"
        rest = (clause[:m.start()] + " " + clause[m.end():]).strip(" ,")
        return rest, arm
    m = _TOGETHER.search(clause)
    if m and m.start() > 0:
        a, b = clause[:m.start()].strip(" ,"), clause[m.end():].strip(" ,")
        if a and b and _first_verb(_words(_strip_subject(b))) == 0:
            return _strip_subject(a), _third_person(_strip_subject(b))
    m = re.match(r"^(?:while|whilst)\s+(.+?),\s*(.+)$", clause)
    if m:
        return _strip_subject(m[2]), _third_person(_strip_subject(m[1]))
    m = _PARTICIPLE.search(clause)
    if m and m.start() > 0 and kind_of(clause[:m.start()]) == "locomotion" and _words(clause[:m.start()])[-1] != "by":
        return clause[:m.start()].strip(" ,"), _third_person(clause[m.start():].strip(" ,"))
    return None


def _step(person: str, clause: str, together: str | None = None) -> Step:
    clause, seconds = clause_length(clause)  # a duration in the clause ("waves for 3 s") is the step's own length
    return Step(f"{person} {_third_person(_strip_subject(clause))}", kind_of(clause), seconds,
                None if together is None else f"{person} {together}")


def make_plan(prompt: str) -> Plan:
    """The plan of a prompt (see the module docstring). Raises InputError for an empty prompt."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt is empty: describe the motion, e.g. 'a person walks forward, then bows'")
    text = _clean(prompt)
    text = re.sub(r"^(?:first|firstly|to start|at first)\s*,?\s+", "", text)
    fronted = re.match(r"^(after|before|while|whilst)\s+([^,]+),\s*(.+)$", text)
    if fronted:  # "after bowing, an old man walks ahead": the person comes after the fronted clause
        person, rest = split_person(fronted[3])
        rest = f"{fronted[1]} {fronted[2]}, {rest}"
    else:
        person, rest = split_person(text)
    steps: list[Step] = []
    for clause in split_sequence(rest):
        clause = _strip_subject(clause)
        pair = _split_together(clause)
        if pair is not None and {kind_of(pair[0]), kind_of(pair[1])} == {"locomotion", "arm"}:
            main, arm = pair if kind_of(pair[0]) == "locomotion" else pair[::-1]
            steps.append(_step(person, main, _third_person(arm)))
            continue
        if pair is not None:  # two actions at once that cannot be composed: the model reads them as one prompt
            steps.append(_step(person, clause))
            continue
        parts, together = _split_and(clause)
        if together:
            main, arm = parts if kind_of(parts[0]) == "locomotion" else parts[::-1]
            steps.append(_step(person, main, _third_person(arm)))
        else:
            steps.extend(_step(person, p) for p in parts)
    steps = _merge_turns(steps, person)
    if len(steps) == 1 and steps[0].together is None or any(s.kind == "other" for s in steps):
        # one action, or a clause the plan cannot place: the model reads the prompt as the user wrote it
        return Plan(person, [Step(prompt.strip(), kind_of(prompt))])
    return Plan(person, steps)


def _merge_turns(steps: list[Step], person: str) -> list[Step]:
    """Locomotion followed by a turn is one step (the model's walk-and-turn actions)."""
    out: list[Step] = []
    for s in steps:
        prev = out[-1] if out else None
        if prev and prev.kind == "locomotion" and prev.together is None and s.together is None and _is_turn(s.prompt):
            out[-1] = Step(f"{prev.prompt} and then {s.prompt[len(person) + 1:]}", "locomotion")
        else:
            out.append(s)
    return out
