"""Random checkpoints in the published BAMM / MoMask file layout, from a fixed seed (tests only).

Paper widths (384-wide transformers, 512-d codes, 512 codes + END / PAD / MASK, 6 RVQ layers, 512-d CLIP
text), few layers. Written with `torch.save` like the official training code: the model entry plus optimiser
and scheduler state, which the importer ignores. tests/data/official/reference.safetensors holds what the
official code computes from exactly these tensors.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from model_core.models.vq import RVQVAE, RVQVAEConfig
from model_core.official import keys as K

SIZES = dict(code_num=512, code_dim=512, width=384, ff=1024, text_dim=512)
T2M_LAYERS, RES_LAYERS, NUM_Q = 2, 2, 6
VQ_CONFIG = RVQVAEConfig(input_dim=263, code_num=512, code_dim=512, num_quantizers=NUM_Q, width=512, down_t=2,
                         depth=2, dropout=0.0)
PE_LEN = 5000


def _pe(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe[:, None]


def random_state(layout: dict, seed: int) -> dict[str, torch.Tensor]:
    """Tensors of `layout`, N(0, 0.02) weights, norms near 1, codebooks N(0, 1), in sorted key order."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(layout):
        shape = layout[key]
        if key.endswith("position_enc.pe"):
            out[key] = _pe(shape[0], shape[-1])
        elif key.endswith("codebook"):
            out[key] = torch.randn(shape, generator=g)
        elif ("norm" in key or "LayerNorm" in key) and key.endswith("weight"):
            out[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif key.startswith(("encoder", "decoder")):
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            out[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        else:
            out[key] = (0.02 if len(shape) > 1 else 0.05) * torch.randn(shape, generator=g)
    return out


def layouts(*, layers: int | None = None, vq_depth: int | None = None) -> dict[str, dict]:
    """The three official layouts; layers / vq_depth: transformer layers and RVQ-VAE depth (default the small
    test sizes; 8 and 3 are the published models')."""
    vq_config = VQ_CONFIG if vq_depth is None else dataclasses.replace(VQ_CONFIG, depth=vq_depth)
    return {"t2m": K.t2m_layout(**SIZES, n_layers=layers or T2M_LAYERS, pe_len=PE_LEN),
            "res": K.res_layout(**SIZES, n_layers=layers or RES_LAYERS, num_quantizers=NUM_Q, pe_len=PE_LEN),
            "vq": K.vq_layout(RVQVAE(vq_config))}


def states(seed: int = 0, end_bias: float = 1.0, **sizes) -> dict[str, dict]:
    """The three state dicts; end_bias is the [END] logit's bias (1.0: greedy decoding ends at token 24 on
    `fixed_inputs`; 4.0: at token 1 and 0, the END-at-0 case); sizes: those of `layouts`."""
    out = {name: random_state(layout, seed + i) for i, (name, layout) in enumerate(layouts(**sizes).items())}
    out["t2m"]["output_process.poseFinal.bias"][SIZES["code_num"]] = end_bias
    return out


def write_official(folder, seed: int = 0, end_bias: float = 1.0, **sizes) -> dict[str, Path]:
    """t2m.tar, res.tar, vq/model/net_best_fid.tar, vq/meta/{mean,std}.npy in `folder`; returns the paths.
    sizes: those of `layouts` (layers=8, vq_depth=3: the published models' sizes)."""
    folder = Path(folder)
    entries = {"t2m": "t2m_transformer", "res": "res_transformer", "vq": "vq_model"}
    paths = {"t2m": folder / "t2m.tar", "res": folder / "res.tar", "vq": folder / "vq" / "model" / "net_best_fid.tar"}
    for name, state in states(seed, end_bias, **sizes).items():
        param = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.AdamW([param], lr=2e-4)
        param.grad = torch.ones(2)
        opt.step()
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [10, 20])
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        torch.save({entries[name]: state, f"opt_{entries[name]}": opt.state_dict(), "scheduler": sched.state_dict(),
                    "ep": 3, "total_it": 1000}, paths[name])
    g = np.random.default_rng(seed)
    meta = folder / "vq" / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    np.save(meta / "mean.npy", g.normal(size=263).astype(np.float32))
    np.save(meta / "std.npy", (0.5 + g.random(263)).astype(np.float32))
    paths["meta"] = meta
    return paths


def fixed_inputs() -> dict[str, torch.Tensor]:
    """Inputs the reference outputs were computed on (text vectors, ids, codes, features)."""
    g = torch.Generator().manual_seed(1234)
    text = torch.randn(2, 512, generator=g)
    ids = torch.randint(0, 512, (2, 50), generator=g)
    codes = torch.randint(0, 512, (2, 12, NUM_Q), generator=g)
    features = torch.randn(1, 48, 263, generator=g)
    return {"text": text, "ids": ids, "codes": codes, "features": features}


def random_clip_file(path: Path, *, width: int = 64, layers: int = 1, half: bool = False) -> Path:
    """An OpenAI-keyed CLIP checkpoint with a random text tower (default: width 64, one layer, 512-d output;
    width 512 and 12 layers are ViT-B/32's) and a stand-in image tower, saved with torch.save. half: float16
    tensors, as OpenAI's ViT-B-32.pt stores them."""
    g = torch.Generator().manual_seed(7)
    w = width
    state = {"token_embedding.weight": torch.randn(49408, w, generator=g) * 0.02,
             "positional_embedding": torch.randn(77, w, generator=g) * 0.01,
             "ln_final.weight": torch.ones(w), "ln_final.bias": torch.zeros(w),
             "text_projection": torch.randn(w, 512, generator=g) * 0.1, "logit_scale": torch.tensor(4.6),
             "visual.proj": torch.randn(32, 512, generator=g)}
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        for name, shape in [("attn.in_proj_weight", (3 * w, w)), ("attn.in_proj_bias", (3 * w,)),
                            ("attn.out_proj.weight", (w, w)), ("attn.out_proj.bias", (w,)),
                            ("ln_1.weight", (w,)), ("ln_1.bias", (w,)), ("ln_2.weight", (w,)), ("ln_2.bias", (w,)),
                            ("mlp.c_fc.weight", (4 * w, w)), ("mlp.c_fc.bias", (4 * w,)),
                            ("mlp.c_proj.weight", (w, 4 * w)), ("mlp.c_proj.bias", (w,))]:
            state[p + name] = torch.randn(shape, generator=g) * 0.05 + (1.0 if name.endswith("ln_1.weight") or
                                                                          name.endswith("ln_2.weight") else 0.0)
    if half:
        state = {k: v.half() for k, v in state.items()}
    torch.save(state, path)
    return path


class FixedText:
    """A text encoder giving `fixed_inputs`' text vectors for the prompts "a" and "b" (the text encoder is not
    under test); ``numpy=True``: as a numpy array (the ONNX Runtime back end's text encoders)."""

    name, dim = "fixed", 512

    def __init__(self, *, numpy: bool = False):
        self.numpy = numpy

    def to(self, device):
        return self

    def encode(self, prompts):
        text = fixed_inputs()["text"][["ab".index(p) for p in prompts]]
        return text.numpy() if self.numpy else text
