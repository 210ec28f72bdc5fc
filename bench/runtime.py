"""Warm generation time of one 9.8 s clip (196 frames) on the shipped weights: torch vs ONNX Runtime.

    python bench/runtime.py [--runtime DIR] [--repeat 5] [--threads 1]

Exports the runtime from weights/ into DIR first when DIR has no runtime.json. Both back ends run the same
decoding loop (`model_core/decoding/loop.py`) with the same seeds; each call is `generate(prompt, frames=196)`
(text encoding, cascade with one refinement round, residual layers, decode, joints). Prints the median over
`--repeat` runs after one warm-up, whether the tokens agree, and the runtime folder's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "a person walks forward, turns around and sits down"


def timed(gen, repeat: int) -> tuple[float, list]:
    gen.generate(PROMPT, frames=196, seed=0)  # warm-up
    times, tokens = [], []
    for r in range(repeat):
        t = time.perf_counter()
        motion = gen.generate(PROMPT, frames=196, seed=r + 1)[0]
        times.append(time.perf_counter() - t)
        tokens.append(motion.tokens)
    return statistics.median(times), tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtime", default=str(ROOT / ".cache" / "bench-runtime"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import numpy as np
    import torch

    from model_core.decoding.generate import BAMM, Generator
    from model_core.runtime.export import export_runtime
    from model_core.runtime.ort_nets import load_runtime

    folder = Path(args.runtime)
    if not (folder / "runtime.json").is_file():
        print(f"exporting the runtime to {folder}")
        export_runtime(ROOT / "weights", folder)
    torch.set_num_threads(args.threads)
    t_torch, tok_torch = timed(BAMM.from_pretrained(ROOT / "weights"), args.repeat)
    t_ort, tok_ort = timed(Generator(load_runtime(folder, "cpu", threads=args.threads)), args.repeat)
    same = sum(np.array_equal(a, b) for a, b in zip(tok_torch, tok_ort))
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    print(f"196 frames, {args.threads} thread(s), median of {args.repeat}: torch {t_torch:.3f} s, "
          f"ONNX Runtime {t_ort:.3f} s ({t_torch / t_ort:.2f}x); identical tokens in {same}/{args.repeat} runs")
    print(f"runtime folder {folder}: {size / 2**20:.1f} MiB")
    for f in sorted(folder.iterdir()):
        if f.is_file():
            print(f"  {f.name:<20} {f.stat().st_size / 2**20:7.1f} MiB")


if __name__ == "__main__":
    main()
