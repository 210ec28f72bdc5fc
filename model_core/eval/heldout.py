"""Held-out prompt set in the words people use, and the action/style accuracy of motions generated from it.

``prompts_heldout.jsonl`` (next to this module) holds prompts written by hand, independently of the training
caption templates, one JSON object per line: ``{"prompt": str, "action": content label, "style": style label
or null}``. None of them shares four words in a row with a training caption of its action and style
(``training_wording_overlap``; a prompt without a style is checked against the 'normal' captions), nor is
one a training caption.

``score_prompts`` generates one motion per prompt and classifies it with the action/style classifier of the
evaluator folder; ``real_accuracy`` gives the same classifier's accuracy on real test clips per action and per
style, the ceiling a generated clip can be compared with. Style labels that mean the same style in the two
archives ("old" / "elderly") count as one, on both sides.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.captions import ACTIONS, STYLE_ALIASES, STYLES, correct_typos, training_caption_pool, words_of

DEFAULT_PROMPTS = Path(__file__).with_name("prompts_heldout.jsonl")


@dataclass(frozen=True, kw_only=True)
class HeldOutPrompt:
    prompt: str
    action: str  # content label, e.g. "wave-left-hand"
    style: str | None  # style label, or None when the prompt does not ask for one


def same_style(style: str) -> str:
    """One name for the labels the two archives use for the same style ("old" -> "elderly")."""
    return STYLE_ALIASES.get(style, style)


def load_prompts(path: str | Path = DEFAULT_PROMPTS) -> list[HeldOutPrompt]:
    """The prompts of a JSON-lines file; a bad line is a ValueError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"prompt file {path} not found")
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from None
        if not isinstance(row, dict) or set(row) != {"prompt", "action", "style"}:
            raise ValueError(f"{where}: expected an object with keys prompt, action, style")
        prompt, action, style = row["prompt"], row["action"], row["style"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{where}: prompt must be a non-empty string")
        if action not in ACTIONS:
            raise ValueError(f"{where}: unknown action {action!r}")
        if style is not None and same_style(style) not in STYLES:
            raise ValueError(f"{where}: unknown style {style!r} (or null)")
        out.append(HeldOutPrompt(prompt=prompt, action=action, style=style))
    if not out:
        raise ValueError(f"prompt file {path} holds no prompts")
    return out


def _runs(words: list[str], n: int = 4) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def training_wording_overlap(prompt: HeldOutPrompt) -> tuple[str, set[tuple[str, ...]]] | None:
    """(a training caption, the four-word runs it shares with the prompt) when the prompt repeats training
    wording (or is itself a training caption), else None. Misspellings the lexicon knows are read as the word
    they stand for."""
    words = words_of(correct_typos(prompt.prompt.lower()))
    runs = _runs(words)
    for caption in training_caption_pool(prompt.action, prompt.style or "normal"):
        caption_words = words_of(caption)
        shared = _runs(caption_words) & runs
        if shared or caption_words == words:
            return caption, shared
    return None


def median_frames(clips, *, multiple: int = 4) -> dict[str, int]:
    """Median length in frames (rounded down to ``multiple``) of the clips of each action; clips have
    ``.content`` and ``.features`` (T, D)."""
    by_action = defaultdict(list)
    for clip in clips:
        by_action[clip.content].append(len(clip.features))
    return {a: max(multiple, int(np.median(t)) // multiple * multiple) for a, t in by_action.items()}


def _ids(names: list[str], labels: list[str], what: str) -> np.ndarray:
    index = {name: k for k, name in enumerate(labels)}
    missing = sorted(set(names) - set(index))
    if missing:
        raise ValueError(f"the classifier does not know the {what} label(s) {', '.join(missing)}")
    return np.array([index[n] for n in names], np.int64)


def real_accuracy(pred_contents: np.ndarray, pred_styles: np.ndarray, clips, labels: dict) -> dict:
    """Classifier accuracy on real clips: {"action": {content: acc}, "style": {style: acc}} (styles merged)."""
    contents = [labels["contents"][k] for k in pred_contents]
    styles = [same_style(labels["styles"][k]) for k in pred_styles]
    hits = {"action": defaultdict(list), "style": defaultdict(list)}
    for clip, c, s in zip(clips, contents, styles):
        hits["action"][clip.content].append(c == clip.content)
        hits["style"][same_style(clip.style)].append(s == same_style(clip.style))
    return {kind: {k: float(np.mean(v)) for k, v in table.items()} for kind, table in hits.items()}


def fill_missing(real: dict, fallback: dict) -> tuple[dict, dict[str, set[str]]]:
    """``real`` with the labels it lacks taken from ``fallback`` (e.g. training clips for actions that have no
    test clip); returns (merged, {"action": names filled, "style": names filled})."""
    merged, filled = {}, {}
    for kind in ("action", "style"):
        filled[kind] = set(fallback.get(kind, {})) - set(real.get(kind, {}))
        merged[kind] = {**{k: fallback[kind][k] for k in filled[kind]}, **real.get(kind, {})}
    return merged, filled


def score_prompts(prompts: list[HeldOutPrompt], pred_contents: np.ndarray, pred_styles: np.ndarray, labels: dict,
                  real: dict, *, from_train: dict[str, set[str]] | None = None) -> dict:
    """Accuracies of generated clips (one per prompt, classified) next to real clips' for the same labels.

    Returns {"action": {...}, "style": {...}, "per_action": {action: row}, "per_style": {style: row}}; each
    summary has "generated", "real" (the real per-label accuracy averaged over the prompts) and "ratio";
    a row has "prompts", "generated", "real", "real_from_train" (``from_train``: labels whose real accuracy
    comes from training clips, the classifier's own training data) and "confusions" (the most frequent wrong
    predictions).
    """
    from_train = from_train or {}
    if not len(prompts) == len(pred_contents) == len(pred_styles):
        raise ValueError(f"{len(prompts)} prompts but {len(pred_contents)} / {len(pred_styles)} predictions")
    got_action = [labels["contents"][k] for k in pred_contents]
    got_style = [same_style(labels["styles"][k]) for k in pred_styles]
    out: dict = {}
    for kind, key, got in (("action", lambda p: p.action, got_action),
                           ("style", lambda p: p.style and same_style(p.style), got_style)):
        rows: dict[str, dict] = {}
        groups = defaultdict(list)
        for p, g in zip(prompts, got):
            if key(p) is not None:
                groups[key(p)].append(g)
        for name, predicted in sorted(groups.items()):
            wrong = Counter(g for g in predicted if g != name)
            rows[name] = {"prompts": len(predicted), "generated": float(np.mean([g == name for g in predicted])),
                          "real": real[kind].get(name), "real_from_train": name in from_train.get(kind, ()),
                          "confusions": wrong.most_common(3)}
        n = sum(r["prompts"] for r in rows.values())
        gen = sum(r["generated"] * r["prompts"] for r in rows.values()) / max(n, 1)
        known = [r for r in rows.values() if r["real"] is not None]
        ref = sum(r["real"] * r["prompts"] for r in known) / max(1, sum(r["prompts"] for r in known))
        out[kind] = {"prompts": n, "generated": gen, "real": ref, "ratio": gen / ref if ref else float("nan")}
        out[f"per_{kind}"] = rows
    return out


def format_report(result: dict, *, targets=(0.90, 0.75)) -> str:
    """Readable table of ``score_prompts``' result."""
    lines = []
    for kind, target in zip(("action", "style"), targets):
        s = result[kind]
        verdict = "met" if s["ratio"] >= target else "not met"
        lines.append(f"{kind} accuracy: generated {s['generated']:.3f}, real clips {s['real']:.3f}, "
                     f"ratio {s['ratio']:.2f} (target {target:.2f}: {verdict}; {s['prompts']} prompts)")
    for kind in ("action", "style"):
        lines.append(f"\nper {kind}: prompts  generated  real  most frequent wrong predictions")
        for name, r in result[f"per_{kind}"].items():
            real = "  -  " if r["real"] is None else f"{r['real']:.2f}" + ("*" if r["real_from_train"] else " ")
            wrong = ", ".join(f"{g} {c}" for g, c in r["confusions"])
            lines.append(f"  {name:20s} {r['prompts']:4d}   {r['generated']:.2f}   {real} {wrong}")
    if any(r["real_from_train"] for kind in ("action", "style") for r in result[f"per_{kind}"].values()):
        lines.append("* no held-out real clip of this label: accuracy on training clips (the classifier's own data)")
    return "\n".join(lines)
