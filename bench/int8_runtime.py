"""What int8 token transformers on ONNX Runtime cost in quality and give in speed, measured on the shipped model.

    python bench/int8_runtime.py [--data data_cache/bandai] [--repeats 1] [--split test]

The imported published models' Fast (int8) precision runs the token transformers' weight matrices as int8
columns (`runtime.templates._quantize_matmuls`, ONNX Runtime's DynamicQuantizeMatMul). The published models
cannot be evaluated here (neither their files nor HumanML3D are available), so the same quantization is applied
to the shipped model's runtime (as the zip carries it) and both are evaluated with `bamm eval`'s protocol (our
evaluator, held-out phrasings): FID, action and style accuracy, diversity; plus how many base tokens the two
share on the held-out prompts (same seeds) and the median time of one 196-frame generation, one thread.
Prints a table; the machine is named.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def int8_copy(runtime: Path, out: Path) -> Path:
    """`runtime` with its token transformers' graphs quantized (made once, under .cache/bench/)."""
    import json

    import onnx

    from model_core.runtime.templates import INT8_GRAPHS, _quantize_matmuls

    if (out / ".complete").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(runtime, out)
    info = json.loads((out / "runtime.json").read_text())
    for name in INT8_GRAPHS:
        path = out / info["graphs"][name]
        onnx.save_model(_quantize_matmuls(onnx.load(str(path))), str(path))
    (out / ".complete").write_text("")
    return out


def main() -> int:
    import numpy as np

    from model_core.cli.blender import CACHE, export_runtime
    from model_core.decoding.generate import Generator
    from model_core.eval.heldout import load_prompts
    from model_core.eval.protocol import evaluate, format_table
    from model_core.runtime.ort_nets import load_runtime

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT / "data_cache" / "bandai"))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--split", default="test")
    p.add_argument("--prompts", type=int, default=64, help="held-out prompts for the token agreement")
    args = p.parse_args()
    if not (Path(args.data) / "meta.jsonl").is_file():
        raise SystemExit(f"no data set in {args.data}: run `make data` first")
    runtime = export_runtime(ROOT, ROOT / "weights", CACHE)
    folders = {"float32": runtime, "int8": int8_copy(runtime, CACHE / "bench" / "shipped-int8")}
    gens = {k: Generator(load_runtime(v, "cpu", threads=1)) for k, v in folders.items()}
    prompts = [p.prompt for p in load_prompts()][:args.prompts]
    tokens = {k: [m.tokens[:, 0] for m in g.generate(prompts, seed=0)] for k, g in gens.items()}
    same = [np.mean(a[:min(len(a), len(b))] == b[:min(len(a), len(b))]) for a, b in zip(*tokens.values())]
    lengths = np.mean([len(a) == len(b) for a, b in zip(*tokens.values())])
    timing = {}
    for name, gen in gens.items():
        gen.generate("a person walks forward", frames=196, seed=0)
        runs = []
        for seed in range(5):
            start = time.perf_counter()
            gen.generate("a person walks forward", frames=196, seed=seed)
            runs.append(time.perf_counter() - start)
        timing[name] = statistics.median(runs)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"held-out prompts {len(prompts)}: same length {lengths:.0%}, base tokens shared {np.mean(same):.0%}")
    for name in gens:
        print(f"{name:>8}: one 196-frame generation {timing[name]:.3f} s (median of 5, one thread)")
    evaluator = ROOT / "weights" / "evaluator"
    for name, gen in gens.items():
        results = evaluate(gen, args.data, evaluator, split=args.split, repeats=args.repeats,
                           log=lambda m: print(m, file=sys.stderr))
        print(format_table(results, title=f"\n== {name} token transformers ({args.split} split, "
                                          f"{args.repeats} repeats)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
