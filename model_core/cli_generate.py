"""``bamm generate`` and ``bamm edit``: the main job from the command line.

  bamm generate "<prompt>" [--seconds S | --frames F] [--n N] [--seed S] [--weights weights/] [--out out/]
  bamm edit <motion.npy> --range 2.0s:4.5s ["<prompt>"] [--out out/]

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

from .cli import CLIError

FPS = 20.0
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def slugify(text: str, *, limit: int = 48) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if len(slug) > limit:  # cut at a word boundary
        slug = slug[:limit + 1].rsplit("_", 1)[0] if "_" in slug[:limit + 1] else slug[:limit]
    return slug or "motion"


def parse_range(text: str, total_frames: int) -> tuple[int, int]:
    """'2.0s:4.5s' (seconds) or '40:90' (20-fps frames) → half-open frame range, checked against the clip."""
    m = re.fullmatch(r"\s*([0-9.]+)(s?)\s*:\s*([0-9.]+)(s?)\s*", text)
    if not m:
        raise CLIError(f"--range must look like 2.0s:4.5s or 40:90, got {text!r}")

    def frame(value: str, seconds: str) -> int:
        try:
            v = float(value)
        except ValueError:
            raise CLIError(f"--range: {value!r} is not a number") from None
        return int(round(v * FPS)) if seconds else int(v)

    start, end = frame(m[1], m[2]), frame(m[3], m[4])
    if end <= start:
        raise CLIError(f"--range {text!r} is empty or reversed (frames {start}..{end})")
    if start < 0 or end > total_frames:
        raise CLIError(f"--range {text!r} = frames {start}..{end} lies outside the clip (0..{total_frames})")
    return start, end


def write_outputs(joints: np.ndarray, out_dir: Path, stem: str, *, caption: str = "", fbx: bool = True,
                  preview: bool = True) -> dict[str, Path]:
    """All output files of one motion; returns {kind: path}."""
    from .motion.bvh import write_bvh
    from .motion.smpl_bvh import joints_to_bvh_clip

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"joints": out_dir / f"{stem}.npy", "bvh": out_dir / f"{stem}.bvh"}
    np.save(paths["joints"], joints.astype(np.float32))
    write_bvh(paths["bvh"], joints_to_bvh_clip(joints, fps=FPS))
    if preview:
        from .preview import save_filmstrip, save_gif

        paths["gif"] = save_gif(joints, out_dir / f"{stem}.gif", fps=FPS, caption=caption)
        paths["filmstrip"] = save_filmstrip(joints, out_dir / f"{stem}_filmstrip.png", fps=FPS)
    if fbx:
        target = out_dir / f"{stem}.fbx"
        done = export_through_blender(paths["joints"], target, fmt="fbx")
        if done:
            paths["fbx"] = target
    return paths


def export_through_blender(joints_path: Path, target: Path, *, fmt: str) -> bool:
    """Bake + export through Blender (a separate process: model_core itself never imports bpy)."""
    from .cli_blender import run_exporter

    proc = run_exporter([str(joints_path), "--format", fmt, "--out", str(target)], capture=True)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        print(f"warning: {fmt.upper()} export through Blender failed ({msg}); other outputs are written",
              file=sys.stderr)
        return False
    return True


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="weights folder (default: shipped weights/)")
    p.add_argument("--out", default="out", help="output folder (default: out/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg", type=float, nargs=2, default=(4.0, 3.0), metavar=("AR", "REFINE"),
                   help="classifier-free guidance scales of the AR and refinement passes")
    p.add_argument("--rounds", type=int, default=2, help="1 = AR only, 2 = cascaded (paper), 3 = one more")
    p.add_argument("--text-encoder", default=None,
                   help="override the weights' text encoder (minilm, minilm-lexical, clip:<file>)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    p.add_argument("--int8", action="store_true",
                   help="int8 token transformers on the CPU (about 1.8x faster for paper-size weights)")
    p.add_argument("--no-fbx", action="store_true", help="skip the FBX (needs bpy)")
    p.add_argument("--no-preview", action="store_true", help="skip the GIF and filmstrip")


def _load(args):
    from .generate import BAMM

    weights = Path(args.weights)
    if not (weights / "bamm.json").exists():
        raise CLIError(f"no weights in {weights} (bamm.json missing): pass --weights <folder>")
    if args.int8 and args.device != "cpu":
        raise CLIError(f"--int8 runs on the CPU only, not --device {args.device}")
    return BAMM.from_pretrained(weights, text_encoder=args.text_encoder, device=args.device, int8=args.int8)


def cmd_generate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bamm generate", description="generate motion from a prompt")
    p.add_argument("prompt", nargs="?", help="what the character does, e.g. 'a person walks forward, then bows'")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="length in seconds (default: the model chooses)")
    length.add_argument("--frames", type=int, help="length in 20-fps frames (default: the model chooses)")
    p.add_argument("--n", type=int, default=1, help="number of variations")
    p.add_argument("--plan", metavar="FILE", help="a plan file (JSON, as --show-plan writes it) instead of the prompt")
    p.add_argument("--show-plan", action="store_true", help="print the prompt's plan as JSON and stop")
    _common(p)
    args = p.parse_args(argv)
    from .cli_plan import plan_of

    plan = plan_of(args.prompt, args.plan)
    if args.show_plan:
        print(plan.to_json(), end="")
        return 0
    if not plan.single or args.plan is not None:
        return _generate_plan(args, plan)
    if args.n < 1:
        raise CLIError(f"--n must be at least 1, got {args.n}")
    frames = args.frames if args.frames is not None else (
        None if args.seconds is None else int(round(args.seconds * FPS)))
    if frames is not None and frames < 4:
        raise CLIError(f"the length must be at least 4 frames (0.2 s), got {frames}")
    bamm = _load(args)
    motions = bamm.generate([args.prompt], frames=frames, n=args.n, seed=args.seed, cfg=tuple(args.cfg),
                            rounds=args.rounds)
    for k, m in enumerate(motions):
        stem = slugify(args.prompt) + (f"_{k}" if args.n > 1 else "")
        paths = write_outputs(m.joints, Path(args.out), stem, caption=args.prompt, fbx=not args.no_fbx,
                              preview=not args.no_preview)
        chosen = "requested" if frames is not None else "chosen by the model"
        print(f"{stem}: {len(m.joints)} frames = {len(m.joints) / FPS:.2f} s ({chosen})")
        for kind, path in paths.items():
            print(f"  {kind:<10} {path}")
    return 0


def _generate_plan(args, plan) -> int:
    """Several actions: the plan is printed, then generated as one motion per variation."""
    from .cli_plan import generate_from_plan
    from .plan import Plan, Step

    if args.frames is not None or args.seconds is not None:
        if len(plan.steps) > 1:
            raise CLIError("--seconds / --frames apply to one step; give each step's seconds in a plan file instead")
        seconds = args.seconds if args.seconds is not None else args.frames / FPS
        if not 0.2 <= seconds <= 9.8:
            raise CLIError(f"the length must be 0.2-9.8 s, got {seconds:g} s")
        s = plan.steps[0]
        plan = Plan(plan.person, [Step(s.prompt, s.kind, seconds, s.together)])
    if args.n < 1:
        raise CLIError(f"--n must be at least 1, got {args.n}")
    print(plan.describe())
    bamm = _load(args)
    caption = " / ".join(s.prompt for s in plan.steps)
    results = generate_from_plan(bamm, plan, n=args.n, seed=args.seed,
                                 settings={"cfg": tuple(args.cfg), "rounds": args.rounds})
    for k, (m, bounds) in enumerate(results):
        stem = slugify(args.prompt or caption) + (f"_{k}" if args.n > 1 else "")
        paths = write_outputs(m.joints, Path(args.out), stem, caption=caption, fbx=not args.no_fbx,
                              preview=not args.no_preview)
        steps = ", ".join(f"{b / FPS:.2f} s" for b in bounds) or "none"
        print(f"{stem}: {len(m.joints)} frames = {len(m.joints) / FPS:.2f} s (steps start at {steps})")
        for kind, path in paths.items():
            print(f"  {kind:<10} {path}")
    return 0


def cmd_edit(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bamm edit", description="regenerate a range of a motion (inpainting)")
    p.add_argument("motion", help="joints .npy (T, 22, 3) written by bamm generate")
    p.add_argument("prompt", nargs="?", default=None, help="what happens in the range (optional)")
    p.add_argument("--range", required=True, help="2.0s:4.5s (seconds) or 40:90 (frames)")
    _common(p)
    args = p.parse_args(argv)
    src = Path(args.motion)
    if not src.exists():
        raise CLIError(f"motion file not found: {src}")
    joints = np.load(src, allow_pickle=False)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise CLIError(f"{src} is not a (T, 22, 3) joint array (shape {joints.shape})")
    start, end = parse_range(args.range, len(joints))
    if end - start < 4:
        raise CLIError(f"--range covers {end - start} frames; at least 4 (one token) are needed")
    if args.prompt is not None and not args.prompt.strip():
        raise CLIError("the prompt is empty: leave it out to inpaint unconditionally")
    bamm = _load(args)
    m = bamm.edit(joints, (start, end), args.prompt, seed=args.seed, cfg=tuple(args.cfg))
    stem = f"{src.stem}_edit_{start}_{end}"
    paths = write_outputs(m.joints, Path(args.out), stem, caption=args.prompt or "", fbx=not args.no_fbx,
                          preview=not args.no_preview)
    print(f"{stem}: frames {start}..{end} regenerated, {len(m.joints)} frames in all")
    for kind, path in paths.items():
        print(f"  {kind:<10} {path}")
    return 0


def main(command_name: str, argv: list[str]) -> int:
    try:
        return {"generate": cmd_generate, "edit": cmd_edit}[command_name](argv)
    except (CLIError, ValueError, FileNotFoundError) as e:  # bad input from the user: no traceback
        print(f"bamm {command_name}: {e}", file=sys.stderr)
        return 2
