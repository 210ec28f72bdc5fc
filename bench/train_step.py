"""Seconds per optimiser step of each trainer (forward + backward + AdamW), on synthetic batches of the
training shapes: tokenizer (B, 64, 263) windows, transformers (B, 49) / (B, 49, Q) codes with 384-d text.

    python bench/train_step.py --preset small --threads 2
    python bench/train_step.py --preset paper --device cuda --batch-size 256

Prints ms/step and the wall time of the preset's default step count (data loading, validation and
checkpoints add a few percent).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_core.models.residual import RES_PRESETS, ResidualTransformer  # noqa: E402
from model_core.models.transformer import T2M_PRESETS, BAMMTransformer  # noqa: E402
from model_core.models.vq import VQ_PRESETS, RVQVAE  # noqa: E402
from model_core.train.common import make_optimizer  # noqa: E402
from model_core.train.tokens import RES_TRAIN_PRESETS, T2M_TRAIN_PRESETS  # noqa: E402
from model_core.train.vq import TRAIN_PRESETS as VQ_TRAIN_PRESETS  # noqa: E402
from model_core.train.vq import WINDOW  # noqa: E402

TEXT_DIM = 384  # all-MiniLM-L6-v2
TOKENS = 49  # 196 frames


def stage_setup(stage: str, preset: str, batch: int, device):
    """(model, train config, batch builder) for one stage at one preset."""
    vq_config = VQ_PRESETS[preset]
    q, codes_n = vq_config.num_quantizers, vq_config.code_num
    if stage == "vq":
        model, train = RVQVAE(vq_config), VQ_TRAIN_PRESETS[preset]
        mean, std = torch.zeros(263, device=device), torch.ones(263, device=device)

        def step_loss():
            return model.loss(torch.randn(batch, WINDOW, 263, device=device) * 0.5, mean=mean, std=std)[0]
        return model, train, step_loss
    presets, cls, train = ((T2M_PRESETS, BAMMTransformer, T2M_TRAIN_PRESETS[preset]) if stage == "t2m" else
                           (RES_PRESETS, ResidualTransformer, RES_TRAIN_PRESETS[preset]))
    overrides = {"code_num": codes_n, "text_dim": TEXT_DIM}
    if stage == "res":
        overrides["num_quantizers"] = q
    config = dataclasses.replace(presets[preset], **overrides)
    model = cls(config)
    n = min(TOKENS, config.max_tokens - (stage == "t2m"))

    def step_loss():
        codes = torch.randint(codes_n, (batch, n, q), device=device)
        lengths = torch.randint(n // 2, n + 1, (batch,), device=device)
        text = torch.randn(batch, TEXT_DIM, device=device)
        if stage == "t2m":
            return model.loss(codes[..., 0], lengths, text)[0]
        return model.loss(codes, text, lengths)[0]
    return model, train, step_loss


def bench(stage: str, preset: str, batch: int | None, steps: int, device) -> None:
    torch.manual_seed(0)
    if batch is None:
        batch = {"vq": VQ_TRAIN_PRESETS, "t2m": T2M_TRAIN_PRESETS, "res": RES_TRAIN_PRESETS}[stage][preset].batch_size
    model, train, step_loss = stage_setup(stage, preset, batch, device)
    model.to(device).train()
    optimizer = make_optimizer(model, train)
    times, cpu = [], []
    for i in range(steps + 2):  # two warm-up steps
        t, c = time.perf_counter(), time.process_time()
        loss = step_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    times.sort()
    median, cpu_median = times[len(times) // 2], sorted(cpu)[len(cpu) // 2]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    # CPU time per step is what one thread needs on an idle core (wall time grows when the cores are shared)
    print(f"{stage:4s} {preset:6s} batch {batch:4d}  {params:6.2f} M params  wall {median * 1000:7.1f} ms/step "
          f"(min {times[0] * 1000:.1f})  cpu {cpu_median * 1000:7.1f} ms/step  default {train.steps} steps -> "
          f"{median * train.steps / 60:.1f} min wall", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="small", choices=["tiny", "small", "paper"])
    p.add_argument("--stage", nargs="*", default=["vq", "t2m", "res"])
    p.add_argument("--batch-size", type=int, help="default: the preset's")
    p.add_argument("--steps", type=int, default=10, help="timed steps per stage")
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for stage in args.stage:
        bench(stage, args.preset, args.batch_size, args.steps, torch.device(args.device))


if __name__ == "__main__":
    main()
