"""Does the residual transformer fill in an action wherever it falls in a clip? Per action label.

    python bench/residual_fill.py [--weights weights] [--data data_cache/bandai] [--split train] [--seed 0]
                                   [--per-action 20]

Up to --per-action clips of each action (the first ones of the split, at least 8 tokens) are encoded by the
tokenizer; their base-layer codes are then given to the residual transformer (with the clip's first caption,
the default residual guidance and sampling), which fills in
layers 1..Q-1, and the result is decoded. Two windows per clip: the clip as it is (tokens from its first
frame) and the same clip without its first quarter (the action starts at another token position). Printed
per action: the pelvis-aligned MPJPE (mm) of the filled-in motion against the decoded real codes of the same
window, and the highest foot lift (ankles and toes above the window's lowest, metres; a kick is about 1 m):
real codes -> filled in, first at the clip's start, then shifted. The default split is train because the
rare actions of the Bandai-Namco data (call, kick, punch, respond, slash, dance) have no test clip.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_core.data.humanml3d import load_split  # noqa: E402
from model_core.decoding import loop as D  # noqa: E402
from model_core.decoding.generate import BAMM  # noqa: E402
from model_core.eval.dynamics import foot_lift  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights"))
    p.add_argument("--data", default=str(ROOT / "data_cache" / "bandai"))
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-action", type=int, default=20, help="at most this many clips of each action")
    args = p.parse_args()
    torch.set_num_threads(1)
    bamm = BAMM.from_pretrained(args.weights)
    f, limit = bamm.frames_per_token, bamm.max_tokens
    st = D.Settings()
    rows = defaultdict(lambda: {"clips": 0, "err": [[], []], "lift": [[], []]})
    for i, clip in enumerate(load_split(args.data, args.split)):
        n = min(len(clip.features) // f, limit)
        if n < 8:
            continue
        row = rows[clip.meta.get("content") or "(unlabelled)"]
        if row["clips"] >= args.per_action:
            continue
        row["clips"] += 1
        codes = bamm.features_to_codes(clip.features[: n * f])
        text = bamm.encode_text([clip.captions[0].text])
        for k, start in enumerate((0, n // 4)):
            real = codes[start:]
            filled = D.residual_layers(bamm.nets, real[None, :, 0], np.array([len(real)]), text, st,
                                       D.Sampler(args.seed + i))[0]
            a, b = bamm.decode(real)[1], bamm.decode(filled)[1]
            err = np.linalg.norm((b - b[:, :1]) - (a - a[:, :1]), axis=-1).mean() * 1000
            row["err"][k].append(float(err))
            row["lift"][k].append((foot_lift(a), foot_lift(b)))
    print(f"{args.weights} on {args.data} ({args.split}), seed {args.seed}")
    print(f"{'action':22s} {'clips':>5s} {'MPJPE mm: start / shifted':>26s}   {'foot lift m: start / shifted':>30s}")
    for action, row in sorted(rows.items()):
        err = [np.mean(e) for e in row["err"]]
        lift = [np.max(v, axis=0) for v in row["lift"]]
        print(f"{action:22s} {row['clips']:5d} {err[0]:12.1f} / {err[1]:5.1f}   "
              f"{lift[0][0]:5.2f} -> {lift[0][1]:4.2f} / {lift[1][0]:4.2f} -> {lift[1][1]:4.2f}")
    every = [e for row in rows.values() for e in zip(*row["err"])]
    print(f"{'all':22s} {len(every):5d} {np.mean([e[0] for e in every]):12.1f} / "
          f"{np.mean([e[1] for e in every]):5.1f}")


if __name__ == "__main__":
    main()
