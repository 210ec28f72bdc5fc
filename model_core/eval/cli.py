"""``bamm eval``: train the evaluator, or evaluate weights on a dataset split and print a table.

  bamm eval train-evaluator --data <dataset> --out <folder> [--steps N]
  bamm eval --data <dataset> --weights <weights> [--split test] [--repeats 3] [--rounds 2]
            [--length gt|predicted] [--ablations] [--phrasings held-out|training] [--evaluator <folder>]
            [--official <folder>] [--profile auto|bamm|official]

Besides the text-motion metrics the table reports the dynamics of the joints (``dynamics.py``: mean joint
acceleration, high-frequency share, foot skate, floor penetration; median over clips) of the real clips,
their tokenizer reconstructions and the generated motions with ratios to real, the share of directed
locomotion clips (walk, run, walk-back, ...) whose generated motion travels the way its caption says next to
the real clips' share, and the action classifier's walk / walk-back confusion on the real clips (logged).

``--official`` uses HumanML3D's official evaluator (files supplied by the user, layout in
``model_core/eval/official.py``): <folder>/text_mot_match/model/finest.tar, <folder>/Comp_v6_KLD01/meta/
{mean,std}.npy, <folder>/glove/our_vab_{data,words}.npy. Published tables use --repeats 20
--mm-prompts 100 --mm-samples 30. With weights imported by ``bamm import-official`` the default profile
``auto`` decodes as the published code does (``decoding.official_settings``) at the model's own lengths.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bamm eval train-evaluator",
                                description="train the text–motion matching evaluator and the action/style classifier")
    p.add_argument("--data", required=True, help="dataset folder (HumanML3D layout with meta.jsonl labels)")
    p.add_argument("--out", required=True, help="folder to write evaluator/classifier weights into")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--text-encoder", default="minilm")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    return p


def _eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bamm eval", description="evaluate weights on a dataset split")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--weights", required=True, help="weights folder (bamm.json, vq/t2m/res safetensors)")
    p.add_argument("--evaluator", help="evaluator folder (default: <weights>/evaluator); with --official it "
                                       "only supplies the action/style classifier, and is optional")
    p.add_argument("--official", help="folder of HumanML3D's official evaluator: text_mot_match/model/"
                                      "finest.tar, Comp_v6_KLD01/meta/{mean,std}.npy, glove/our_vab_{data,words}.npy")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2, help="decoding rounds: 1 = AR only, 2 = cascaded")
    p.add_argument("--length", choices=["gt", "predicted"],
                   help="motion length: the clip's (gt, default) or the model's (predicted, default with the "
                        "official profile, as the published evaluation)")
    p.add_argument("--profile", default="auto", choices=["auto", "bamm", "official"],
                   help="decoding profile; auto: official for imported official weights with --official, else bamm")
    p.add_argument("--ablations", action="store_true",
                   help="also run rounds 1/2/3 and predicted-vs-ground-truth length")
    p.add_argument("--phrasings", default="held-out", choices=["held-out", "training"],
                   help="caption wording of the test clips: held-out (the protocol) or the training captions' "
                        "(a diagnostic of how much of a gap is reading unseen wording)")
    p.add_argument("--mm-prompts", type=int, default=32, help="prompts for multimodality (0 = skip)")
    p.add_argument("--mm-samples", type=int, default=10, help="motions generated per multimodality prompt")
    p.add_argument("--cfg", type=float, nargs=2, default=None, metavar=("FIRST", "REFINE"),
                   help="guidance of the first pass and of the refinement passes (default: the generator's)")
    p.add_argument("--res-cfg", type=float, default=None,
                   help="guidance of the residual layers (default: the generator's)")
    p.add_argument("--json", help="also write all per-repeat values to this JSON file")
    p.add_argument("--device", default="cpu")
    p.add_argument("--int8", action="store_true", help="decode with int8 token transformers (CPU)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _check_dir(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise SystemExit(f"bamm eval: {what} folder not found: {p}")
    return p


def main(command_name: str, argv: list[str]) -> int:
    if argv and argv[0] == "train-evaluator":
        args = _train_parser().parse_args(argv[1:])
        from .train_evaluator import train_evaluator
        logs = train_evaluator(_check_dir(args.data, "dataset"), args.out, text_encoder=args.text_encoder,
                               steps=args.steps, batch_size=args.batch_size, device=args.device, seed=args.seed)
        print(f"evaluator written to {args.out}: {logs}")
        return 0

    args = _eval_parser().parse_args(argv)
    data = _check_dir(args.data, "dataset")
    weights = _check_dir(args.weights, "weights")
    evaluator = Path(args.evaluator) if args.evaluator else weights / "evaluator"
    official = None
    if args.official:
        if args.phrasings != "held-out":
            raise SystemExit("bamm eval: --phrasings applies to our protocol; --official uses the dataset's captions")
        from .official import OfficialEvaluator, OfficialEvaluatorError
        try:
            official = OfficialEvaluator.load(_check_dir(args.official, "official evaluator"), device=args.device)
        except OfficialEvaluatorError as exc:
            raise SystemExit(f"bamm eval: {exc}") from None
        if args.evaluator and not (evaluator / "classifier.json").exists():
            raise SystemExit(f"bamm eval: no classifier in {evaluator}")
    elif not (evaluator / "evaluator.json").exists():
        raise SystemExit(f"bamm eval: no evaluator in {evaluator}; train one with "
                         f"'bamm eval train-evaluator --data {data} --out {evaluator}'")
    decoding = {k: v for k, v in (("cfg", args.cfg and tuple(args.cfg)), ("res_cfg", args.res_cfg)) if v is not None}
    from ..contract.limits import InputError
    from ..contract.request import Request
    from ..decoding.generate import BAMM
    from .protocol import evaluate, format_table

    try:  # one line for a setting out of range, before anything is loaded
        Request(op="generate", prompt="check", **decoding).check()
    except InputError as exc:
        raise SystemExit(f"bamm eval: {exc}") from None

    from .reconstruction import tokenizer_mpjpe

    bamm = BAMM.from_pretrained(weights, device=args.device, int8=args.int8)
    if args.profile == "auto":
        args.profile = "official" if official is not None and bamm.t2m.config.arch == "official" else "bamm"
    bamm.profile = args.profile
    args.length = args.length or ("predicted" if args.profile == "official" else "gt")
    if decoding and args.profile == "official":
        raise SystemExit("bamm eval: --cfg / --res-cfg do not apply to the official profile (published settings)")
    print(f"decoding profile: {args.profile}, length: {args.length}"
          + "".join(f", {k} {v}" for k, v in decoding.items()))
    rec = tokenizer_mpjpe(bamm.vq, bamm.mean, bamm.std, data, split=args.split)
    print(f"tokenizer reconstruction ({rec['clips']} {args.split} clips): MPJPE {rec['aligned_mpjpe_mm']:.1f} mm "
          f"pelvis-aligned (MoMask protocol), {rec['mpjpe_mm']:.1f} mm with the global trajectory")
    runs = [(f"rounds={args.rounds}, length={args.length}", args.rounds, args.length)]
    if args.ablations:
        runs = [("AR only (1 round), gt length", 1, "gt"), ("cascaded (2 rounds), gt length", 2, "gt"),
                ("3 rounds, gt length", 3, "gt"), ("cascaded (2 rounds), predicted length", 2, "predicted")]
    everything = {"tokenizer": rec}
    for title, rounds, length in runs:
        results = evaluate(bamm, data, evaluator, official=official, split=args.split, repeats=args.repeats,
                           rounds=rounds, length=length, seed=args.seed, mm_prompts=args.mm_prompts,
                           mm_samples=args.mm_samples, phrasings=args.phrasings, decoding=decoding,
                           log=lambda m: print(m, file=sys.stderr))
        judge = "official evaluator, " if official is not None else f"{args.phrasings} phrasings, "
        print(format_table(results, title=f"\n== {title} ({judge}{args.split} split, {args.repeats} repeats)"))
        everything[title] = results
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2))
    return 0
