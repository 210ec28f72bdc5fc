"""``bamm generate`` and ``bamm edit``: the main job from the command line.

  bamm generate "<prompt>" [--seconds S | --frames F] [--n N] [--seed S] [--profile bamm|official]
                [--weights weights/] [--out out/] [--overwrite] [--strict]
  bamm generate "<prompt naming several actions>" [--show-plan]   /   bamm generate --plan plan.json
  bamm edit <motion.npy> --range 2.0s:4.5s ["<prompt>"] [--out out/] [--overwrite]

The request is checked by the request contract (``contract/request.py``) against the weights' limits before a model
is loaded, and the output folder before generating. A prompt naming several actions, or a plan file, goes
the same way as a ``plan`` request (``plan.py``). A prompt asking for something outside the model's
vocabulary (``vocabulary/``) gets one line on stderr, or with ``--strict`` exits 2 with it. Outputs are
written to temporary files renamed into place under a free name (``walk.npy``, else ``walk-2.npy``, ...
reported) unless ``--overwrite``.

Each result is written as joints (.npy, (T, 22, 3) metres Y-up 20 fps), a BVH of the SMPL-22 skeleton,
an FBX with the baked armature (through Blender's own exporter, when bpy is installed), an animated
stick-figure GIF and a PNG filmstrip.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from ..contract.limits import Limits, check_profile
from ..contract.request import DEFAULT_CFG, Request
from ..decoding.editing import travel_note
from ..serving import outputs
from .common import check_device, is_runtime, load_model, print_written, slugify, write_outputs
from .main import ArgumentParser, CLIError
from .plan import generate_plan_cmd, plan_of
from .vocab import vocab_line

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def parse_range(text: str, fps: float = 20.0) -> tuple[int, int]:
    """'2.0s:4.5s' (seconds) or '40:90' (frames at ``fps``) -> (start, end) frames; checked by the request."""
    m = re.fullmatch(r"\s*([0-9]{1,9}(?:\.[0-9]*)?)(s?)\s*:\s*([0-9]{1,9}(?:\.[0-9]*)?)(s?)\s*", text)
    if not m:
        raise CLIError(f"--range must look like 2.0s:4.5s or 40:90, got {text[:60]!r}")
    frame = lambda value, seconds: int(round(float(value) * fps)) if seconds else int(float(value))  # noqa: E731
    return frame(m[1], m[2]), frame(m[3], m[4])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="weights folder, or a runtime folder (an export or an "
                   "imported published model, run by ONNX Runtime) (default: shipped weights/)")
    p.add_argument("--out", default="out", help="output folder (default: out/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs of the same name (default: a new numbered name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg", type=float, nargs=2, default=DEFAULT_CFG, metavar=("AR", "REFINE"),
                   help="classifier-free guidance scales of the AR and refinement passes")
    p.add_argument("--rounds", type=int, default=2, help="1 = AR only, 2 = cascaded (paper), 3 = one more")
    p.add_argument("--text-encoder", default=None,
                   help="override the weights' text encoder (minilm, minilm-lexical, clip:<file>)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    p.add_argument("--int8", action="store_true",
                   help="int8 token transformers on the CPU (about 1.8x faster for paper-size weights)")
    p.add_argument("--no-fbx", action="store_true", help="skip the FBX (needs bpy)")
    p.add_argument("--no-preview", action="store_true", help="skip the GIF and filmstrip")


def _limits(args) -> Limits:
    weights = Path(args.weights)
    if not (weights / "bamm.json").is_file() and not is_runtime(weights):
        raise CLIError(f"no weights in {weights} (neither bamm.json nor runtime.json): pass --weights <folder>")
    if is_runtime(weights) and (args.int8 or args.text_encoder):
        raise CLIError(f"{weights} is a runtime folder (ONNX Runtime): --int8 and --text-encoder apply to torch "
                       f"weights folders only")
    return Limits.from_folder(weights)


def cmd_generate(argv: list[str]) -> int:
    p = ArgumentParser(prog="bamm generate", description="generate motion from a prompt")
    p.add_argument("prompt", nargs="?", help="what the character does, e.g. 'a person walks forward, then bows'")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="length in seconds (default: the model chooses)")
    length.add_argument("--frames", type=int, help="length in 20-fps frames (default: the model chooses)")
    p.add_argument("--n", type=int, default=1, help="number of variations")
    p.add_argument("--profile", default="bamm", metavar="bamm|official",
                   help="decoding profile (default: bamm); official decodes as the published BAMM code, for "
                        "imported official weights (its guidance and refinement replace --cfg and --rounds)")
    p.add_argument("--plan", metavar="FILE", help="a plan file (JSON, as --show-plan writes it) instead of the prompt")
    p.add_argument("--show-plan", action="store_true", help="print the prompt's plan as JSON and stop")
    p.add_argument("--strict", action="store_true",
                   help="stop (exit 2) when the prompt asks for something outside the model's vocabulary")
    _common(p)
    args = p.parse_args(argv)
    limits = _limits(args)

    plan = plan_of(args.prompt, args.plan, limits)
    texts = [args.prompt] if args.plan is None else [t for s in plan.steps for t in (s.prompt, s.together)]
    args.vocab_line = vocab_line(texts, args.weights, strict=args.strict)  # printed by load_model
    if args.show_plan:
        print(plan.to_json(), end="")
        return 0
    if not plan.single or args.plan is not None:
        return generate_plan_cmd(args, plan, limits, check_profile(args.profile))
    req = Request(op="generate", prompt=args.prompt, frames=args.frames, seconds=args.seconds, n=args.n,
                  seed=args.seed, cfg=tuple(args.cfg), rounds=args.rounds).check(limits)
    profile = check_profile(args.profile)
    pace = req.pace(limits)  # the prompt's words about length and pace (contract/amounts.py), applied by generate
    for note in pace.notes if profile == "bamm" else ():
        print(f"note: {note}", file=sys.stderr)
    check_device(args)
    out = outputs.check_folder(args.out)
    bamm = load_model(args)
    motions = bamm.generate([req.prompt], frames=req.frames, n=req.n, seed=req.seed, profile=profile,
                            **req.settings())
    for k, m in enumerate(motions):
        wanted = slugify(req.prompt) + (f"_{k}" if req.n > 1 else "")
        paths = write_outputs(m.joints, out, wanted, caption=req.prompt, fbx=not args.no_fbx,
                              preview=not args.no_preview, overwrite=args.overwrite, fps=limits.fps)
        chosen = pace.describe() if profile == "bamm" else "requested" if req.frames else "chosen by the model"
        print_written(paths, f"{len(m.joints)} frames = {len(m.joints) / limits.fps:.2f} s ({chosen})", wanted)
    return 0


def load_joints(path, limits: Limits) -> np.ndarray:
    """A joints file (T, 22, 3) written by ``bamm generate``; InputError for anything else (checked on the
    file's header before its data is read)."""
    src = Path(path)
    if not src.exists():
        raise CLIError(f"motion file not found: {src}")
    if not src.is_file() or src.suffix.lower() != ".npy":
        raise CLIError(f"{src} is not a .npy joints file (T, 22, 3) written by bamm generate")
    try:
        joints = np.load(src, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CLIError(f"{src} is not a readable .npy array ({' '.join(str(e).split())[:120]})") from None
    if joints.ndim != 3 or joints.shape[1:] != (22, 3) or joints.dtype.kind != "f":
        raise CLIError(f"{src} is not a (T, 22, 3) float joint array (shape {joints.shape}, {joints.dtype})")
    if not 2 <= len(joints) <= limits.max_source_frames:
        raise CLIError(f"{src} has {len(joints)} frames; edits take 2 to {limits.max_source_frames}")
    joints = np.array(joints, np.float32)
    if not np.isfinite(joints).all():
        raise CLIError(f"{src} holds NaN or infinite values")
    return joints


def cmd_edit(argv: list[str]) -> int:
    p = ArgumentParser(prog="bamm edit", description="regenerate a range of a motion: inpainted, or led by a new prompt")
    p.add_argument("motion", help="joints .npy (T, 22, 3) written by bamm generate")
    p.add_argument("prompt", nargs="?", default=None, help="what happens in the range (optional)")
    p.add_argument("--range", required=True, help="2.0s:4.5s (seconds) or 40:90 (frames)")
    _common(p)
    args = p.parse_args(argv)
    limits = _limits(args)
    joints = load_joints(args.motion, limits)
    if args.prompt is not None and not args.prompt.strip():
        raise CLIError("the prompt is empty: leave it out to inpaint unconditionally")
    req = Request(op="edit", prompt=args.prompt, range=parse_range(args.range, limits.fps), seed=args.seed,
                  cfg=tuple(args.cfg), rounds=args.rounds).check(limits, source_frames=len(joints))
    check_device(args)
    out = outputs.check_folder(args.out)
    bamm = load_model(args)
    start, end = req.range
    m = bamm.edit(joints, req.range, req.prompt, seed=req.seed, **req.settings())
    wanted = f"{Path(args.motion).stem}_edit_{start}_{end}"
    paths = write_outputs(m.joints, out, wanted, caption=req.prompt or "", fbx=not args.no_fbx,
                          preview=not args.no_preview, overwrite=args.overwrite, fps=limits.fps)
    print_written(paths, f"frames {start}..{end} regenerated, {len(m.joints)} frames in all", wanted)
    note = travel_note(joints, req.range, req.prompt, limits.fps)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0


def main(command_name: str, argv: list[str]) -> int:
    """Bad input raises InputError (exit 2 through ``bamm``'s wrapper); anything else is a failure (1)."""
    return {"generate": cmd_generate, "edit": cmd_edit}[command_name](argv)
