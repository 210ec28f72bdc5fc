"""`bamm import-official`: the published BAMM + MoMask checkpoints -> a weights folder of this project.

    bamm import-official --t2m <BAMM net_best_fid.tar> --res <MoMask residual net_best_fid.tar>
                         --vq <MoMask RVQ-VAE net_best_fid.tar> [--meta <folder with mean.npy, std.npy>]
                         [--clip <ViT-B-32.pt>] --out <weights folder>

Every tensor is checked against the official layout (`keys.py`) with the file, the tensor, the expected and
the found shape in the message; the folder gets t2m/res/vq .safetensors + .json (arch "official"),
stats.safetensors and bamm.json. Text encoder: with --clip, the CLIP text tower is copied into the folder
(``clip_text.safetensors``, the image tower left out) and bamm.json names it relative to the folder, so the
folder can move; without --clip, bamm.json says "clip" and the CLIP file is looked up when the folder is
loaded ($BAMM_CLIP_PATH, else ~/.cache/clip/ViT-B-32.pt).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import keys as K
from .read import ENTRIES, read_state, read_stats

CLIP_FILE = "clip_text.safetensors"
N_HEADS = K.N_HEADS


def _load(module, state: dict, where: str):
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:  # a converted state dict that does not fit: a bug here, reported with the file
        raise ValueError(f"{where}: converted tensors do not fit the model ({str(e).splitlines()[0]})") from None
    return module.eval()


def _with_ema(vq, weights: dict) -> dict:
    """`weights` plus the tokenizer's EMA statistics, which only training reads, started from the codebooks
    (count 1 per code)."""
    out = dict(weights)
    for key, ours in vq.state_dict().items():
        layer = key.rsplit(".", 1)[0]
        if key.endswith(".initialised"):
            out[key] = torch.tensor(True)
        elif key.endswith(".code_count"):
            out[key] = torch.ones_like(ours)
        elif key.endswith(".code_sum"):
            out[key] = weights[f"{layer}.embed"]
    return out


def convert(*, t2m_path, res_path, vq_path, heads: int = N_HEADS, res_heads: int = N_HEADS):
    """(t2m, res, vq) modules with the official checkpoints' weights, every tensor checked."""
    from ..models.residual import ResidualConfig, ResidualTransformer
    from ..models.transformer import BAMMConfig, BAMMTransformer
    from ..models.vq import RVQVAE, RVQVAEConfig

    t2m_state = read_state(t2m_path, ENTRIES["t2m"])
    sizes = K.t2m_sizes(t2m_state, str(t2m_path))
    K.check_layout(t2m_state, K.t2m_layout(**sizes), str(t2m_path))
    res_state = read_state(res_path, ENTRIES["res"])
    rsizes = K.res_sizes(res_state, str(res_path))
    K.check_layout(res_state, K.res_layout(**rsizes), str(res_path))
    vq_state = read_state(vq_path, ENTRIES["vq"])
    vsizes = K.vq_sizes(vq_state, str(vq_path))
    for what, a, b in [("code_num", sizes["code_num"], vsizes["code_num"]),
                       ("code_num", rsizes["code_num"], vsizes["code_num"]),
                       ("num_quantizers", rsizes["num_quantizers"], vsizes["num_quantizers"])]:
        if a != b:
            raise ValueError(f"the checkpoints do not belong together: {what} {a} (transformer) vs {b} "
                             f"(tokenizer {vq_path})")
    if sizes["text_dim"] != rsizes["text_dim"]:
        raise ValueError(f"{t2m_path} reads {sizes['text_dim']}-d text, {res_path} {rsizes['text_dim']}-d")
    try:
        vq_cfg = RVQVAEConfig(input_dim=vsizes["input_dim"], code_num=vsizes["code_num"],
                              code_dim=vsizes["code_dim"], num_quantizers=vsizes["num_quantizers"],
                              width=vsizes["width"], down_t=vsizes["down_t"], depth=vsizes["depth"])
        t2m_cfg = BAMMConfig(code_num=sizes["code_num"], text_dim=sizes["text_dim"], latent_dim=sizes["width"],
                             n_layers=sizes["n_layers"], n_heads=heads, ff_dim=sizes["ff"], max_tokens=K.MAX_TOKENS,
                             arch="official")
        res_cfg = ResidualConfig(code_num=rsizes["code_num"], num_quantizers=rsizes["num_quantizers"],
                                 text_dim=rsizes["text_dim"], latent_dim=rsizes["width"],
                                 n_layers=rsizes["n_layers"], n_heads=res_heads, ff_dim=rsizes["ff"],
                                 max_tokens=K.RES_MAX_TOKENS, arch="official")
    except ValueError as e:
        raise ValueError(f"the checkpoints' sizes do not make a model: {e}") from None
    vq = RVQVAE(vq_cfg)
    K.check_layout(vq_state, K.vq_layout(vq), str(vq_path))
    _load(vq, _with_ema(vq, K.convert_vq(vq_state)), str(vq_path))
    t2m = _load(BAMMTransformer(t2m_cfg), K.convert_t2m(t2m_state, t2m_cfg.code_num), str(t2m_path))
    res = _load(ResidualTransformer(res_cfg), K.convert_res(res_state, res_cfg.code_num, res_cfg.num_quantizers),
                str(res_path))
    return t2m, res, vq


