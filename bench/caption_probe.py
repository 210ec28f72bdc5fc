"""How much of a caption's action can be read from the text encoder's sentence embedding, for wording it has
and has not seen: the ceiling any model conditioned on that embedding works under.

    python bench/caption_probe.py [--data data_cache/bandai] [--encoder minilm] [--noise 0 1 2] [--repeats 4]
                                  [--split test] [--prompts model_core/eval/prompts_heldout.jsonl]

A linear classifier (softmax regression, Adam, full batch) learns the content label (walk, wave-left-hand ...)
from the embeddings of the training split's captions, with Gaussian noise of s times each embedding's RMS
added in training (``models.layers.noisy_text``, the transformers' ``--text-noise``). It is then scored on
the test (or validation) clips' captions as ``bamm eval`` picks them: held-out wording (the protocol) and
training wording.
Prints the accuracies and, for held-out wording, the most frequent confusions. With ``--prompts`` it also
scores the hand-written prompts of that file (``bench/wording.py``'s, written apart from the templates) for
the action and, with a second probe trained on the captions' style labels, for the style (the same alias
merging as ``bench/wording.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_core.data.humanml3d import load_split, load_stats  # noqa: E402
from model_core.eval import heldout  # noqa: E402
from model_core.eval.protocol import load_test_clips, pick_captions  # noqa: E402
from model_core.eval.train_evaluator import clip_labels  # noqa: E402
from model_core.models.layers import noisy_text  # noqa: E402
from model_core.models.text import encode_all, load_text_encoder  # noqa: E402


def fit_probe(x: torch.Tensor, y: torch.Tensor, classes: int, *, noise: float, steps: int = 300,
              seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    probe = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(probe(noisy_text(x, noise)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe


def score_prompts(encoder, x, action_probes: dict, contents, train_styles, path) -> None:
    """Action and style probes on the hand-written prompts of `path`, one line per noise level: the action
    probes already fitted ({noise: probe} over `contents`), a style probe fitted here on the training captions'
    embeddings `x` and style names `train_styles`."""
    try:
        prompts = heldout.load_prompts(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(str(exc)) from None
    px = encode_all(encoder, [q.prompt for q in prompts])
    styles = sorted(set(train_styles))
    y_style = torch.tensor([styles.index(s) for s in train_styles])
    styled = [i for i, q in enumerate(prompts) if q.style and heldout.same_style(q.style) in styles]
    print(f"{len(prompts)} hand-written prompts ({path}), {len(styled)} with a style")
    for noise, action_probe in action_probes.items():
        line = []
        for kind, probe, names, rows, truth in (
                ("action", action_probe, contents, list(range(len(prompts))), [q.action for q in prompts]),
                ("style", fit_probe(x, y_style, len(styles), noise=noise), styles, styled,
                 [heldout.same_style(prompts[i].style) for i in styled])):
            with torch.no_grad():
                read = [names[k] for k in probe(px[rows]).argmax(1).tolist()]
            acc = sum(r == t for r, t in zip(read, truth)) / max(1, len(truth))
            wrong = Counter((t, r) for r, t in zip(read, truth) if r != t).most_common(1)
            line.append(f"{kind} {acc:.3f}" + (f" (most confused: {wrong[0][0][0]} -> {wrong[0][0][1]})"
                                                 if wrong else ""))
        print(f"noise {noise:g}: read from the hand-written prompts: " + ", ".join(line))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    p.add_argument("--data", default=str(ROOT / "data_cache" / "bandai"))
    p.add_argument("--encoder", default="minilm")
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    p.add_argument("--repeats", type=int, default=4, help="caption picks per test clip (as bamm eval's repeats)")
    p.add_argument("--split", default="test", choices=["val", "test"], help="the clips to read captions of")
    p.add_argument("--prompts", default=None, help="also score the hand-written prompts of this JSON-lines file "
                   "(e.g. model_core/eval/prompts_heldout.jsonl) for action and style")
    args = p.parse_args()
    if not (Path(args.data) / "meta.jsonl").is_file():
        raise SystemExit(f"no labelled dataset in {args.data}: run 'make data' first (or pass --data)")
    torch.set_num_threads(1)
    encoder = load_text_encoder(args.encoder)
    train_texts, train_labels, train_styles = [], [], []
    for clip in load_split(args.data, "train"):
        content, style = clip_labels(clip)
        train_texts += [c.text for c in clip.captions]
        train_labels += [content] * len(clip.captions)
        train_styles += [heldout.same_style(style)] * len(clip.captions)
    mean, std = load_stats(args.data)
    clips = load_test_clips(args.data, args.split, mean, std)
    contents = sorted(set(train_labels) | {c.content for c in clips})
    x, y = encode_all(encoder, train_texts), torch.tensor([contents.index(c) for c in train_labels])
    truth = torch.tensor([contents.index(c.content) for c in clips] * args.repeats)
    tests = {}
    for phrasings in ("held-out", "training"):
        texts = [t for r in range(args.repeats) for t in pick_captions(clips, r, phrasings)]
        tests[phrasings] = (texts, encode_all(encoder, texts))
    print(f"{len(train_texts)} training captions, {len(clips)} {args.split} clips x {args.repeats} captions, "
          f"encoder {args.encoder}")
    probes = {}
    for noise in args.noise:
        probe = probes[noise] = fit_probe(x, y, len(contents), noise=noise)
        with torch.no_grad():
            pred = {k: probe(v).argmax(1) for k, (_, v) in tests.items()}
        acc = {k: (v == truth).float().mean().item() for k, v in pred.items()}
        print(f"noise {noise:g}: action read from held-out wording {acc['held-out']:.3f}, "
              f"from training wording {acc['training']:.3f}")
    wrong = Counter((contents[t], contents[q]) for t, q in zip(truth.tolist(), pred["held-out"].tolist()) if t != q)
    print("most frequent confusions (true -> read), last probe:")
    for (t, q), n in wrong.most_common(8):
        print(f"  {n:4d}  {t} -> {q}")
    if args.prompts:
        score_prompts(encoder, x, probes, contents, train_styles, args.prompts)


if __name__ == "__main__":
    main()
