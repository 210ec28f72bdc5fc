"""The published checkpoints' tensor layouts and their conversion to this project's modules (arch "official").

Layouts (`*_layout`) give every tensor's name and shape from a few sizes, so a file is checked key by key
before anything is converted. Conversions fold what the official modules compute in two steps into one
table, in float64, then store float32:

* BAMM transformer: ``token_emb`` (codes, END, PAD, MASK x code_dim) followed by ``input_process.poseEmbedding``
  (code_dim -> width) is one table of the first code_num + 2 rows; the MASK row is never an input. The null
  text token is ``cond_emb`` of a zero vector, i.e. its bias. ``nn.MultiheadAttention``'s packed ``in_proj``
  is q, k, v in that order, as `transformer.SelfAttention.qkv`.
* Residual transformer (MoMask, separate tables with shared middle layers): layer l's input table is
  ``cat(token_embed_weight_, embed_proj_shared_weight)[l]`` through ``poseEmbedding`` (its bias added once,
  with layer 0, which every predicted layer sums), its output table ``cat(embed_proj_shared_weight,
  output_proj_weight_)[j - 1]`` times ``poseFinal`` (that layer's bias goes to ``out_bias``); the PAD row of
  both tables is dropped. ``quant_emb`` of a one-hot layer id is a table of the layers.
* RVQ-VAE: the same convolutions under ``.model`` containers; ``quantizer.layers.i.codebook`` is the codebook.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

N_HEADS = 6  # BAMM t2m (nhead6) and MoMask's residual transformer; head counts are not visible in the files
MAX_TOKENS = 50  # 49 motion tokens + END (196 frames)
RES_MAX_TOKENS = 56

# -------------------------------------------------------------------------------------------------- layouts


def _block_layout(prefix: str, n_layers: int, width: int, ff: int) -> dict[str, tuple[int, ...]]:
    out = {}
    for i in range(n_layers):
        p = f"{prefix}.layers.{i}."
        out.update({p + "self_attn.in_proj_weight": (3 * width, width), p + "self_attn.in_proj_bias": (3 * width,),
                    p + "self_attn.out_proj.weight": (width, width), p + "self_attn.out_proj.bias": (width,),
                    p + "linear1.weight": (ff, width), p + "linear1.bias": (ff,),
                    p + "linear2.weight": (width, ff), p + "linear2.bias": (width,),
                    p + "norm1.weight": (width,), p + "norm1.bias": (width,),
                    p + "norm2.weight": (width,), p + "norm2.bias": (width,)})
    return out


def t2m_layout(*, code_num: int, code_dim: int, width: int, ff: int, n_layers: int, text_dim: int,
               pe_len: int = 5000) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the official BAMM transformer (``t2m_transformer`` entry)."""
    return {"cond_emb.weight": (width, text_dim), "cond_emb.bias": (width,),
            "input_process.poseEmbedding.weight": (width, code_dim), "input_process.poseEmbedding.bias": (width,),
            "position_enc.pe": (pe_len, 1, width), "token_emb.weight": (code_num + 3, code_dim),
            **_block_layout("seqTransEncoder", n_layers, width, ff),
            "output_process.dense.weight": (width, width), "output_process.dense.bias": (width,),
            "output_process.LayerNorm.weight": (width,), "output_process.LayerNorm.bias": (width,),
            "output_process.poseFinal.weight": (code_num + 1, width), "output_process.poseFinal.bias": (code_num + 1,)}


def res_layout(*, code_num: int, code_dim: int, width: int, ff: int, n_layers: int, text_dim: int,
               num_quantizers: int, pe_len: int = 5000) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of MoMask's residual transformer (``res_transformer`` entry, separate shared tables)."""
    rows = code_num + 1  # codes + PAD
    return {"cond_emb.weight": (width, text_dim), "cond_emb.bias": (width,),
            "input_process.poseEmbedding.weight": (width, code_dim), "input_process.poseEmbedding.bias": (width,),
            "position_enc.pe": (pe_len, 1, width),
            "quant_emb.weight": (width, num_quantizers), "quant_emb.bias": (width,),
            **_block_layout("seqTransEncoder", n_layers, width, ff),
            "output_process.dense.weight": (width, width), "output_process.dense.bias": (width,),
            "output_process.LayerNorm.weight": (width,), "output_process.LayerNorm.bias": (width,),
            "output_process.poseFinal.weight": (code_dim, width), "output_process.poseFinal.bias": (code_dim,),
            "embed_proj_shared_weight": (num_quantizers - 2, rows, code_dim),
            "token_embed_weight_": (1, rows, code_dim), "output_proj_weight_": (1, rows, code_dim)}


def official_vq_key(ours: str) -> str:
    """Our RVQ-VAE tensor name -> the official one (``encoder.2.1.0.conv1.weight`` ->
    ``encoder.model.2.1.model.0.conv1.weight``; ``quantizer.layers.0.embed`` -> ``....codebook``)."""
    parts = ours.split(".")
    if parts[0] == "quantizer":
        return ".".join(parts[:-1] + ["codebook"])
    out, rest = [parts[0], "model", parts[1]], parts[2:]
    resnet_at = "1" if parts[0] == "encoder" else "0"  # the Resnet1D inside a down / up block
    if len(rest) > 2 and rest[0] == resnet_at:
        out, rest = out + [rest[0], "model"], rest[1:]
    return ".".join(out + rest)