def clip_text_tensors(path) -> dict[str, torch.Tensor]:
    """The text tower of an OpenAI CLIP file (read without running code; see models/clip_text.py)."""
    from ..models.clip_text import read_clip_state_dict, to_transformers

    state = read_clip_state_dict(path)
    skip = ("logit_scale", "input_resolution", "context_length", "vocab_size")  # image tower and training scalars
    text = {k: v for k, v in state.items() if not k.startswith("visual.") and k not in skip}
    to_transformers(text, Path(path))  # every key the text encoder needs is there (clear error otherwise)
    return {k: v.contiguous().clone() for k, v in text.items()}


def import_official(*, t2m, res, vq, out, meta=None, clip=None, heads: int | None = None,
                    res_heads: int | None = None) -> Path:
    """Write the weights folder `out` from the official checkpoints. Returns its bamm.json path. heads /
    res_heads: attention heads (None: from the run's opt.txt, else 6)."""
    from ..decoding.generate import FORMAT_VERSION
    from ..models.checkpoint import save_model, save_tensors

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder; choose a new folder (nothing overwritten)")
    heads = K.heads_of(t2m) if heads is None else heads
    res_heads = K.heads_of(res) if res_heads is None else res_heads
    t2m_m, res_m, vq_m = convert(t2m_path=t2m, res_path=res, vq_path=vq, heads=heads, res_heads=res_heads)
    meta = Path(meta) if meta else Path(vq).resolve().parent.parent / "meta"
    mean, std = read_stats(meta, vq_m.config.input_dim)
    text_tensors = None
    if clip:
        text_tensors = clip_text_tensors(clip)
        dim = text_tensors["text_projection"].shape[-1]
        if dim != t2m_m.config.text_dim:
            raise ValueError(f"{clip}: CLIP gives {dim}-d text features, the transformers read "
                             f"{t2m_m.config.text_dim}-d")
    out.mkdir(parents=True, exist_ok=True)
    for name, model in (("vq", vq_m), ("t2m", t2m_m), ("res", res_m)):
        save_model(model, model.config, out, name)
    save_tensors(out / "stats.safetensors", {"mean": torch.from_numpy(mean), "std": torch.from_numpy(std)})
    if text_tensors is not None:
        save_tensors(out / CLIP_FILE, text_tensors)
    info = {"format_version": FORMAT_VERSION, "text_encoder": f"clip:{CLIP_FILE}" if clip else "clip",
            "fps": 20.0, "frames_per_token": vq_m.config.frames_per_token,
            "max_frames": (K.MAX_TOKENS - 1) * vq_m.config.frames_per_token}
    (out / "bamm.json").write_text(json.dumps(info, indent=2) + "\n")
    return out / "bamm.json"


