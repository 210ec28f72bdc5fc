"""Do the hand-written locomotion prompts travel the way they say? Every held-out prompt
(model_core/eval/prompts_heldout.jsonl) of the chosen actions, generated at a fixed length for several seeds;
each clip's pelvis travel in the body frame (`eval.dynamics.travel`: forward, backward, left, right or in
place) against the directions its action expects (`eval.dynamics.EXPECTED_DIRECTION`).

    python bench/walk_direction.py [--weights weights] [--actions walk,walk-back] [--seeds 0 1 2 3 4]
                                   [--frames 120] [--cfg 2 1] [--list]

Prints, per action, how many clips went each way and the share that went an expected way; ``--list`` also
prints every prompt whose clips went a wrong way (with the seeds). Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_core.contract.limits import InputError  # noqa: E402
from model_core.contract.request import DEFAULT_CFG  # noqa: E402
from model_core.decoding.generate import BAMM  # noqa: E402
from model_core.eval import heldout  # noqa: E402
from model_core.eval.dynamics import EXPECTED_DIRECTION, travel  # noqa: E402

WAYS = ("forward", "backward", "left", "right", "in place")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights"))
    p.add_argument("--prompts", default=str(heldout.DEFAULT_PROMPTS))
    p.add_argument("--actions", default="walk,walk-back",
                   help=f"comma-separated actions, or 'all' ({', '.join(EXPECTED_DIRECTION)})")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--cfg", type=float, nargs=2, default=DEFAULT_CFG, metavar=("FIRST", "REFINE"))
    p.add_argument("--list", action="store_true", help="print the prompts that went a wrong way")
    args = p.parse_args()
    actions = list(EXPECTED_DIRECTION) if args.actions == "all" else args.actions.split(",")
    unknown = [a for a in actions if a not in EXPECTED_DIRECTION]
    if unknown:
        raise SystemExit(f"no expected direction for {', '.join(unknown)} "
                         f"(choose from {', '.join(EXPECTED_DIRECTION)})")
    try:
        prompts = [q for q in heldout.load_prompts(args.prompts) if q.action in actions]
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if not prompts:
        raise SystemExit(f"no prompt of {', '.join(actions)} in {args.prompts}")
    torch.set_num_threads(1)
    bamm = BAMM.from_pretrained(args.weights)
    start = time.time()
    ways: dict[str, Counter] = defaultdict(Counter)
    wrong: dict[str, list] = defaultdict(list)
    for seed in args.seeds:
        try:
            motions = bamm.generate([q.prompt for q in prompts], frames=args.frames, seed=seed, cfg=tuple(args.cfg))
        except InputError as exc:
            raise SystemExit(str(exc)) from None
        for q, m in zip(prompts, motions):
            way = travel(m.joints).direction
            ways[q.action][way] += 1
            if way not in EXPECTED_DIRECTION[q.action]:
                wrong[q.prompt].append(f"{seed}:{way}")
    print(f"{args.weights}: {len(prompts)} prompts x {len(args.seeds)} seeds, {args.frames} frames, cfg {args.cfg} "
          f"({time.time() - start:.0f} s)")
    print(f"{'action':16s} " + " ".join(f"{w:>9s}" for w in WAYS) + "  expected way")
    for action in actions:
        c = ways[action]
        n = sum(c.values())
        if n:
            hit = sum(c[w] for w in EXPECTED_DIRECTION[action])
            print(f"{action:16s} " + " ".join(f"{c[w]:9d}" for w in WAYS) + f"  {hit}/{n} ({hit / n:.2f})")
    if args.list:
        for prompt, seeds in sorted(wrong.items(), key=lambda kv: -len(kv[1])):
            print(f"  {prompt!r}: {' '.join(seeds)}")


if __name__ == "__main__":
    main()