def vq_layout(vq) -> dict[str, tuple[int, ...]]:
    """Official tensor shapes of an RVQ-VAE built like our module `vq` (``vq_model`` entry)."""
    return {official_vq_key(k): tuple(v.shape) for k, v in vq.state_dict().items()
            if not k.endswith((".code_sum", ".code_count", ".initialised"))}


# ------------------------------------------------------------------------------------------ sizes from a file


def heads_of(checkpoint) -> int:
    """Attention heads from the training options the official code writes beside the checkpoint
    (``<run>/opt.txt``, a line ``n_heads: 6``, for a checkpoint at ``<run>/model/<file>.tar``); N_HEADS when
    there is no such file or line."""
    opt = Path(checkpoint).resolve().parent.parent / "opt.txt"
    try:
        lines = opt.read_text(errors="replace").splitlines() if opt.is_file() else []
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "n_heads" and value.strip().isdigit():
            return int(value.strip())
    return N_HEADS



def count_layers(state: dict, prefix: str = "seqTransEncoder.layers.") -> int:
    found = {int(m.group(1)) for k in state for m in [re.match(re.escape(prefix) + r"(\d+)\.", k)] if m}
    return max(found) + 1 if found else 0


def _shape(state: dict, key: str, where: str, ndim: int) -> tuple[int, ...]:
    if key not in state:
        raise ValueError(f"{where}: tensor '{key}' is missing (not an official checkpoint of this model?)")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise ValueError(f"{where}: tensor '{key}' has shape {shape}, expected {ndim} dimensions")
    return shape


def t2m_sizes(state: dict, where: str) -> dict:
    width, text_dim = _shape(state, "cond_emb.weight", where, 2)
    rows, code_dim = _shape(state, "token_emb.weight", where, 2)
    return {"code_num": rows - 3, "code_dim": code_dim, "width": width, "text_dim": text_dim,
            "ff": _shape(state, "seqTransEncoder.layers.0.linear1.weight", where, 2)[0],
            "n_layers": count_layers(state),
            "pe_len": _shape(state, "position_enc.pe", where, 3)[0]}


def res_sizes(state: dict, where: str) -> dict:
    width, text_dim = _shape(state, "cond_emb.weight", where, 2)
    _, rows, code_dim = _shape(state, "token_embed_weight_", where, 3)
    return {"code_num": rows - 1, "code_dim": code_dim, "width": width, "text_dim": text_dim,
            "ff": _shape(state, "seqTransEncoder.layers.0.linear1.weight", where, 2)[0],
            "n_layers": count_layers(state),
            "num_quantizers": _shape(state, "quant_emb.weight", where, 2)[1],
            "pe_len": _shape(state, "position_enc.pe", where, 3)[0]}


def vq_sizes(state: dict, where: str) -> dict:
    width, input_dim, _ = _shape(state, "encoder.model.0.weight", where, 3)
    code_num, code_dim = _shape(state, "quantizer.layers.0.codebook", where, 2)
    down = {int(m.group(1)) for k in state for m in [re.match(r"encoder\.model\.(\d+)\.0\.weight$", k)] if m}
    depth = count_layers(state, "encoder.model.2.1.model.")
    return {"input_dim": input_dim, "width": width, "code_num": code_num, "code_dim": code_dim,
            "num_quantizers": count_layers(state, "quantizer.layers."), "down_t": len(down), "depth": depth}


def _is_float(tensor) -> bool:
    """A floating-point numpy array or torch tensor."""
    if hasattr(tensor, "is_floating_point"):
        return bool(tensor.is_floating_point())
    return np.issubdtype(np.asarray(tensor).dtype, np.floating)


def check_layout(state: dict, layout: dict, where: str) -> None:
    """Every tensor of `layout` present with its shape, nothing else: errors name the file and the tensor."""
    missing = [k for k in layout if k not in state]
    unexpected = [k for k in state if k not in layout]
    if missing or unexpected:
        def some(keys):
            return str(keys) if len(keys) <= 4 else f"{keys[:4]} and {len(keys) - 4} more"
        raise ValueError(f"{where}: tensors do not match the official layout: missing {some(missing)}, "
                         f"unexpected {some(unexpected)}")
    for key, want in layout.items():
        got = tuple(state[key].shape)
        if got != tuple(want):
            raise ValueError(f"{where}: tensor '{key}' has shape {got}, expected {tuple(want)}")
        if not _is_float(state[key]):
            raise ValueError(f"{where}: tensor '{key}' has dtype {state[key].dtype}, expected floating point")


# -------------------------------------------------------------------------------------------------- conversion


def _f64(t) -> np.ndarray:
    return np.asarray(t, dtype=np.float64)