def main(name: str = "import-official", argv: list[str] | None = None) -> int:
    from ..cli.main import ArgumentParser  # one-line usage errors, exit 2
    from ..contract.limits import InputError

    p = ArgumentParser(prog=f"bamm {name}", description=__doc__.split("\n\n")[0])
    p.add_argument("--t2m", required=True, help="BAMM transformer checkpoint (.tar, entry t2m_transformer)")
    p.add_argument("--res", required=True, help="MoMask residual transformer checkpoint (.tar, entry res_transformer)")
    p.add_argument("--vq", required=True, help="MoMask RVQ-VAE checkpoint (.tar, entry vq_model)")
    p.add_argument("--meta", help="folder with mean.npy and std.npy (default: meta/ beside the RVQ-VAE's model/)")
    p.add_argument("--clip", help="OpenAI CLIP ViT-B/32 file (ViT-B-32.pt); its text tower is copied into the "
                                  "folder (default: none, found at load time)")
    p.add_argument("--heads", type=int, help="attention heads of the BAMM transformer (default: n_heads of the "
                                             "run's opt.txt beside model/, else 6)")
    p.add_argument("--res-heads", type=int, help="attention heads of the residual transformer (default: n_heads of "
                                                 "its run's opt.txt, else 6)")
    p.add_argument("--runtime", action="store_true",
                   help="write a runtime folder for ONNX Runtime and the add-on instead (numpy only, as the add-on's "
                        "Import Published Model; needs --clip and the published models' sizes)")
    p.add_argument("--precision", choices=("int8", "float32"), default="int8",
                   help="with --runtime: int8 token transformers (default; faster, smaller) or float32 (the same "
                        "tokens as the published code)")
    p.add_argument("--templates", help="with --runtime: the graph templates folder (default: the extension's, "
                                       "else built now with torch, about a minute)")
    p.add_argument("--out", required=True, help="new weights folder (with --runtime: new runtime folder)")
    args = p.parse_args(argv)
    if args.runtime:
        return _main_runtime(args)
    try:
        path = import_official(t2m=args.t2m, res=args.res, vq=args.vq, out=args.out, meta=args.meta,
                               clip=args.clip, heads=args.heads, res_heads=args.res_heads)
    except (ValueError, OSError) as e:  # a file the user gave is missing, in the way or not what it should be
        raise InputError(str(e)) from None
    print(f"wrote {path.parent} (arch 'official'; generate with: bamm generate \"<prompt>\" --weights {path.parent})")
    return 0


def _main_runtime(args) -> int:
    """``--runtime``: the add-on's torch-free import (`runtime.published`) from the command line."""
    import tempfile

    from ..contract.limits import InputError
    from ..runtime.published import import_published, packaged_templates

    if not args.clip:
        raise InputError("--runtime needs --clip <ViT-B-32.pt>: the runtime folder carries the text encoder")
    if args.heads or args.res_heads:
        raise InputError("--heads / --res-heads: a runtime folder is made for the published models' 6 heads; "
                         "import other models without --runtime")
    with tempfile.TemporaryDirectory(prefix="bamm-templates-") as tmp:
        templates = Path(args.templates) if args.templates else packaged_templates()
        if templates is None:
            from ..runtime.templates import build_templates

            print("building the graph templates of the published architecture (about a minute)")
            templates = build_templates(tmp).parent
        try:
            path = import_published(t2m=args.t2m, res=args.res, vq=args.vq, clip=args.clip, meta=args.meta,
                                    out=args.out, templates=templates, precision=args.precision)
        except (ValueError, OSError) as e:
            raise InputError(str(e)) from None
    size = json.loads(path.read_text())["about"]["bytes"]
    print(f"wrote {path.parent} ({size / 1e6:.0f} MB; generate with: bamm generate \"<prompt>\" --weights "
          f"{path.parent})")
    return 0
