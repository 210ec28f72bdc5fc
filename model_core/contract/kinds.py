"""The kind of an action: which part of the body carries it (locomotion, arm, body or other), read from the
first action verb of a clause. Pure Python (no numpy): the plan splits and joins clauses by their kinds
(`plan.py`), and the words about pace apply to locomotion alone (`amounts.py`).

    kind_of("a person walks forward")     # "locomotion"
    kind_of("waves with the right hand")  # "arm"
    verb_lemma("bows")                    # "bow"
"""

from __future__ import annotations

from ..data.pos_tags import tag_word

KINDS = ("locomotion", "arm", "body", "other")

# verb lemmas by the body part that carries the action (first verb of a clause decides its kind)
LOCOMOTION = set("walk run jog sprint dash stroll march stride step pace amble trot race rush hurry bolt charge "
                 "tread retreat limp head go move cross approach wander back leave stagger shuffle tiptoe hike "
                 "saunter drift veer".split())
ARM = set("wave raise lift punch slash point guide gesture beckon salute clap greet answer respond say hold swing "
          "box jab signal call throw reach strike hack shake".split())
BODY = set("bow kick dance jump hop skip sit crouch squat kneel spin turn bend lean stretch nod fall stand climb "
           "crawl sway stomp".split())


def verb_lemma(word: str) -> str | None:
    """The verb lemma of a word, or None."""
    lemma, pos = tag_word(word.strip(",.;:!?"))
    return lemma if pos == "VERB" else None


def kind_of(clause: str) -> str:
    """locomotion / arm / body / other: the kind of the clause's first action verb."""
    words = [w.strip(",.;:!?") for w in clause.lower().split()]
    legs, hands = {"leg", "legs", "knee", "knees", "foot", "feet"}, {"hand", "hands", "arm", "arms"}
    if legs & set(words) and not hands & set(words):
        if any(verb_lemma(w) in ARM | BODY for w in words):
            return "body"
    for w in words:
        lemma = verb_lemma(w)
        for kind, verbs in (("locomotion", LOCOMOTION), ("arm", ARM), ("body", BODY)):
            if lemma in verbs:
                return kind
    if hands & set(words):
        return "arm"
    return "other"
