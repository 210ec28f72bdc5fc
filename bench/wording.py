"""Does the model follow prompts written in the words people use? One motion per held-out prompt
(model_core/eval/prompts_heldout.jsonl), classified by the evaluator's action/style classifier, next to the same
classifier's accuracy on the real test and validation clips of the same actions and styles (training clips
for the labels that have none: punch, kick, slash, call, respond, dance, a few styles; marked *).

    python bench/wording.py [--weights weights] [--evaluator weights/evaluator] [--data data_cache/bandai]
                            [--prompts FILE] [--seed 0] [--length median|predicted] [--limit N] [--json OUT]
                            [--cfg 2 1] [--res-cfg 4] [--temperature 1] [--rounds 2]

Each motion is generated at the median length of the real test clips of its action (``--length predicted``
lets the model end it). Prints action and style accuracy overall and per label with the ratio to real clips
(targets: action >= 0.90, style >= 0.75) and the most frequent wrong predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_core.contract.limits import InputError  # noqa: E402
from model_core.contract.request import DEFAULT_CFG, DEFAULT_RES_CFG  # noqa: E402
from model_core.data.humanml3d import load_stats  # noqa: E402
from model_core.decoding.generate import BAMM  # noqa: E402
from model_core.eval import heldout  # noqa: E402
from model_core.eval.protocol import classify, load_test_clips  # noqa: E402
from model_core.eval.train_evaluator import load_evaluator  # noqa: E402


def generate(bamm, prompts, frames: dict | None, *, seed: int, mean, std, batch: int = 16,
             **decoding) -> list[np.ndarray]:
    """Normalised features (T, 263) of one motion per prompt, batched by length; deterministic for a seed."""
    groups = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[None if frames is None else frames[p.action]].append(i)
    out: list = [None] * len(prompts)
    for length, idx in sorted(groups.items(), key=lambda kv: kv[0] or 0):
        for b in range(0, len(idx), batch):
            chunk = idx[b:b + batch]
            motions = bamm.generate([prompts[i].prompt for i in chunk], frames=length, seed=seed + chunk[0],
                                    **decoding)
            for i, m in zip(chunk, motions):
                out[i] = ((m.features - mean) / std).astype(np.float32)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights"))
    p.add_argument("--evaluator", default=str(ROOT / "weights" / "evaluator"))
    p.add_argument("--data", default=str(ROOT / "data_cache" / "bandai"), help="labelled dataset (test split)")
    p.add_argument("--prompts", default=str(heldout.DEFAULT_PROMPTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--length", choices=["median", "predicted"], default="median")
    p.add_argument("--cfg", type=float, nargs=2, default=DEFAULT_CFG, metavar=("FIRST", "REFINE"),
                   help="guidance of the first pass and of the refinement passes (the generator's defaults)")
    p.add_argument("--res-cfg", type=float, default=DEFAULT_RES_CFG, help="guidance of the residual layers")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=2, help="token passes (first pass + refinement passes)")
    p.add_argument("--limit", type=int, default=None, help="first N prompts only (a quick look)")
    p.add_argument("--json", default=None, help="also write the result, and each prompt's predicted labels, as "
                   "JSON to this file")
    args = p.parse_args()
    if not (Path(args.data) / "meta.jsonl").is_file():
        raise SystemExit(f"no labelled dataset in {args.data}: build one with 'bamm data build bandai' (or --data)")
    if not (Path(args.evaluator) / "classifier.json").is_file():
        raise SystemExit(f"no classifier in {args.evaluator} (pass --evaluator)")
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"--limit must be at least 1, got {args.limit}")
    torch.set_num_threads(1)
    try:
        prompts = heldout.load_prompts(args.prompts)[: args.limit]
    except ValueError as exc:
        raise SystemExit(str(exc)) from None

    start = time.time()
    mean, std = load_stats(args.data)
    _, classifier, labels = load_evaluator(args.evaluator)
    clips = load_test_clips(args.data, "test", mean, std) + load_test_clips(args.data, "val", mean, std)
    real = heldout.real_accuracy(*classify(classifier, [c.features for c in clips]), clips, labels)
    # actions / styles without a held-out real clip (some exist only in the training split): training clips
    wanted = {q.action for q in prompts} - set(real["action"])
    wanted_styles = {heldout.same_style(q.style) for q in prompts if q.style} - set(real["style"])
    extra = [c for c in load_test_clips(args.data, "train", mean, std)
             if c.content in wanted or heldout.same_style(c.style) in wanted_styles]
    from_train: dict = {}
    if extra:
        real, from_train = heldout.fill_missing(
            real, heldout.real_accuracy(*classify(classifier, [c.features for c in extra]), extra, labels))
    frames = heldout.median_frames(clips + extra) if args.length == "median" else None
    if frames is not None:
        missing = sorted({q.action for q in prompts} - set(frames))
        if missing:
            raise SystemExit(f"no real clips of {', '.join(missing)} to take a length from: use --length predicted")
    bamm = BAMM.from_pretrained(args.weights)
    try:
        features = generate(bamm, prompts, frames, seed=args.seed, mean=mean, std=std, cfg=tuple(args.cfg),
                            res_cfg=args.res_cfg, temperature=args.temperature, rounds=args.rounds)
    except InputError as exc:  # a decoding setting out of range
        raise SystemExit(str(exc)) from None
    pred_contents, pred_styles = classify(classifier, features)
    result = heldout.score_prompts(prompts, pred_contents, pred_styles, labels, real, from_train=from_train)
    print(f"{len(prompts)} prompts, weights {args.weights}, seed {args.seed}, length {args.length}, "
          f"cfg {args.cfg[0]:g}/{args.cfg[1]:g}, res_cfg {args.res_cfg:g}, temperature {args.temperature:g}, "
          f"rounds {args.rounds}, "
          f"{time.time() - start:.0f} s")
    print(heldout.format_report(result))
    if args.json:
        result["per_prompt"] = [{"prompt": q.prompt, "action": q.action, "style": q.style,
                                 "got_action": labels["contents"][c], "got_style": labels["styles"][s]}
                                for q, c, s in zip(prompts, pred_contents, pred_styles)]
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