def _f32(out: dict) -> dict[str, np.ndarray]:
    return {k: np.ascontiguousarray(np.asarray(v, dtype=np.float32)) for k, v in out.items()}


def _blocks(state: dict, n_layers: int) -> dict:
    names = {"self_attn.in_proj_weight": "attn.qkv.weight", "self_attn.in_proj_bias": "attn.qkv.bias",
             "self_attn.out_proj.weight": "attn.proj.weight", "self_attn.out_proj.bias": "attn.proj.bias",
             "linear1.weight": "mlp.0.weight", "linear1.bias": "mlp.0.bias",
             "linear2.weight": "mlp.2.weight", "linear2.bias": "mlp.2.bias",
             "norm1.weight": "ln1.weight", "norm1.bias": "ln1.bias", "norm2.weight": "ln2.weight",
             "norm2.bias": "ln2.bias"}
    return {f"blocks.{i}.{new}": state[f"seqTransEncoder.layers.{i}.{old}"]
            for i in range(n_layers) for old, new in names.items()}


def convert_t2m(state: dict, code_num: int) -> dict[str, np.ndarray]:
    """Official ``t2m_transformer`` tensors (numpy arrays or torch tensors) -> the state dict of
    `BAMMTransformer` with arch "official", float32 numpy arrays."""
    pose_w, pose_b = _f64(state["input_process.poseEmbedding.weight"]), _f64(state["input_process.poseEmbedding.bias"])
    table = _f64(state["token_emb.weight"])[:code_num + 2] @ pose_w.T + pose_b  # codes, END, PAD
    out = {"text_proj.weight": state["cond_emb.weight"], "text_proj.bias": state["cond_emb.bias"],
           "null_text": state["cond_emb.bias"], "token_emb.weight": table,
           "head.0.weight": state["output_process.dense.weight"], "head.0.bias": state["output_process.dense.bias"],
           "head.2.weight": state["output_process.LayerNorm.weight"],
           "head.2.bias": state["output_process.LayerNorm.bias"],
           "head.3.weight": state["output_process.poseFinal.weight"],
           "head.3.bias": state["output_process.poseFinal.bias"], **_blocks(state, count_layers(state))}
    return _f32(out)


def convert_res(state: dict, code_num: int, num_quantizers: int) -> dict[str, np.ndarray]:
    """Official ``res_transformer`` tensors -> the state dict of `ResidualTransformer` with arch "official",
    float32 numpy arrays."""
    q = num_quantizers
    shared = _f64(state["embed_proj_shared_weight"])[:, :code_num]
    inputs = np.concatenate([_f64(state["token_embed_weight_"])[:, :code_num], shared])  # layers 0..Q-2
    outputs = np.concatenate([shared, _f64(state["output_proj_weight_"])[:, :code_num]])  # layers 1..Q-1
    pose_w, pose_b = _f64(state["input_process.poseEmbedding.weight"]), _f64(state["input_process.poseEmbedding.bias"])
    final_w, final_b = _f64(state["output_process.poseFinal.weight"]), _f64(state["output_process.poseFinal.bias"])
    width = pose_w.shape[0]
    token_emb = np.zeros((q, code_num, width))
    token_emb[:q - 1] = inputs @ pose_w.T
    token_emb[0] += pose_b  # every predicted layer sums layer 0: the projection's bias, added once
    out_emb = np.zeros((q, code_num, width))
    out_emb[1:] = outputs @ final_w
    out_bias = np.zeros((q, code_num))
    out_bias[1:] = outputs @ final_b
    layer_emb = _f64(state["quant_emb.weight"]).T + _f64(state["quant_emb.bias"])
    out = {"token_emb": token_emb, "out_emb": out_emb, "out_bias": out_bias, "layer_emb.weight": layer_emb,
           "cond_proj.weight": state["cond_emb.weight"], "cond_proj.bias": state["cond_emb.bias"],
           "null_cond": state["cond_emb.bias"],
           "head.0.weight": state["output_process.dense.weight"], "head.0.bias": state["output_process.dense.bias"],
           "head.2.weight": state["output_process.LayerNorm.weight"],
           "head.2.bias": state["output_process.LayerNorm.bias"], **_blocks(state, count_layers(state))}
    return _f32(out)


def our_vq_key(official: str) -> str:
    """The inverse of `official_vq_key`: ``encoder.model.2.1.model.0.conv1.weight`` ->
    ``encoder.2.1.0.conv1.weight``, ``quantizer.layers.0.codebook`` -> ``quantizer.layers.0.embed``."""
    parts = [p for p in official.split(".") if p != "model"]
    return ".".join(parts[:-1] + ["embed"]) if parts[0] == "quantizer" else ".".join(parts)


def convert_vq(state: dict) -> dict[str, np.ndarray]:
    """Official ``vq_model`` tensors -> our RVQ-VAE's weights and codebooks by our names, float32 numpy arrays
    (the EMA statistics, which only training reads, are the caller's: `importer` starts them from the
    codebook)."""
    return _f32({our_vq_key(k): v for k, v in state.items()})
