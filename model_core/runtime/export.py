"""Export a weights folder to a runtime folder for ONNX Runtime (build time: needs torch and onnx).

    bamm export-runtime --weights weights --out runtime

The runtime folder holds every graph the decoding loop calls through `nets.Nets` (read by `ort_nets`):

- ``t2m_prefill.onnx``: ids (B, L-1) int64, text_emb (B, D) float32, drop (B,) bool, allowed (B, L, L) bool ->
  logits (B, L, V), keys, values (n_layers, B, n_heads, L, head_dim); L = max_tokens + 1 fixed, B dynamic;
- ``t2m_step.onnx``: ids (B, 1) int64, pos () int64, allowed (B, 1, L) bool, the cache's layers keys_0.. and
  values_0.. (B, n_heads, L, head_dim) -> logits (B, 1, V), keys_new, values_new (n_layers, B, n_heads, 1,
  head_dim): the rows the caller writes at pos (`BAMMTransformer.step_rows`; the graph copies no cache);
- ``res.onnx``: codes (B, N, Q) int64, layer (B,) int64, text_emb (B, D), drop (B,) bool, valid (B, N) bool ->
  logits (B, N, code_num); B and N dynamic;
- ``vq_encode.onnx``: features (B, T, input_dim) float32 normalised, T = 4N -> codes (B, N, Q) int64;
  ``vq_decode.onnx``: codes (B, N, Q) int64 (-1: a zero vector) -> features (B, 4N, input_dim); B and N dynamic;
- ``stats.npz`` (mean, std float32), ``runtime.json`` (`nets.NetsConfig`, cache shape, text encoder, files);
- the text encoder's files from `runtime.text_export.export_text_encoder` (text.onnx, text.json,
  tokenizer.json; MiniLM, or CLIP through `runtime.clip_export` for weights imported by import-official).

Weights of either architecture ("bamm", "official") export the same way: the graphs call the same methods.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

RUNTIME_FORMAT = 1
GRAPHS = {"prefill": "t2m_prefill.onnx", "step": "t2m_step.onnx", "residual": "res.onnx",
          "vq_encode": "vq_encode.onnx", "vq_decode": "vq_decode.onnx"}
OPSET = 18


class Prefill(nn.Module):
    def __init__(self, t2m):
        super().__init__()
        self.t2m = t2m

    def forward(self, ids, text_emb, drop, allowed):
        return self.t2m.prefill(ids, text_emb, drop, allowed)


class Step(nn.Module):
    """`BAMMTransformer.step_rows` with the cache as one input per layer (keys_0.., values_0..): no copy of the
    cache is made in the graph, and the caller writes the new rows."""

    def __init__(self, t2m):
        super().__init__()
        self.t2m = t2m

    def forward(self, ids, pos, allowed, *cache):
        n = len(cache) // 2
        return self.t2m.step_rows(ids, pos, allowed, cache[:n], cache[n:])


class Residual(nn.Module):
    def __init__(self, res):
        super().__init__()
        self.res = res

    def forward(self, codes, layer, text_emb, drop, valid):
        return self.res.layer_logits(codes, layer, text_emb, drop, valid)


class Encode(nn.Module):
    def __init__(self, vq):
        super().__init__()
        self.vq = vq

    def forward(self, features):
        return self.vq.quantizer.quantize(self.vq._latents(features))


class Decode(nn.Module):
    def __init__(self, vq):
        super().__init__()
        self.vq = vq

    def forward(self, codes):
        return self.vq._decode_latents(self.vq.quantizer.dequantize(codes))


def _export(module: nn.Module, args: tuple, path: Path, names: list[str], outputs: list[str], shapes) -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # notices about optional torchvision ops
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module.eval(), args, dynamo=True, external_data=False, opset_version=OPSET,
                                    input_names=names, output_names=outputs, dynamic_shapes=shapes, verbose=False)
    program.save(str(path))


def export_graphs(*, t2m, res, vq, config, out: Path, graphs=GRAPHS) -> None:
    """The ONNX graphs named in `graphs` (a subset of GRAPHS' keys, file names as values) of the torch modules
    into `out` (see the module docstring); `config` is their `nets.NetsConfig`."""
    c = config
    b, n_len = 2, c.length
    batch = torch.export.Dim("batch", min=1, max=1024)
    ids = torch.full((b, n_len - 1), c.pad_id, dtype=torch.long)
    text_emb, drop = torch.zeros(b, c.text_dim), torch.tensor([False, True])
    allowed = torch.ones(b, n_len, n_len, dtype=torch.bool).tril()
    if "prefill" in graphs:
        _export(Prefill(t2m), (ids, text_emb, drop, allowed), out / graphs["prefill"],
                ["ids", "text_emb", "drop", "allowed"], ["logits", "keys_out", "values_out"],
                ({0: batch}, {0: batch}, {0: batch}, {0: batch}))
    if "step" in graphs:
        _, keys, values = t2m.prefill(ids, text_emb, drop, allowed)
        n = len(keys)
        names = [f"keys_{i}" for i in range(n)] + [f"values_{i}" for i in range(n)]
        _export(Step(t2m), (ids[:, :1], torch.tensor(1), allowed[:, 1:2], *keys, *values), out / graphs["step"],
                ["ids", "pos", "allowed", *names], ["logits", "keys_new", "values_new"],
                ({0: batch}, None, {0: batch}, tuple({0: batch} for _ in range(2 * n))))
    q = c.num_quantizers
    if "residual" in graphs:
        tokens = torch.export.Dim("tokens", min=1, max=c.res_max_tokens)
        codes = torch.zeros(b, 8, q, dtype=torch.long)
        _export(Residual(res), (codes, torch.ones(b, dtype=torch.long), text_emb, drop,
                                torch.ones(b, 8, dtype=torch.bool)), out / graphs["residual"],
                ["codes", "layer", "text_emb", "drop", "valid"], ["logits"],
                ({0: batch, 1: tokens}, {0: batch}, {0: batch}, {0: batch}, {0: batch, 1: tokens}))
    vq_tokens = torch.export.Dim("vq_tokens", min=1, max=4096)
    f = c.frames_per_token
    if "vq_encode" in graphs:
        _export(Encode(vq), (torch.zeros(1, 8 * f, c.input_dim),), out / graphs["vq_encode"], ["features"],
                ["codes"], ({0: batch, 1: f * vq_tokens},))
    if "vq_decode" in graphs:
        _export(Decode(vq), (torch.zeros(1, 8, q, dtype=torch.long),), out / graphs["vq_decode"], ["codes"],
                ["features"], ({0: batch, 1: vq_tokens},))


def runtime_info(*, config, t2m_config, text_encoder: str, text_files: list[str] | None, graphs=GRAPHS) -> dict:
    """runtime.json's contents: the nets' numbers, the text encoder, the KV cache's shape, the graphs' files."""
    return {"format_version": RUNTIME_FORMAT, "nets": config.to_json(), "text_encoder": text_encoder,
            "text_files": text_files,
            "cache": {"n_layers": t2m_config.n_layers, "n_heads": t2m_config.n_heads,
                      "head_dim": t2m_config.latent_dim // t2m_config.n_heads},
            "graphs": dict(graphs)}


def export_runtime(weights_dir, out_dir, *, text: bool = True, text_weights: str = "float32") -> Path:
    """Write the runtime folder `out_dir` from the weights folder `weights_dir` (see the module docstring).
    text False leaves the text encoder out (the caller supplies embeddings); text_weights "float16" stores
    the text encoder's weights at half size. Returns runtime.json's path."""
    from ..decoding.generate import BAMM

    weights, out = Path(weights_dir), Path(out_dir)
    if not (weights / "bamm.json").is_file():
        raise FileNotFoundError(f"no BAMM weights in '{weights}' (bamm.json not found)")
    spec = json.loads((weights / "bamm.json").read_text())["text_encoder"]

    class NoText:  # the embeddings' size is all the torch model needs from the encoder here
        name, dim = spec, None

        def to(self, device):
            return self

    t2m_json = json.loads((weights / "t2m.json").read_text())
    NoText.dim = int(t2m_json["config"]["text_dim"])
    model = BAMM.from_pretrained(weights, text_encoder=NoText(), device="cpu")
    nets = model.nets
    c = nets.config
    out.mkdir(parents=True, exist_ok=True)
    t2m = model.t2m
    export_graphs(t2m=t2m, res=model.res, vq=model.vq, config=c, out=out)
    np.savez(out / "stats.npz", mean=nets.mean.astype(np.float32), std=nets.std.astype(np.float32))
    text_files = None
    if text:
        from .text_export import export_text_encoder

        from ..decoding.generate import folder_text_spec

        export_text_encoder(folder_text_spec(spec, weights), out, weights_dtype=text_weights)
        text_files = ["text.onnx", "text.json", "tokenizer.json"]
    from ..vocabulary import write_vocabulary

    write_vocabulary(out, weights)  # what the model knows, read by the vocabulary check
    info = runtime_info(config=c, t2m_config=t2m.config, text_encoder=spec, text_files=text_files)
    (out / "runtime.json").write_text(json.dumps(info, indent=2) + "\n")
    return out / "runtime.json"


def main(command_name: str, argv: list[str]) -> int:
    """``bamm export-runtime --weights DIR --out DIR [--no-text]``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="bamm export-runtime",
                                description="export a weights folder to ONNX graphs for ONNX Runtime")
    p.add_argument("--weights", default="weights", help="weights folder (bamm.json, t2m/res/vq, stats)")
    p.add_argument("--out", required=True, help="runtime folder to write")
    p.add_argument("--no-text", action="store_true", help="leave the text encoder out")
    p.add_argument("--text-weights", choices=("float32", "float16"), default="float32",
                   help="storage of the text encoder's weights (float16: half the size)")
    args = p.parse_args(argv)
    try:
        path = export_runtime(args.weights, args.out, text=not args.no_text, text_weights=args.text_weights)
    except (ValueError, FileNotFoundError) as e:
        print(f"bamm {command_name}: {e}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in path.parent.iterdir() if f.is_file())
    print(f"runtime written to {path.parent} ({size / 2**20:.1f} MiB)")
    return 0
