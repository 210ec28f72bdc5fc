"""Train the tokenizer (vq), the BAMM transformer (t2m) and the residual transformer (res), then assemble
a weights folder (export).

    bamm train vq  --data data_cache/bandai --preset small --out runs/vq
    bamm train t2m --data data_cache/bandai --preset small --vq runs/vq --out runs/t2m
    bamm train res --data data_cache/bandai --preset small --vq runs/vq --out runs/res
    bamm train export --vq runs/vq --t2m runs/t2m --res runs/res --out weights
    bamm train interpolate --weights weights --t2m runs/t2m --alpha 0.7 --out weights-mix

Add --resume to continue a killed run from its last checkpoint, --init <folder> to start a new run (a longer
schedule, other data) from trained weights. Several GPUs or nodes: launch the same
command with torchrun (e.g. `torchrun --nproc_per_node 4 -m model_core.cli train t2m ... --device cuda`);
--batch-size stays the global batch.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..data.humanml3d import DatasetError
from .common import TrainError, teardown_distributed


def _common(p: argparse.ArgumentParser, *, needs_vq: bool) -> None:
    p.add_argument("--data", help="dataset folder (HumanML3D layout, e.g. written by 'bamm data build')")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, best model")
    p.add_argument("--preset", help="model and schedule size: paper, small (default) or tiny")
    p.add_argument("--steps", type=int, help="optimiser steps (warm-up and milestones scale with it)")
    p.add_argument("--batch-size", type=int, help="global batch size (split across processes)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (1 when the cores are shared)")
    p.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after this many steps; "
                   "continue later with --resume")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--init", help="start from the weights of this run or weights folder (same preset; "
                   "fresh optimiser and schedule)")
    p.add_argument("--no-balance", dest="balance", action="store_const", const=False, default=None,
                   help="list every training item once per epoch (default: rare actions repeated, "
                   "round(sqrt(n_max / n)) times, at most 8)")
    p.add_argument("--balance-cap", type=int, help="most copies of one rare-action item per epoch (default 8; "
                   "an action with a single clip gets round(sqrt(n_max)) copies without a cap)")
    p.add_argument("--balance-style", action="store_const", const=True, default=None,
                   help="balance by (action, style) pair too: an item gets the larger of its action's and its "
                   "pair's copies, so that within one style a rare action does not outnumber a common one; an "
                   "action's copies grow with the epoch, so it keeps its share")
    if needs_vq:
        p.add_argument("--vq", help="tokenizer run folder (from 'bamm train vq') or weights folder with vq.*")
        p.add_argument("--text-encoder", help="text encoder: minilm-lexical (default), minilm or clip:<file>")
        p.add_argument("--cache-dir", help="where token and text-embedding caches go (default <out>/cache)")
        p.add_argument("--mirror", action="store_const", const=True, default=None,
                       help="also train on the mirror image of the training clips (left and right swapped in motion, "
                       "captions and action labels), as HumanML3D's mirrored copies; one-sided actions (a "
                       "right-handed goodbye, a kick) are left out")
        p.add_argument("--text-noise", type=float, help="Gaussian noise on text embeddings in training, in units "
                       "of the embedding's RMS (default: the preset's); helps unseen caption phrasings")


def parser() -> argparse.ArgumentParser:
    description, _, epilog = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(prog="bamm train", description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True)
    vq = sub.add_parser("vq", help="RVQ-VAE motion tokenizer")
    _common(vq, needs_vq=False)
    vq.add_argument("--decoder-only", action="store_true", default=None,
                    help="with --init: fine-tune only the decoder, so every motion keeps its tokens (transformers "
                    "trained on them stay valid)")
    vq.add_argument("--decoder-width", type=int, help="conv channels of the decoder (default: the --init "
                    "tokenizer's, else the preset's width); with --init a wider decoder starts as the stored one "
                    "and decodes the same")
    vq.add_argument("--width", type=int, help="conv channels of the encoder, and of the decoder unless "
                    "--decoder-width (default: the --init tokenizer's, else the preset's); with --init a wider "
                    "encoder starts as the stored one and gives the same tokens")
    vq.add_argument("--contact-root", action="store_const", const=True, default=None,
                    help="the decoded root follows the planted toes (motion.contact_root), in the loss and wherever "
                    "the tokenizer decodes (default: the --init tokenizer's setting, else off)")
    _common(sub.add_parser("t2m", help="BAMM transformer (base token layer)"), needs_vq=True)
    _common(sub.add_parser("res", help="residual transformer (token layers 1..Q-1)"), needs_vq=True)
    e = sub.add_parser("export", help="assemble a weights folder from the three runs")
    e.add_argument("--vq", required=True, help="tokenizer run folder")
    e.add_argument("--t2m", required=True, help="BAMM transformer run folder")
    e.add_argument("--res", required=True, help="residual transformer run folder")
    e.add_argument("--out", required=True, help="weights folder to write")
    e.add_argument("--last", action="store_true", help="take the t2m and res runs' last checkpoints instead of "
                   "their best-validation models (validation uses the training wording; a run for unseen "
                   "wording, e.g. more --text-noise, can be better at its end)")
    i = sub.add_parser("interpolate", help="a weights folder between the stored transformers and a run's "
                       "(WiSE-FT weight interpolation)")
    i.add_argument("--weights", required=True, help="weights folder the runs started from (--init)")
    i.add_argument("--t2m", help="BAMM transformer run folder (its last checkpoint)")
    i.add_argument("--res", help="residual transformer run folder (its last checkpoint)")
    i.add_argument("--alpha", type=float, required=True, help="share of the run: 0 = the stored model, 1 = the run's")
    i.add_argument("--out", required=True, help="new weights folder to write (refused if it exists)")
    return p


def run(args: argparse.Namespace) -> None:
    if args.stage == "export":
        from .export import export_weights
        path = export_weights(vq_run=args.vq, t2m_run=args.t2m, res_run=args.res, out=args.out, last=args.last)
        print(f"weights written to {path}")
        return
    if args.stage == "interpolate":
        from .interpolate import interpolate_weights
        runs = {stage: getattr(args, stage) for stage in ("t2m", "res") if getattr(args, stage)}
        path = interpolate_weights(weights=args.weights, runs=runs, alpha=args.alpha, out=args.out)
        print(f"weights written to {path}")
        return
    if args.threads is not None:
        if args.threads < 1:
            raise TrainError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    common = dict(preset=args.preset, steps=args.steps, batch_size=args.batch_size, resume=args.resume,
                  device=args.device, stop_after=args.stop_after, workers=args.workers,
                  progress=not args.no_progress, init=args.init)
    if args.stage == "vq":
        from .vq import train_vq
        train_vq(args.data, args.out, decoder_only=args.decoder_only, balance=args.balance,
                 balance_cap=args.balance_cap, balance_style=args.balance_style, decoder_width=args.decoder_width,
                 contact_root=args.contact_root,
                 width=args.width, **common)
    else:
        from .tokens import train_transformer
        train_transformer(args.stage, args.data, args.out, vq_run=args.vq, text_encoder=args.text_encoder,
                          cache_dir=args.cache_dir, text_noise=args.text_noise, balance=args.balance,
                          balance_cap=args.balance_cap, balance_style=args.balance_style, mirror=args.mirror,
                          **common)


def main(command_name: str = "train", argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except (TrainError, DatasetError, FileNotFoundError) as e:
        print(f"bamm {command_name} {args.stage}: error: {e}", file=sys.stderr)
        return 2
    finally:
        teardown_distributed()
    return 0
