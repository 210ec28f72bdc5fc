"""What ``bamm generate`` writes and loads, shared by one action (``generate.py``) and a plan of several
(``plan.py``): the output files of one motion under a free name, the model of ``--weights`` on
``--device``, and the lines that report the files written.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np

from ..serving import outputs
from .main import CLIError

SUFFIXES = (".npy", ".bvh", ".gif", "_filmstrip.png", ".fbx")  # one result's files; the first is its claim
DEVICES = re.compile(r"cpu|mps|cuda(:[0-9]{1,2})?")


def slugify(text: str, *, limit: int = 48) -> str:
    """A file stem from a prompt: its ASCII words, cut at a word boundary; a prompt without any (another
    script, only symbols) gets ``motion_`` and a short hash of the prompt, so different prompts differ."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if len(slug) > limit:  # cut at a word boundary
        slug = slug[:limit + 1].rsplit("_", 1)[0] if "_" in slug[:limit + 1] else slug[:limit]
    return slug or "motion_" + hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:8]


def write_outputs(joints: np.ndarray, out_dir: Path, stem: str, *, caption: str = "", fbx: bool = True,
                  preview: bool = True, overwrite: bool = False, fps: float = 20.0) -> dict[str, Path]:
    """All output files of one motion under a free name (``stem``, else ``stem-2``, ...; ``overwrite``: the
    stem as it is), each written to a temporary file and renamed into place; returns {kind: path}."""
    from ..motion.bvh import format_bvh
    from ..motion.smpl_bvh import joints_to_bvh_clip

    joints = np.asarray(joints, np.float32)
    if not np.isfinite(joints).all():
        raise ValueError("the model produced non-finite joints (NaN or inf): its stats or weights are broken; "
                         "nothing was written")
    bvh_text = format_bvh(joints_to_bvh_clip(joints, fps=fps))
    stem = outputs.claim(out_dir, stem, SUFFIXES, overwrite=overwrite)
    try:
        paths = {"joints": outputs.save_npy(out_dir / f"{stem}.npy", joints),
                 "bvh": outputs.write_text(out_dir / f"{stem}.bvh", bvh_text)}
        if preview:
            from .preview import save_filmstrip, save_gif

            paths["gif"] = outputs.write(out_dir / f"{stem}.gif",
                                         lambda tmp: save_gif(joints, tmp, fps=fps, caption=caption))
            paths["filmstrip"] = outputs.write(out_dir / f"{stem}_filmstrip.png",
                                               lambda tmp: save_filmstrip(joints, tmp, fps=fps))
    except BaseException:
        outputs.release(out_dir, stem, SUFFIXES)
        raise
    if fbx:
        target = out_dir / f"{stem}.fbx"
        try:
            paths["fbx"] = outputs.write(target, lambda tmp: export_through_blender(paths["joints"], tmp, fmt="fbx"))
        except OSError:
            pass  # reported by export_through_blender; the other outputs are written
    return paths


def export_through_blender(joints_path: Path, target: Path, *, fmt: str) -> bool:
    """Bake + export through Blender (a separate process: model_core itself never imports bpy)."""
    from .blender import run_exporter

    proc = run_exporter([str(joints_path), "--format", fmt, "--out", str(target)], capture=True)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        print(f"warning: {fmt.upper()} export through Blender failed ({msg}); other outputs are written",
              file=sys.stderr)
        return False
    return True


def is_runtime(folder: Path) -> bool:
    """A runtime folder (runtime.json: an export or an imported published model) rather than torch weights."""
    return (folder / "runtime.json").is_file() and not (folder / "bamm.json").is_file()


def check_device(args) -> None:
    """``--device`` (and ``--int8``) usable on this machine, or CLIError."""
    if not isinstance(args.device, str) or not DEVICES.fullmatch(args.device):
        raise CLIError(f"--device must be cpu, cuda, cuda:N or mps, got {args.device[:40]!r}")
    if args.int8 and args.device != "cpu":
        raise CLIError(f"--int8 runs on the CPU only, not --device {args.device}")
    if args.device == "cpu":
        return
    import torch

    if args.device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(args.device.partition(":")[2] or 0)
        if index >= count:
            raise CLIError(f"--device {args.device}: this machine's torch sees {count} CUDA device(s)"
                           + ("" if count else " (no CUDA build or no GPU): use --device cpu"))
    elif not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CLIError("--device mps: MPS is not available on this machine: use --device cpu")


def load_model(args):
    """The model of ``--weights`` (torch weights, or a runtime folder run by ONNX Runtime) on ``--device``; the
    vocabulary warning of the prompt (``args.vocab_line``) is printed first."""
    from ..decoding.generate import BAMM, Generator

    if getattr(args, "vocab_line", ""):  # after the input checks: bad input stays one line
        print(f"warning: {args.vocab_line}", file=sys.stderr)
    if is_runtime(Path(args.weights)):
        from ..runtime.ort_nets import load_runtime

        return Generator(load_runtime(Path(args.weights), device="cpu" if args.device == "cpu" else "auto"))
    return BAMM.from_pretrained(Path(args.weights), text_encoder=args.text_encoder, device=args.device,
                                int8=args.int8)


def print_written(paths: dict, line: str, wanted: str) -> None:
    """One result's line and its files; a numbered name (``wanted`` was taken) is said so."""
    stem = paths["joints"].stem
    renamed = "" if stem == wanted else f" (numbered: {wanted} exists; --overwrite replaces it)"
    print(f"{stem}: {line}{renamed}")
    for kind, path in paths.items():
        print(f"  {kind:<10} {path}")
