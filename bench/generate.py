"""Latency of generating one 196-frame motion with random weights: KV cache vs. no cache vs. the reference loop.

    python bench/generate.py [--presets paper small official] [--repeat 5] [--threads 1 2] [--device cpu]

For each preset and torch thread count, three ways of running the same cascaded decoding (unidirectional
pass with guidance until 49 tokens, one bidirectional refinement of every other token, residual layers,
tokenizer decode, joints) are timed, each in its own process so that its peak memory (max RSS) is its own:

- ``cache``: ``BAMM.generate``'s decoding, incremental with a KV cache (cond + uncond in one batch);
- ``cache-int8``: the same with int8 token transformers (``BAMM.quantize_int8``, CPU);
- ``no-cache``: the same decoding recomputing the whole prefix / sequence at every step;
- ``onnx`` / ``onnx-int8`` (preset ``official`` only): the same decoding on ONNX Runtime over the runtime
  folder the add-on's Import Published Model writes (``runtime/published.py``) from random checkpoints of the
  published sizes, float32 or int8 token transformers;
- ``reference``: the official code's loop: the whole 50-token sequence recomputed at every one of 49 steps
  of both passes, cond and uncond concatenated into one doubled batch.

Preset ``official``: the architecture of the published checkpoints (``bamm import-official``) at paper size
(8 post-norm layers, width 384, 512-d text), decoded with the official profile (``decoding.official_settings``:
first pass, one refinement of the first half, residual top-k, 50-slot tokenizer decode); its ``reference`` is
the official code's loop doing the same work: every step of both passes over the whole 50-token sequence,
every residual layer as two separate passes (conditional, unconditional) over all 50 slots.

Text encoding is timed on its own. Prints median seconds, the speed-up over the reference and the peak RSS,
then this machine's single-thread memory bandwidth and matrix throughput with the floor they set: every
cached step reads all transformer weights once (memory-bound at batch 2), and the residual transformer runs
Q - 1 full passes over a doubled batch (compute-bound).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "a person walks forward, turns around and sits down"
SEED = 0


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reference_ids(t2m, text_emb, *, cfg, sampler, keep):
    """The official decoding loop's base tokens (1, max_tokens): 49 steps per pass, the whole sequence every
    step, a doubled CFG batch; the refinement pass re-predicts the tokens where `keep` (bool, (max_tokens,)) is
    False."""
    import numpy as np
    import torch

    from model_core.decoding.loop import guide
    from model_core.models.transformer import hybrid_attention_mask

    c = t2m.config
    steps = c.max_tokens - 1
    text = t2m.text_token(torch.from_numpy(text_emb).repeat(2, 1), torch.tensor([False, True]))
    ids = torch.full((1, c.max_tokens), c.pad_id, dtype=torch.long)
    causal = hybrid_attention_mask(torch.zeros(2, c.max_tokens + 1, dtype=torch.bool), True)
    for k in range(steps):
        logits = guide(t2m(ids.repeat(2, 1), text, causal)[:, k].numpy(), 2, cfg[0])
        ids[:, k] = torch.from_numpy(sampler.draw(logits, 1.0, None)[0])
    ids[:, steps] = c.end_id
    unmasked = torch.cat([torch.tensor([True]), keep | (ids[0] == c.end_id)])[None].repeat(2, 1)
    hybrid = hybrid_attention_mask(unmasked)
    for k in range(steps):
        logits = guide(t2m(ids.repeat(2, 1), text, hybrid)[:, k].numpy(), 2, cfg[1])
        logits[:, c.end_id] = -np.inf
        new = torch.from_numpy(sampler.draw(logits, 1.0, None)[0])
        if not keep[k]:
            ids[:, k] = new
    return ids


def reference_base(t2m, text_emb, *, cfg, sampler):
    """The official decoding loop with every other token re-predicted: (base tokens, lengths)."""
    import numpy as np
    import torch

    steps = t2m.config.max_tokens - 1
    keep = torch.arange(t2m.config.max_tokens) % 2 == 1  # re-predict every other token
    ids = reference_ids(t2m, text_emb, cfg=cfg, sampler=sampler, keep=keep)
    return ids[:, :steps].numpy(), np.array([steps])


def official_reference(model, text_emb, *, st, sampler):
    """The official code's loop for the official profile: base tokens as `reference_base` with the first
    round(n / 2) tokens refined, each residual layer as two whole-sequence passes, 50 decoded slots."""
    import numpy as np
    import torch

    from model_core.decoding.loop import guide

    t2m, res = model.t2m, model.res
    c = t2m.config
    steps = c.max_tokens - 1
    keep = torch.arange(c.max_tokens) >= round(steps / 2)  # the first half is re-predicted
    ids = reference_ids(t2m, text_emb, cfg=st.cfg, sampler=sampler, keep=keep)
    q = res.config.num_quantizers
    codes = torch.zeros(1, c.max_tokens, q, dtype=torch.long)
    codes[..., 0] = ids.masked_fill(ids >= c.code_num, 0)  # [END] and PAD slots are padding here
    valid = torch.arange(c.max_tokens)[None] < steps
    emb = torch.from_numpy(text_emb)
    for j in range(1, q):
        layer = torch.tensor([j])
        cond = res.layer_logits(codes, layer, emb, torch.tensor([False]), valid).numpy()
        uncond = res.layer_logits(codes, layer, emb, torch.tensor([True]), valid).numpy()
        pred = sampler.draw(guide(np.concatenate([cond, uncond]), 2, st.res_cfg), 1.0, st.res_top_k)[0]
        codes[..., j] = torch.from_numpy(np.where(valid.numpy(), pred, 0))
    codes[:, steps:] = -1
    return codes.numpy()


class RandomText:
    """512-d CLIP-sized text vectors for the official preset (text encoding is not what is timed here)."""

    name, dim = "random-512", 512

    def to(self, device):
        return self

    def encode(self, prompts):
        import torch

        return torch.randn(len(prompts), self.dim, generator=torch.Generator().manual_seed(0))


def official_model(device: str):
    """Random weights in the architecture of the published checkpoints, paper size."""
    import dataclasses

    import numpy as np
    import torch

    from model_core.decoding.generate import BAMM
    from model_core.models.residual import RES_PRESETS, ResidualTransformer
    from model_core.models.transformer import T2M_PRESETS, BAMMTransformer
    from model_core.models.vq import RVQVAE, VQ_PRESETS

    torch.manual_seed(0)
    cfg = VQ_PRESETS["paper"]
    vq = RVQVAE(cfg)
    for i in range(cfg.num_quantizers):
        vq.quantizer.layers[i].initialise(torch.randn(cfg.code_num, cfg.code_dim))
    t2m = BAMMTransformer(dataclasses.replace(T2M_PRESETS["paper"], text_dim=512, arch="official"))
    res = ResidualTransformer(dataclasses.replace(RES_PRESETS["paper"], text_dim=512, arch="official"))
    return BAMM(text_encoder=RandomText(), vq=vq, t2m=t2m, res=res, mean=np.zeros(263, np.float32),
                std=np.ones(263, np.float32), device=device)


def official_runtime(threads: int, precision: str = "float32"):
    """A Generator over the ONNX Runtime folder that the add-on's Import Published Model writes from random
    checkpoints of the published sizes ([END] banned) in `precision`, cached under .cache/bench/."""
    from model_core.cli.blender import CACHE, export_templates
    from model_core.decoding.generate import Generator
    from model_core.runtime.ort_nets import load_runtime
    from model_core.runtime.published import import_published

    folder = CACHE / "bench" / f"official-runtime-{precision}"
    if not (folder / "runtime.json").is_file():
        sys.path.insert(0, str(ROOT / "tests"))
        from support.official_ckpt import random_clip_file, write_official

        ckpt = CACHE / "bench" / "official-checkpoints"
        if not (ckpt / "ViT-B-32.pt").is_file():
            write_official(ckpt, seed=0, end_bias=-1e4, layers=8, vq_depth=3)
            random_clip_file(ckpt / "ViT-B-32.pt", width=512, layers=12, half=True)
        import_published(t2m=ckpt / "t2m.tar", res=ckpt / "res.tar", vq=ckpt / "vq/model/net_best_fid.tar",
                         clip=ckpt / "ViT-B-32.pt", out=folder, templates=export_templates(ROOT, CACHE),
                         precision=precision)
    return Generator(load_runtime(folder, "cpu", threads=threads))


def run_one(preset: str, mode: str, repeat: int, threads: int, device: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from model_core.decoding import loop as D
    from model_core.decoding.generate import BAMM

    official = preset == "official"
    if mode in ("onnx", "onnx-int8"):
        if not official:
            raise SystemExit(f"mode {mode}: the official preset only (the imported published model)")
        return run_onnx(repeat, threads, "int8" if mode == "onnx-int8" else "float32")
    model = official_model(device) if official else BAMM.random(preset=preset, device=device, seed=0)
    # 196 frames from the unidirectional pass: with random weights END is rare; ban it to be sure
    head = model.t2m.head[-1] if official else model.t2m.head
    head.bias.data[model.t2m.config.end_id] = -1e4
    if mode == "cache-int8":
        model.quantize_int8()
    loaded = rss_mib()
    t_text, t_gen, n_tokens = [], [], 0
    st = D.official_settings() if official else \
        D.Settings()  # the generator's defaults
    for r in range(repeat + 1):  # the first run warms up
        t0 = time.perf_counter()
        text_emb = model.encode_text([PROMPT])
        t1 = time.perf_counter()
        with torch.inference_mode():
            sampler = D.Sampler(SEED + r)
            if official and mode == "reference":
                codes = official_reference(model, text_emb, st=st, sampler=sampler)
                lengths = [model.t2m.config.max_tokens - 1]
                feats, joints = model.decode(codes[0])
                joints = joints[:4 * lengths[0]]
            else:
                if mode == "reference":
                    base, lengths = reference_base(model.t2m, text_emb, cfg=st.cfg, sampler=sampler)
                else:
                    base, lengths = D.base_tokens(model.nets, text_emb, batch=1, st=st, sampler=sampler,
                                                  use_cache=mode != "no-cache")
                codes = D.residual_layers(model.nets, base, lengths, text_emb, st, sampler)
                tokens = codes[0, :int(lengths[0])]
                feats, joints = model.decode(D.decoder_codes(tokens, st, model.max_tokens + 1))
                joints = joints[:4 * len(tokens)]
        t2 = time.perf_counter()
        n_tokens = int(lengths[0])
        if r:
            t_text.append(t1 - t0)
            t_gen.append(t2 - t1)
    return {"preset": preset, "mode": mode, "threads": threads, "frames": len(joints), "tokens": n_tokens,
            "text_s": statistics.median(t_text), "gen_s": statistics.median(t_gen),
            "rss_loaded_mib": loaded, "rss_peak_mib": rss_mib()}


def run_onnx(repeat: int, threads: int, precision: str) -> dict:
    """Modes ``onnx`` / ``onnx-int8``: the official profile's decoding on the imported runtime folder in
    `precision` (ONNX Runtime, `threads` intra-op threads), text embeddings as the torch modes get them."""
    import numpy as np

    from model_core.decoding import loop as D

    gen = official_runtime(threads, precision)
    loaded = rss_mib()
    st = D.official_settings()
    text_emb = np.asarray(RandomText().encode([PROMPT]), np.float32)
    t_gen = []
    for r in range(repeat + 1):
        t1 = time.perf_counter()
        sampler = D.Sampler(SEED + r)
        base, lengths = D.base_tokens(gen.nets, text_emb, batch=1, st=st, sampler=sampler)
        codes = D.residual_layers(gen.nets, base, lengths, text_emb, st, sampler)
        tokens = codes[0, :int(lengths[0])]
        feats, joints = gen.decode(D.decoder_codes(tokens, st, gen.max_tokens + 1))
        joints = joints[:4 * len(tokens)]
        if r:
            t_gen.append(time.perf_counter() - t1)
    return {"preset": "official", "mode": "onnx-int8" if precision == "int8" else "onnx", "threads": threads, "frames": len(joints),
            "tokens": int(lengths[0]), "text_s": 0.0, "gen_s": statistics.median(t_gen),
            "rss_loaded_mib": loaded, "rss_peak_mib": rss_mib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["paper", "small"])
    p.add_argument("--modes", nargs="+", default=["reference", "cache", "cache-int8", "no-cache"])
    p.add_argument("--threads", nargs="+", type=int, default=[1])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process: one measurement
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.presets[0], args.modes[0], args.repeat, args.threads[0], args.device)))
        return
    load = os.getloadavg()[0]
    if args.threads == [1] and "--threads" not in sys.argv:
        print("(one torch thread; compare with --threads 1 2)")
    print(f"{os.cpu_count()} CPU cores, load average {load:.1f} at start; median of {args.repeat} runs, "
          f"prompt {PROMPT!r}")
    print(f"{'preset':<7} {'thr':>3} {'mode':<10} {'frames':>6} {'text s':>7} {'generate s':>10} "
          f"{'vs ref':>7} {'RSS loaded':>10} {'RSS peak':>9}")
    for preset in args.presets:
        for threads in args.threads:
            results = {}
            for mode in args.modes:
                cmd = [sys.executable, __file__, "--one", "--presets", preset, "--modes", mode, "--threads",
                       str(threads), "--repeat", str(1 if mode == "reference" else args.repeat),
                       "--device", args.device]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                results[mode] = r = json.loads(out.strip().splitlines()[-1])
                ref = results.get("reference")
                ratio = f"{ref['gen_s'] / r['gen_s']:6.1f}x" if ref else "      -"
                print(f"{preset:<7} {threads:>3} {mode:<10} {r['frames']:>6} {r['text_s']:>7.3f} {r['gen_s']:>10.3f} "
                      f"{ratio:>7} {r['rss_loaded_mib']:>8.0f}Mi {r['rss_peak_mib']:>7.0f}Mi", flush=True)
            if "reference" in results:
                for mode in ("cache", "cache-int8", "no-cache", "onnx", "onnx-int8"):
                    if mode in results:
                        print(f"{'':<7} {'':>3} speed-up of {mode} over the reference loop: "
                              f"{results['reference']['gen_s'] / results[mode]['gen_s']:.1f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    for preset in args.presets:
        print(floor("paper" if preset == "official" else preset))


def floor(preset: str) -> str:
    """Bandwidth / throughput floor of the cached decoding on one thread of this machine."""
    import torch

    from model_core.models.residual import RES_PRESETS
    from model_core.models.transformer import T2M_PRESETS
    from model_core.models.vq import VQ_PRESETS

    torch.set_num_threads(1)
    big = torch.randn(32 * 2**20)
    big.sum()
    t = time.perf_counter()
    big.sum()
    bandwidth = big.numel() * 4 / (time.perf_counter() - t)
    a = torch.randn(768, 768)
    a @ a
    t = time.perf_counter()
    a @ a
    flops = 2 * 768**3 / (time.perf_counter() - t)
    c, r = T2M_PRESETS[preset], RES_PRESETS[preset]
    block = lambda d, ff, n: n * (4 * d * d + 2 * d * ff)  # noqa: E731  weights of n transformer blocks
    steps = c.max_tokens - 1
    ar = block(c.latent_dim, c.ff_dim, c.n_layers) * 4 * steps / bandwidth
    passes = VQ_PRESETS[preset].num_quantizers - 1
    res = 2 * block(r.latent_dim, r.ff_dim, r.n_layers) * 2 * (steps + 2) * passes / flops
    return (f"{preset}: {bandwidth / 1e9:.1f} GB/s, {flops / 1e9:.0f} GFLOP/s on one thread -> floor of the "
            f"unidirectional pass {ar:.2f} s ({steps} weight reads), of the residual layers {res:.2f} s")


if __name__ == "__main__":
    main()
