"""Dynamics of real, tokenizer-reconstructed and generated motion on a dataset split, and where plain prompts
travel: what an animator sees (jitter, foot skate, feet through the floor, walking the wrong way).

    python bench/dynamics.py --data <dataset> [--weights weights] [--split test] [--limit 80] [--rounds 2]
                             [--temperature T] [--top-k K] [--res-cfg S]

Prints, for ``--limit`` clips of the split taken from each action label in turn (0 = all):

- the dynamics table (``model_core/eval/dynamics.py``: median over clips, then mean over clips) of the real
  clips, their tokenizer encode -> decode reconstructions and motions generated at the clip's length from one
  held-out caption phrasing per clip (as ``bamm eval`` does), with the ratios to real;
- the share of directed locomotion clips (walk, run, walk-back, ...) travelling the way their label / caption
  says, real vs generated;
- the action classifier's (``<weights>/evaluator``) walk / walk-back confusion on these real clips;
- for a handful of plain prompts, three seeds each (one batch per seed) at the model's own length: frames,
  travel direction, forward and leftward distance (metres, in the body's frame), the clip's foot skate and
  the action classifier's label.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = ("a person walks forward", "a person walks", "someone walks forward", "a man walks forward slowly",
           "a person walks backwards", "a person runs forward")
SEEDS = (0, 1, 2)


def by_content(contents: list[str], limit: int) -> list[int]:
    """Indices of ``limit`` clips taken from each content label in turn (first clip of every label, then the
    second, ...), so that rare labels (one walk-back clip) are in; all clips when limit is 0 or larger."""
    groups = defaultdict(list)
    for i, c in enumerate(contents):
        groups[c].append(i)
    order = [g[k] for k in range(max(map(len, groups.values()))) for g in groups.values() if k < len(g)]
    return sorted(order[:limit] if limit > 0 else order)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset folder (HumanML3D layout with meta.jsonl labels)")
    p.add_argument("--weights", default=str(ROOT / "weights"))
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--limit", type=int, default=80,
                   help="clips of the split, taken from each action label in turn (0 = all)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the model's)")
    p.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens")
    p.add_argument("--res-cfg", type=float, default=None, help="residual transformer guidance scale")
    args = p.parse_args(argv)
    if args.limit < 0:
        raise SystemExit("bench/dynamics.py: --limit must be >= 0")
    for path, what in ((args.data, "dataset"), (args.weights, "weights")):
        if not Path(path).is_dir():
            raise SystemExit(f"bench/dynamics.py: {what} folder not found: {path}")

    from model_core.data.humanml3d import load_stats
    from model_core.decoding.generate import BAMM
    from model_core.eval import dynamics as dyn
    from model_core.eval.protocol import (classify, generate_features, joints_of, load_test_clips,
                                          pick_captions, reconstruct_joints, walk_confusion)
    from model_core.eval.train_evaluator import load_evaluator

    started = time.time()
    bamm = BAMM.from_pretrained(args.weights)
    mean, std = load_stats(args.data)
    clips = load_test_clips(args.data, args.split, mean, std)
    clips = [clips[i] for i in by_content([c.content for c in clips], args.limit)]
    feats = [c.features for c in clips]
    contents = [c.content for c in clips]
    real = joints_of(feats, mean, std)
    recon = reconstruct_joints(bamm, feats, mean, std)
    caps = pick_captions(clips, 0)
    settings = {k: v for k, v in (("temperature", args.temperature), ("top_k", args.top_k),
                                  ("res_cfg", args.res_cfg)) if v is not None}
    gen_feats = generate_features(bamm, caps, [len(f) for f in feats], seed=args.seed, rounds=args.rounds,
                                  mean=mean, std=std, **settings)
    gen = joints_of(gen_feats, mean, std)
    sets = {"real": real, "reconstruction": recon, "generated": gen}
    print(f"{len(clips)} {args.split} clips of {args.data}, weights {args.weights}, rounds {args.rounds}, "
          f"seed {args.seed}, sampling {settings or 'default'} ({time.time() - started:.0f} s)")
    for statistic in ("median", "mean"):
        table = {name: dyn.set_dynamics(js, statistic=statistic) for name, js in sets.items()}
        print("\n" + dyn.format_dynamics_table(table, title=f"dynamics, {statistic} over clips"))

    print("\ndirected locomotion travelling the way the label / caption says:")
    for name in ("real", "generated"):
        share, n = dyn.direction_matches(sets[name], contents)
        print(f"  {name:<10} {share:6.3f} of {n} clips")
    evaluator = Path(args.weights) / "evaluator"
    names = None
    if (evaluator / "classifier.json").is_file():
        _, classifier, labels = load_evaluator(evaluator)
        names = labels["contents"]
        gen_labels = [names[k] for k in classify(classifier, gen_feats)[0]]
    print(f"  {'content':<16} {'clips':>5}  real directions -> generated directions"
          + (" [classifier's labels of the generated clips]" if names else ""))
    for content in sorted({c for c in contents if c in dyn.EXPECTED_DIRECTION}):
        idx = [i for i, c in enumerate(contents) if c == content]
        real_dirs = [dyn.travel(real[i]).direction for i in idx]
        gen_dirs = [dyn.travel(gen[i]).direction for i in idx]
        said = f" [{_counts([gen_labels[i] for i in idx])}]" if names else ""
        print(f"  {content:<16} {len(idx):>5}  {_counts(real_dirs)} -> {_counts(gen_dirs)}{said}")

    if names:
        print("\naction classifier on the real clips, walk vs walk-back:")
        truth = np.array([names.index(c) if c in names else -1 for c in contents])
        walk_confusion(defaultdict(list), classify(classifier, feats)[0], truth, names, lambda m: print("  " + m))

    print(f"\nplain prompts, seeds {', '.join(map(str, SEEDS))}, the model's own length:")
    print(f"  {'prompt':<30} {'seed':>4} {'frames':>6} {'direction':>9} {'fwd m':>7} {'left m':>7} {'skate m/s':>9}"
          + ("  classifier" if names else ""))
    motions = {seed: bamm.generate(list(PROMPTS), seed=seed, rounds=args.rounds) for seed in SEEDS}
    for k, prompt in enumerate(PROMPTS):
        for seed in SEEDS:
            motion = motions[seed][k]
            t = dyn.travel(motion.joints)
            said = ""
            if names:
                x = ((motion.features - mean) / std).astype(np.float32)
                said = "  " + names[int(classify(classifier, [x])[0][0])]
            print(f"  {prompt:<30} {seed:>4} {len(motion.joints):>6} {t.direction:>9} {t.forward_m:>7.2f} "
                  f"{t.left_m:>7.2f} {dyn.foot_skate(motion.joints):>9.3f}{said}")
    print(f"\ntotal {time.time() - started:.0f} s")
    return 0


def _counts(values: list[str]) -> str:
    """"forward 3, backward 1": each distinct value (in first-seen order) with its count."""
    return ", ".join(f"{v} {values.count(v)}" for v in dict.fromkeys(values))


if __name__ == "__main__":
    sys.exit(main())
