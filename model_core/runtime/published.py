"""Run time (numpy only): the published BAMM / MoMask checkpoints and CLIP's ViT-B-32.pt -> a runtime folder.

    from model_core.runtime.published import import_published
    import_published(t2m="latest.tar", res="res/net_best_fid.tar", vq="vq/model/net_best_fid.tar",
                     clip="ViT-B-32.pt", out="models/humanml3d", templates="templates/official")

This is what the add-on's Import Published Model runs inside stock Blender (numpy and the standard library:
no torch, no onnx package): the checkpoints are read by `official.torch_zip` (tensors and plain values only,
anything else refused before it runs), every tensor is checked against the template's official layout (errors
name the file, the tensor, the expected and the found shape), converted as `official.keys` converts it for the
torch route (`bamm import-official`), and written into the slots of the template's weight files
(`runtime/templates.py`); the template's graphs, CLIP's tokenizer and runtime.json are copied beside them.
The folder is written under a temporary name and renamed when complete: a refused file leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..official import keys as K
from ..official import torch_zip
from ..official.read import ENTRIES, read_state, read_stats

TEMPLATE_FORMAT = 1
LICENCE = ("HumanML3D / AMASS: non-commercial research use only (so is any motion made with this model); "
           "MoMask: MIT; BAMM: no licence stated by its authors; CLIP: MIT")
SOURCE = "published BAMM (HumanML3D) + MoMask RVQ-VAE and residual transformer + OpenAI CLIP ViT-B/32"
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504


def quantize_columns(w) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per column of a (K, N) weight matrix: (q int8 (K, N), scale float32 (N,)) with
    q = round(w / scale) and scale = max |w[:, n]| / 127 (1 for a zero column); the weight is q * scale. The
    template build and the import both call this, so their numbers agree bit for bit."""
    w = np.asarray(w, np.float32)
    absmax = np.abs(w).max(axis=0)
    scale = np.where(absmax > 0, absmax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


def _form(value: np.ndarray, form: str) -> np.ndarray:
    """A slot's bytes-to-be: the tensor as float32 / float16, or its int8 columns or their scales."""
    if form in ("int8", "int8-scale"):
        return quantize_columns(value)[0 if form == "int8" else 1]
    if form == "float16" and not (np.isfinite(value).all() and np.abs(value).max() < FLOAT16_MAX):
        raise ValueError("values outside float16's range")
    return np.asarray(value, dtype=form)


def packaged_templates() -> Path | None:
    """The templates shipped beside the model core (``<extension>/templates/official``), or None."""
    folder = Path(__file__).resolve().parents[2] / "templates" / "official"
    return folder if (folder / "templates.json").is_file() else None


def read_template(folder) -> dict:
    """templates.json of the template folder `folder`, checked for its format."""
    path = Path(folder) / "templates.json"
    if not path.is_file():
        raise FileNotFoundError(f"no model templates in '{folder}' (templates.json missing): this installation "
                                f"cannot import published checkpoints; reinstall the extension zip")
    info = json.loads(path.read_text())
    if info.get("format_version") != TEMPLATE_FORMAT:
        raise ValueError(f"{path}: template format {info.get('format_version')!r}, expected {TEMPLATE_FORMAT}")
    return info


def _check_sizes(kind: str, state: dict, template: dict, path: Path) -> None:
    """A one-line error when the checkpoint is not of the template's sizes (another data set or a smaller model)."""
    s = template["sizes"]
    where = str(path)
    if kind == "t2m":
        got, want = K.t2m_sizes(state, where), {"width": s["width"], "n_layers": s["t2m_layers"], "ff": s["ff"],
                                                "code_num": s["code_num"], "text_dim": s["text_dim"]}
    elif kind == "res":
        got, want = K.res_sizes(state, where), {"width": s["width"], "n_layers": s["res_layers"], "ff": s["ff"],
                                                "code_num": s["code_num"], "num_quantizers": s["num_quantizers"]}
    else:
        got, want = K.vq_sizes(state, where), {"width": s["vq_width"], "depth": s["vq_depth"],
                                               "code_num": s["code_num"], "num_quantizers": s["num_quantizers"],
                                               "input_dim": s["input_dim"]}
    wrong = [f"{k} {got[k]} (expected {v})" for k, v in want.items() if got.get(k) != v]
    if wrong:
        raise ValueError(f"{path}: not the published HumanML3D model's size: {', '.join(wrong)}; other sizes "
                         f"convert with the command line's 'bamm import-official'")


def read_clip(path: Path, layout: dict) -> dict[str, np.ndarray]:
    """The text-tower tensors named in `layout` from OpenAI's TorchScript ViT-B-32.pt or a torch.save state dict
    with its keys; shapes are checked before anything is read, the image tower is never read."""
    root = torch_zip.load(path)
    if isinstance(root, torch_zip.ModuleState):
        found = torch_zip.module_tensors(root)
    elif isinstance(root, dict):
        found = {k: v for k, v in root.items() if isinstance(k, str) and isinstance(v, torch_zip.LazyTensor)}
    else:
        raise ValueError(f"{path}: not a CLIP checkpoint (it holds a {type(root).__name__})")
    _check_clip(found, layout, path)
    return torch_zip.materialise({k: found[k] for k in layout})


def _check_clip(state: dict, layout: dict, path: Path) -> None:
    missing = [k for k in layout if k not in state]
    if missing:
        raise ValueError(f"{path}: not OpenAI's CLIP ViT-B/32: tensor '{missing[0]}' is missing"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    for key, shape in layout.items():
        if tuple(state[key].shape) != tuple(shape):
            raise ValueError(f"{path}: tensor '{key}' has shape {tuple(state[key].shape)}, expected {tuple(shape)} "
                             f"(CLIP ViT-B/32's text tower)")


def read_sources(*, t2m, res, vq, clip, template: dict) -> dict[str, np.ndarray]:
    """Every tensor the template's slots name, by source name (``t2m.*``, ``res.*``, ``vq.*``, ``clip.*``), read
    from the files and converted; each file checked first (sizes, layout, and the attention heads its run's
    opt.txt names, when there is one)."""
    paths = {"t2m": Path(t2m), "res": Path(res), "vq": Path(vq)}
    sources = {}
    s = template["sizes"]
    for kind, path in paths.items():
        state = read_state(path, ENTRIES[kind])
        _check_sizes(kind, state, template, path)
        K.check_layout(state, template["layouts"][kind], str(path))
        if kind in ("t2m", "res"):
            found = K.heads_of(path)
            if found != s["heads"]:
                raise ValueError(f"{path}: {found} attention heads (its opt.txt), the published model has "
                                 f"{s['heads']}; convert it with the command line's 'bamm import-official'")
        converted = (K.convert_t2m(state, s["code_num"]) if kind == "t2m" else
                     K.convert_res(state, s["code_num"], s["num_quantizers"]) if kind == "res" else
                     K.convert_vq(state))
        sources.update({f"{kind}.{k}": v for k, v in converted.items()})
    clip_state = read_clip(Path(clip), template["layouts"]["clip"])
    sources.update({f"clip.{k}": v for k, v in clip_state.items()})
    return sources


def write_weights(path: Path, spec: dict, sources: dict[str, np.ndarray], progress=None) -> None:
    """The weight file `path` of the template entry `spec` ({"bytes", "slots"}) from `sources`."""
    with open(path, "wb") as f:
        f.truncate(spec["bytes"])
        for i, slot in enumerate(spec["slots"]):
            value = sources.get(slot["source"])
            if value is None:
                raise ValueError(f"the template names '{slot['source']}', which no checkpoint gave (a template of "
                                 f"another version: reinstall the extension)")
            value = value.T if slot["transpose"] else value
            try:
                value = _form(value, slot["form"])
            except ValueError as e:
                raise ValueError(f"'{slot['source']}': {e}") from None
            if tuple(value.shape) != tuple(slot["shape"]):
                raise ValueError(f"'{slot['source']}' has shape {tuple(value.shape)}, the template's slot "
                                 f"{tuple(slot['shape'])}")
            data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
            if len(data) != slot["length"]:
                raise ValueError(f"'{slot['source']}': {len(data)} bytes for a slot of {slot['length']}")
            f.seek(slot["offset"])
            f.write(data)
            if progress is not None:
                progress((i + 1) / len(spec["slots"]))


def import_published(*, t2m, res, vq, clip, out, templates, meta=None, name: str | None = None,
                     precision: str = "int8", progress=None) -> Path:
    """Write the runtime folder `out` (new, or an empty folder) from the published checkpoints; returns its
    runtime.json. meta: the folder with mean.npy and std.npy (default: meta/ beside the RVQ-VAE's model/);
    templates: the template folder (`runtime/templates.py`); name: the model's name in runtime.json (default:
    the folder's name); precision: "int8" (default: the token transformers' matrices in int8, about 2.5x
    faster and 70 MB smaller, tokens differ slightly) or "float32" (the same tokens as the published code);
    progress: called with (stage, fraction) while it works."""
    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, fraction)

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose a new name (nothing overwritten)")
    for label, path in (("t2m", t2m), ("res", res), ("vq", vq), ("clip", clip)):
        if not path or not Path(path).is_file():
            raise FileNotFoundError(f"{label} checkpoint not found: {path or '(not given)'}")
    template_dir = Path(templates)
    template = read_template(template_dir)
    if precision not in template["variants"]:
        raise ValueError(f"precision must be one of {sorted(template['variants'])}, got {precision!r}")
    variant = template["variants"][precision]
    report("reading checkpoints", 0.0)
    sources = read_sources(t2m=t2m, res=res, vq=vq, clip=clip, template=template)
    meta = Path(meta) if meta else Path(vq).resolve().parent.parent / "meta"
    mean, std = read_stats(meta, template["sizes"]["input_dim"])
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        files = [(file, template["weights"][file]) for file in variant["weights"]]
        for i, (file, spec) in enumerate(files):
            write_weights(partial / file, spec, sources,
                          lambda f, i=i, file=file: report(f"writing {file}", (i + f) / len(files)))
        del sources
        copied = list(variant["graphs"].values()) + ["text.onnx", "tokenizer.json"]
        for file in copied:
            shutil.copyfile(template_dir / file, partial / file)
        (partial / "text.json").write_text(json.dumps(template["text"], indent=2) + "\n")
        np.savez(partial / "stats.npz", mean=mean, std=std)
        written = sorted([*variant["weights"], *copied, "text.json", "stats.npz", "runtime.json"])
        size = sum((partial / f).stat().st_size for f in written if f != "runtime.json")
        about = {"name": name or out.name, "source": SOURCE, "licence": LICENCE, "vocabulary": "HumanML3D",
                 "precision": precision,
                 "files": written, "bytes": size,
                 "made_from": {k: str(Path(v).resolve()) for k, v in
                               (("t2m", t2m), ("res", res), ("vq", vq), ("clip", clip), ("meta", meta))}}
        info = {**template["runtime"], "graphs": variant["graphs"], "about": about}
        (partial / "runtime.json").write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # the empty folder checked above
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    report("done", 1.0)
    return out / "runtime.json"


def remove_model(folder) -> list[str]:
    """Deletes the files an import wrote into `folder` (runtime.json's ``about.files``), then the folder if it is
    empty; returns what is left in it (files the user put there are never touched)."""
    folder = Path(folder)
    info = json.loads((folder / "runtime.json").read_text())
    files = (info.get("about") or {}).get("files") or []
    for name in files:
        path = folder / name
        if Path(name).name == name and path.is_file() and not path.is_symlink():
            path.unlink()
    left = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if folder.is_dir() and not left:
        folder.rmdir()
    return left
