"""Can the tokenizer write every action? Encode -> decode of each action's clips, per action label.

    python bench/tokenizer_actions.py [--weights weights] [--data data_cache/bandai] [--split train]

For every action (meta.jsonl "content") of the split: clips, pelvis-aligned MPJPE (mm, all joints and frames,
as `bamm eval` reports for the whole test split) and the action's peaks, real -> reconstructed: the highest
foot lift (ankles and toes above the clip's lowest, metres; a kick is about 1 m) and the widest horizontal
wrist reach from the pelvis (metres; a punch). The default split is train because five actions of the
Bandai-Namco data (call, kick, punch, respond, slash, one clip each, and the one dance) have no test clip:
their figures say what the transformers can be taught at all, not how the tokenizer generalises.
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
from model_core.eval.dynamics import foot_lift  # noqa: E402
from model_core.motion.features import recover_from_ric  # noqa: E402
from model_core.train.tokens import load_vq_run  # noqa: E402

WRISTS = [20, 21]


def wrist_reach(joints: np.ndarray) -> float:
    offsets = joints[:, WRISTS] - joints[:, :1]
    return float(np.linalg.norm(offsets[..., [0, 2]], axis=-1).max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights"), help="weights folder or tokenizer run")
    p.add_argument("--data", default=str(ROOT / "data_cache" / "bandai"))
    p.add_argument("--split", default="train")
    args = p.parse_args()
    torch.set_num_threads(1)
    vq, mean, std, _ = load_vq_run(args.weights, "cpu")
    rows = defaultdict(lambda: {"err": 0.0, "n": 0, "clips": 0, "lift": [], "reach": []})
    f = vq.config.frames_per_token
    with torch.inference_mode():
        for clip in load_split(args.data, args.split):
            n = len(clip.features) // f * f
            if n == 0:
                continue
            x = np.asarray(clip.features[:n], np.float32)
            codes = vq.encode(torch.from_numpy((x - mean) / std).float()[None])
            recon = vq.decode(codes)[0].numpy() * std + mean
            real = recover_from_ric(torch.from_numpy(x)).numpy()
            rec = recover_from_ric(torch.from_numpy(recon.astype(np.float32))).numpy()
            row = rows[clip.meta.get("content") or "(unlabelled)"]
            err = np.linalg.norm((rec - rec[:, :1]) - (real - real[:, :1]), axis=-1)
            row["err"] += float(err.sum()) * 1000
            row["n"] += err.size
            row["clips"] += 1
            row["lift"].append((foot_lift(real), foot_lift(rec)))
            row["reach"].append((wrist_reach(real), wrist_reach(rec)))
    print(f"{args.weights} on {args.data} ({args.split})")
    print(f"{'action':22s} {'clips':>5s} {'MPJPE mm':>9s}   {'foot lift m':>13s}   {'wrist reach m':>13s}")
    for action, row in sorted(rows.items()):
        lift, reach = np.max(row["lift"], axis=0), np.max(row["reach"], axis=0)
        print(f"{action:22s} {row['clips']:5d} {row['err'] / row['n']:9.1f}   {lift[0]:5.2f} -> {lift[1]:4.2f}"
              f"   {reach[0]:5.2f} -> {reach[1]:4.2f}")


if __name__ == "__main__":
    main()
