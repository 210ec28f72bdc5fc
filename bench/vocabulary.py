"""How well the vocabulary check (`model_core/vocabulary/`) separates prompts a model knows from prompts it
does not: the share of the written out-of-vocabulary prompts it flags (`bench/prompts_oov.jsonl`: everyday
motions, props, body parts and dance styles the Bandai-Namco clips do not hold, written terse, chatty, with
typos and in game-development jargon) and the share of the 336 held-out in-vocabulary prompts it flags
(`model_core/eval/prompts_heldout.jsonl`, written apart from the training captions; used here only to
measure). The development list the word lists were tuned on (`bench/prompts_vocab_dev.jsonl`) is reported
apart.

    python bench/vocabulary.py [--weights weights] [--list]
    python bench/vocabulary.py --real-words <word list> [--write]   # real words one edit from a motion word

Prints the two rates (targets: at least 95 % and at most 5 %); ``--list`` also prints every missed and every
wrongly flagged prompt. ``--real-words`` reads a plain word list (one word a line, e.g. MiniLM's vocab.txt)
and prints the words that the misspelling rule would otherwise read as a word of
`model_core/data/motion_words.json` (its "real_words" entry).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_core import vocabulary  # noqa: E402

OOV = ROOT / "bench" / "prompts_oov.jsonl"
DEV = ROOT / "bench" / "prompts_vocab_dev.jsonl"
HELDOUT = ROOT / "model_core" / "eval" / "prompts_heldout.jsonl"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rates(vocab: vocabulary.Vocabulary) -> dict:
    """{"oov": (flagged, n, misses), "heldout": (flagged, n, flagged rows), "dev_in"/"dev_oov": ...}."""
    out = {}
    oov = read(OOV)
    misses = [r["prompt"] for r in oov if vocab.check(r["prompt"]).in_vocabulary]
    out["oov"] = (len(oov) - len(misses), len(oov), misses)
    held = read(HELDOUT)
    flagged = [(r["prompt"], vocab.check(r["prompt"]).unrecognised) for r in held
               if not vocab.check(r["prompt"]).in_vocabulary]
    out["heldout"] = (len(flagged), len(held), flagged)
    dev = read(DEV)
    dev_in = [r["prompt"] for r in dev if not r["oov"]]
    dev_oov = [r["prompt"] for r in dev if r["oov"]]
    out["dev_in"] = (sum(not vocab.check(p).in_vocabulary for p in dev_in), len(dev_in), [])
    out["dev_oov"] = (sum(not vocab.check(p).in_vocabulary for p in dev_oov), len(dev_oov), [])
    return out


def real_words(path: Path) -> list[str]:
    """Words of the list (and their -s, -ing, -ed forms) that are no word of motion_words.json, yet one edit
    (the misspelling rule) from one."""
    stored, vocabulary.WORDS.real = vocabulary.WORDS.real, set()
    try:
        vocab = vocabulary.Vocabulary()
        found = []
        listed = [w.strip() for w in path.read_text(encoding="utf-8").splitlines()]
        listed = [w for w in listed if w.isalpha() and w.islower() and len(w) >= 3]
        for word in dict.fromkeys(listed + [f for w in listed for f in vocabulary._inflections(w)]):
            if len(word) < 4 or word in vocabulary.WORDS.base:
                continue
            if vocab.lemma(word) in vocabulary.WORDS.base:
                continue
            item = vocab._item(word, word, 0)
            if item is not None and item.lemma != word:
                found.append(word)
    finally:
        vocabulary.WORDS.real = stored
    return sorted(set(found))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights"), help="weights or runtime folder (its vocab.json)")
    p.add_argument("--list", action="store_true", help="print the missed and the wrongly flagged prompts")
    p.add_argument("--real-words", metavar="FILE", help="print the real words of FILE one edit from a motion word")
    p.add_argument("--write", action="store_true", help="with --real-words: store them in motion_words.json")
    args = p.parse_args()
    if args.real_words:
        found = " ".join(real_words(Path(args.real_words)))
        if args.write:
            path = ROOT / "model_core" / "data" / "motion_words.json"
            text = path.read_text(encoding="utf-8")
            start = text.index('"real_words": "') + len('"real_words": "')
            path.write_text(text[:start] + found + text[text.index('"', start):], encoding="utf-8")
            json.loads(path.read_text(encoding="utf-8"))
        print(found)
        return
    vocab = vocabulary.for_folder(args.weights)
    t0 = time.perf_counter()
    r = rates(vocab)
    n_checks = sum(v[1] for v in r.values())
    ms = 1000 * (time.perf_counter() - t0) / max(1, n_checks)
    print(f"vocabulary of {args.weights}: {vocab.source}")
    flagged, n, misses = r["oov"]
    print(f"out-of-vocabulary prompts flagged: {flagged}/{n} = {100 * flagged / n:.1f} % (target >= 95 %)")
    flagged, n, rows = r["heldout"]
    print(f"held-out in-vocabulary prompts flagged: {flagged}/{n} = {100 * flagged / n:.1f} % (target <= 5 %)")
    a, na, _ = r["dev_oov"]
    b, nb, _ = r["dev_in"]
    print(f"development list: {a}/{na} out-of-vocabulary flagged, {b}/{nb} in-vocabulary flagged")
    print(f"{ms:.2f} ms per prompt")
    if args.list:
        for prompt in r["oov"][2]:
            print(f"  missed: {prompt}")
        for prompt, words in r["heldout"][2]:
            print(f"  flagged: {prompt}  ({', '.join(words)})")


if __name__ == "__main__":
    main()
