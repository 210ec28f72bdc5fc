"""A small rule-based lemma/part-of-speech tagger for motion captions.

HumanML3D stores each caption with its tokens as ``lemma/POS`` (universal POS tags, punctuation
dropped), e.g. ``a/DET man/NOUN kick/VERB with/ADP his/DET left/ADJ leg/NOUN``. This tagger knows the
closed word classes and the vocabulary of motion descriptions (verbs with their inflections, body
parts, manner adjectives); other words fall back on suffix rules and finally NOUN.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_CLOSED = {
    "DET": "a an the this that these those some any each every both all another no his her their its my your our",
    "PRON": "he she it they them him me we us you i someone somebody something anyone anybody everyone nobody "
            "himself herself themselves themself itself one",
    "ADP": "with without in on at to from into onto over under by for of across along around behind through toward "
           "towards like as before after above below between about against down off out up",
    "AUX": "is are was were be been being am has have had does do did will would can could should may might must",
    "CCONJ": "and or but nor",
    "SCONJ": "while if because though although until whereas",
    "PART": "not",
    "NUM": "zero one two three four five six seven eight nine ten once twice",
    "ADV": "forward forwards backward backwards back ahead away again then still very too also just there here "
           "sideways together straight fast high low around upward upwards downward skyward leftward rightward "
           "mid-stride forth partway overhead only",
    "INTJ": "hi",
    "ADJ": "left right poised big small heavy old young elderly tired exhausted worn-out happy sad angry proud shy timid "
           "insecure confident macho tough manly graceful elegant childish little active energetic lively "
           "theatrical musical showy huge lumbering giant cocky unhappy furious cheerful normal ordinary relaxed "
           "possible full several few long short open imaginary broad dainty ladylike childlike youthful "
           "downcast forceful masculine feminine male strong soft delicate plain everyday average joyful "
           "sorrowful miserable enraged arrogant pleased unsure self-conscious burly frail weary spirited "
           "enormous wannabe drained exaggerated complete steady top quick slow large small-time upper outstretched hunched "
           "big closer even moderate other polite able afraid aged annoyed anxious athletic bad boastful deep "
           "delighted depressed dignified easy flat glad gloomy good haughty heartbroken hesitant irritated mad "
           "martial massive muscular nervous peppy playful respectful self-assured sleepy slight sporty stiff "
           "superior tall teenage uncertain usual worn yakuza forward-left forward-right right-handed two-handed "
           "fatigued aggressive brisk casual clumsy dejected double feeble flamboyant formal full-speed gleeful hard "
           "kiddish menacing merry mournful nimble ponderous slanted sluggish springy swaggering swift threatening "
           "thuggish vigorous welcoming dramatic both-arms-up bye-bye come-here double-handed hands-up left-hand "
           "left-handed one-handed right-hand this-way",
}
_VERBS = (
    "walk run dash step move take bow bend wave raise lift put throw punch kick slash swing make cut dance "
    "perform do turn sprint jog burst stride lean call beckon gesture point guide extend say answer respond look "
    "hang puff hold drag come go jump sit stand stroll pace head retreat back race rush box strike deliver show "
    "direct summon bust act change lower carry drift hold reply greet spin squat crouch climb fall kneel "
    "stretch shake push pull give pick place hop skip march sway rotate circle clap stumble limp bid break hack lead "
    "shout trot veer signal amble attack bolt charge cross fight groove hit hurry invite keep reach see slice "
    "snap tread usher yell motion reverse lack fume grieve grin smile cry play feel stomp watch collapse use jab "
    "curve end"
)
_IRREGULAR = {
    "ran": "run", "running": "run", "took": "take", "taken": "take", "threw": "throw", "thrown": "throw",
    "made": "make", "did": "do", "done": "do", "went": "go", "gone": "go", "held": "hold", "swung": "swing",
    "bent": "bend", "stood": "stand", "sat": "sit", "sitting": "sit", "came": "come", "said": "say",
    "cutting": "cut", "putting": "put", "stepping": "step", "hopping": "hop", "skipping": "skip",
    "jogging": "jog", "getting": "get", "swimming": "swim", "fell": "fall", "knelt": "kneel", "spun": "spin",
    "spinning": "spin", "dragging": "drag", "busting": "bust", "boxing": "box", "drifting": "drift",
    "goes": "go", "broke": "break", "led": "lead", "bidding": "bid", "jabbing": "jab", "trotting": "trot",
    "snapping": "snap", "hitting": "hit",
    "grinning": "grin", "drooping": "droop", "raging": "rage", "intimidating": "intimidate",
}
_NOUNS = (
    "person people man men woman women child children kid guy lady human individual figure character body "
    "hand arm leg foot feet head waist chest shoulder knee hip elbow wrist finger fist torso back neck "
    "step line way direction circle side angle time air sword blade posture manner mood smile energy flair "
    "stage limb street lot thug punk hoodlum teenager adult senior performer actor dancer boy girl brute gangster "
    "motion routine speed pace confidence rage swagger gait bearing gesture farewell goodbye hello vigour "
    "pep show broadway movement sprint bow kick punch wave dance turn gesture spirits age stiffness wannabe "
    "something somewhere ground floor chair ball door wall table stair move answer response bye jab cross music "
    "reverse sweep diagonal slant enemy anger animation audience ballerina bounce breath capture champion citizen "
    "clip combination corner creature delinquent dude face friend front grandma grandpa hook hooligan joint joy "
    "katana ogre play pride question recording room scowl song sorrow spring student target temper theatre tilt "
    "toddler tour troll underling vigor youth art shadowboxing pose series number"
)

_TAGS: dict[str, tuple[str, str]] = {}  # word -> (lemma, POS)
_NOUN_FORMS: dict[str, str] = {}  # every noun form -> lemma, also for words tagged VERB by default


def _verb_forms(base: str) -> list[str]:
    if base.endswith(("s", "sh", "ch", "x")):
        third = base + "es"
    elif base.endswith("y") and base[-2] not in "aeiou":
        third = base[:-1] + "ies"
    else:
        third = base + "s"
    stem = base[:-1] if base.endswith("e") and not base.endswith("ee") else base
    return [base, third, stem + "ing", stem + "ed" if not base.endswith("e") else base + "d"]


def _build() -> None:
    for noun in _NOUNS.split():
        _NOUN_FORMS[noun] = _NOUN_FORMS[noun + "s"] = noun
        _TAGS.setdefault(noun, (noun, "NOUN"))
        _TAGS.setdefault(noun + "s", (noun, "NOUN"))
    for irregular, lemma in (("men", "man"), ("women", "woman"), ("children", "child"), ("feet", "foot"),
                             ("people", "person")):
        _TAGS[irregular] = (lemma, "NOUN")
    for base in _VERBS.split():
        for form in _verb_forms(base):
            _TAGS[form] = (base, "VERB")
    for form, base in _IRREGULAR.items():
        _TAGS[form] = (base, "VERB")
    for pos, words in _CLOSED.items():  # closed classes and adjectives win over the open lists
        for word in words.split():
            _TAGS[word] = (word, pos)
    _TAGS["is"] = _TAGS["are"] = _TAGS["am"] = _TAGS["was"] = _TAGS["were"] = ("be", "AUX")


_build()

_VERB_BASES = set(_VERBS.split())


def _typo_table() -> dict[str, str]:
    """Misspelling -> the word it stands for, from the caption lexicon (training captions carry a few)."""
    path = Path(__file__).with_name("caption_lexicon.json")
    typos = json.loads(path.read_text(encoding="utf-8")).get("typos", {}) if path.exists() else {}
    return {typo: word for word, spellings in typos.items() for typo in spellings}


_TYPO_FIX = _typo_table()

_ADJ_EXCEPTIONS = {"lively", "elderly", "friendly", "early", "ugly", "lonely", "likely", "only"}
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def is_known(word: str) -> bool:
    """True when ``word`` is in the lexicon, a known misspelling of a lexicon word, or an ``-ly`` adverb
    (not a guess by the fallback rules)."""
    word = _TYPO_FIX.get(word.lower(), word.lower())
    return word in _TAGS or (word.endswith("ly") and word not in _ADJ_EXCEPTIONS)


def tag_word(word: str) -> tuple[str, str]:
    """(lemma, POS) of one lower-case word; a known misspelling gets the tags of the word it stands for."""
    word = _TYPO_FIX.get(word.lower(), word.lower())
    if word in _TAGS:
        return _TAGS[word]
    if word.isdigit():
        return word, "NUM"
    if word.endswith("ly") and word not in _ADJ_EXCEPTIONS:
        return word, "ADV"
    if word.endswith(("ful", "ous", "ive", "ish", "less", "able", "ible")):
        return word, "ADJ"
    if word.endswith("ing") and len(word) > 5:
        return word[:-3], "VERB"
    return word, "NOUN"


def tag_caption(text: str) -> list[tuple[str, str]]:
    """[(lemma, POS), ...] for the words of a caption; punctuation is dropped.

    Three context rules: a word that can be a noun or a verb ("takes a bow", "gives a wave") is a noun when it
    follows DET or ADJ after the sentence's first verb ("a giant steps back" keeps its verb); a verb's base
    form that starts the caption is a verb (an imperative: "back up", "wave your right hand"); "do" is a verb
    when no verb follows it ("does a kick").
    """
    tags: list[tuple[str, str]] = []
    for word in _WORD.findall(text.lower()):
        lemma, pos = tag_word(word)
        if not tags and _TYPO_FIX.get(word, word) in _VERB_BASES:
            lemma, pos = _TYPO_FIX.get(word, word), "VERB"
        after_verb = any(p == "VERB" for _, p in tags)
        if pos == "VERB" and after_verb and tags[-1][1] in ("DET", "ADJ") and word in _NOUN_FORMS:
            lemma, pos = _NOUN_FORMS[word], "NOUN"
        tags.append((lemma, pos))
    for k, (lemma, pos) in enumerate(tags):  # "does a kick": 'do' is the main verb unless a verb follows
        if lemma in ("do", "does", "did") and pos == "AUX" and (k + 1 == len(tags) or tags[k + 1][1] != "VERB"):
            tags[k] = ("do", "VERB")
    return tags


def tokens_string(text: str) -> str:
    """The HumanML3D tokens field: ``lemma/POS`` joined by spaces."""
    return " ".join(f"{lemma}/{pos}" for lemma, pos in tag_caption(text))
