"""Build time (torch + onnx): graph templates of the published BAMM / MoMask / CLIP architecture.

A template is a runtime folder's graphs (`runtime/export.py`, `runtime/clip_export.py`) for the published
HumanML3D models at their sizes (`PAPER`), exported from modules with random weights, whose weights are then
taken out of the graphs: every initializer that is a weight of the modules (as it is, transposed, or stored as
float16) becomes an ONNX external-data reference to a *slot* of a weight file, and only constants that do not
depend on the weights (shapes, positional encodings, scales) stay inside the graph. The extension zip carries
the templates (a few MB); `runtime/published.py` fills the slots from the user's own checkpoints with numpy
alone, so the published models are imported inside stock Blender without torch.

Weight files (each slot 4096-byte aligned, so ONNX Runtime can map it):
- ``t2m.weights``: the BAMM transformer, read by both ``t2m_prefill.onnx`` and ``t2m_step.onnx`` (one copy);
- ``res.weights``: the residual transformer; ``vq.weights``: the RVQ-VAE encoder, decoder and codebooks,
  stored as float16 (decoded features move by about 1e-3; generated tokens are not affected; a motion
  encoded for editing may get a neighbouring code where two are nearly equally close);
- ``text.weights``: CLIP's text tower, stored as float16 (OpenAI's ViT-B-32.pt holds float16 weights, so
  nothing is lost for that file).
Precisions: ``int8`` (the token transformers' weight matrices as int8 columns, ``*.int8.onnx`` /
``*.int8.weights``) and ``float32``.

``templates.json`` lists, for each weight file, its slots (``source``: the tensor by the converted name,
``t2m.*`` / ``res.*`` / ``vq.*`` as `official.keys` converts them, ``clip.*`` by OpenAI's key;
``transpose``; ``dtype``; ``shape``; ``offset``), the official tensor layouts every checkpoint is checked
against, and the runtime.json the imported folder gets.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from .published import TEMPLATE_FORMAT, quantize_columns

ALIGN = 4096
PAPER = dict(code_num=512, code_dim=512, width=384, ff=1024, text_dim=512, t2m_layers=8, res_layers=8,
             heads=6, num_quantizers=6, vq_width=512, vq_depth=3, down_t=2, input_dim=263)
CLIP_PAPER = dict(width=512, layers=12, vocab=49408, context=77, projection=512)
GRAPHS = {"prefill": "t2m_prefill.onnx", "step": "t2m_step.onnx", "residual": "res.onnx",
          "vq_encode": "vq_encode.onnx", "vq_decode": "vq_decode.onnx"}
INT8_GRAPHS = ("prefill", "step", "residual")  # the token transformers, quantized in the int8 precision
WEIGHT_FILES = {"prefill": "t2m.weights", "step": "t2m.weights", "residual": "res.weights",
                "vq_encode": "vq.weights", "vq_decode": "vq.weights", "text": "text.weights"}
FLOAT16_GRAPHS = ("vq_encode", "vq_decode", "text")
PRECISIONS = ("int8", "float32")
MIN_INT8_ELEMENTS = 16384  # matrices smaller than this stay float32


def _modules(sizes: dict, seed: int):
    """(t2m, res, vq, NetsConfig) of the official architecture at `sizes`, every weight random and distinct."""
    import torch

    from ..decoding.nets import NetsConfig
    from ..models.residual import ResidualConfig, ResidualTransformer
    from ..models.transformer import BAMMConfig, BAMMTransformer
    from ..models.vq import RVQVAE, RVQVAEConfig
    from ..official.keys import MAX_TOKENS, RES_MAX_TOKENS

    s = sizes
    torch.manual_seed(seed)
    vq = RVQVAE(RVQVAEConfig(input_dim=s["input_dim"], code_num=s["code_num"], code_dim=s["code_dim"],
                             num_quantizers=s["num_quantizers"], width=s["vq_width"], down_t=s["down_t"],
                             depth=s["vq_depth"], dropout=0.0))
    t2m = BAMMTransformer(BAMMConfig(code_num=s["code_num"], text_dim=s["text_dim"], latent_dim=s["width"],
                                     n_layers=s["t2m_layers"], n_heads=s["heads"], ff_dim=s["ff"],
                                     max_tokens=MAX_TOKENS, arch="official"))
    res = ResidualTransformer(ResidualConfig(code_num=s["code_num"], num_quantizers=s["num_quantizers"],
                                             text_dim=s["text_dim"], latent_dim=s["width"], n_layers=s["res_layers"],
                                             n_heads=s["heads"], ff_dim=s["ff"], max_tokens=RES_MAX_TOKENS,
                                             arch="official"))
    with torch.no_grad():
        for module in (t2m, res, vq):
            for p in _weights(module).values():
                p.normal_(0.0, 0.05)
    config = NetsConfig(code_num=s["code_num"], max_tokens=MAX_TOKENS, res_max_tokens=RES_MAX_TOKENS,
                        num_quantizers=s["num_quantizers"], frames_per_token=vq.config.frames_per_token, fps=20.0,
                        text_dim=s["text_dim"], input_dim=s["input_dim"])
    return t2m.eval(), res.eval(), vq.eval(), config


def _weights(module) -> dict:
    """The tensors of `module` that come from a checkpoint: its parameters and the RVQ codebooks (buffers)."""
    out = dict(module.named_parameters())
    out.update({k: v for k, v in module.named_buffers() if k.endswith(".embed")})
    return out


def _clip_state(c: dict, seed: int) -> dict:
    """OpenAI-keyed random text-tower tensors of CLIP's shapes `c` (float32, distinct values)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    w = c["width"]
    shapes = {"token_embedding.weight": (c["vocab"], w), "positional_embedding": (c["context"], w),
              "ln_final.weight": (w,), "ln_final.bias": (w,), "text_projection": (w, c["projection"])}
    for i in range(c["layers"]):
        p = f"transformer.resblocks.{i}."
        shapes.update({p + "attn.in_proj_weight": (3 * w, w), p + "attn.in_proj_bias": (3 * w,),
                       p + "attn.out_proj.weight": (w, w), p + "attn.out_proj.bias": (w,),
                       p + "ln_1.weight": (w,), p + "ln_1.bias": (w,), p + "ln_2.weight": (w,), p + "ln_2.bias": (w,),
                       p + "mlp.c_fc.weight": (4 * w, w), p + "mlp.c_fc.bias": (4 * w,),
                       p + "mlp.c_proj.weight": (w, 4 * w), p + "mlp.c_proj.bias": (w,)})
    return {k: 0.05 * torch.randn(shape, generator=g) for k, shape in shapes.items()}


def _digest(array: np.ndarray) -> tuple:
    return array.dtype.str, array.shape, hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def _candidates(tensors: dict[str, np.ndarray], kind: str) -> dict[tuple, tuple[str, bool, str]]:
    """digest -> (source, transpose, form) of every tensor as it is and transposed, in float32 and `kind`'s
    other forms: "float16" (the tensor stored as float16), "int8" (`quantize_columns`' int8 values and
    "int8-scale" scales), "float32" (none)."""
    out = {}
    for name, value in tensors.items():
        for transpose in (False, True):
            if transpose and value.ndim != 2:
                continue
            v = value.T if transpose else value
            out.setdefault(_digest(v.astype(np.float32)), (name, transpose, "float32"))
            if kind == "float16":
                out.setdefault(_digest(v.astype(np.float16)), (name, transpose, "float16"))
            if kind == "int8" and v.ndim == 2 and v.size >= MIN_INT8_ELEMENTS:
                q, scale = quantize_columns(v)
                out.setdefault(_digest(q), (name, transpose, "int8"))
                out.setdefault(_digest(scale), (name, transpose, "int8-scale"))
    return out


def _quantize_matmuls(model):
    """A copy of the ONNX `model` whose MatMuls by a float32 weight matrix of at least MIN_INT8_ELEMENTS values
    run as ONNX Runtime's DynamicQuantizeMatMul: the weight as int8 per column (`quantize_columns`), the input
    quantized to uint8 when it runs."""
    from onnx import ModelProto, TensorProto, helper, numpy_helper

    out = ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    users = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    nodes, dropped = [], set()
    for node in graph.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if w is None or w.data_type != TensorProto.FLOAT or len(w.dims) != 2 or int(np.prod(w.dims)) < MIN_INT8_ELEMENTS:
            nodes.append(node)
            continue
        q, scale = quantize_columns(numpy_helper.to_array(w))
        names = [f"{w.name}__int8", f"{w.name}__scale", f"{w.name}__zero"]
        if names[0] not in inits:
            for name, value in zip(names, (q, scale, np.zeros(q.shape[1], np.int8))):
                inits[name] = numpy_helper.from_array(value, name=name)
                graph.initializer.append(inits[name])
        nodes.append(helper.make_node("DynamicQuantizeMatMul", [node.input[0], *names], list(node.output),
                                      name=f"{node.name}_int8", domain="com.microsoft"))
        users[w.name] -= 1
        if users[w.name] == 0:
            dropped.add(w.name)
    kept = [t for t in graph.initializer if t.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out


class _WeightFile:
    """Slots of one weight file: the same (source, transpose, form) read by several graphs is stored once."""

    def __init__(self, name: str):
        self.name, self.slots, self.size = name, {}, 0

    def slot(self, source: str, transpose: bool, form: str, shape: tuple) -> dict:
        key = (source, transpose, form)
        if key not in self.slots:
            dtype = {"int8-scale": "float32"}.get(form, form)
            length = int(np.prod(shape)) * np.dtype(dtype).itemsize
            self.slots[key] = {"source": source, "transpose": transpose, "form": form, "shape": list(shape),
                               "offset": self.size, "length": length}
            self.size += -(-length // ALIGN) * ALIGN
        return self.slots[key]


def _externalise(model, candidates: dict, weights: _WeightFile) -> int:
    """Turns every initializer of `model` found among `candidates` into a reference to its slot in `weights`
    (in place). Returns how many."""
    from onnx import TensorProto, numpy_helper

    count = 0
    for tensor in model.graph.initializer:
        if tensor.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT8):
            continue
        found = candidates.get(_digest(numpy_helper.to_array(tensor)))
        if found is None:
            continue
        slot = weights.slot(*found, tuple(tensor.dims))
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.ClearField("int32_data")
        tensor.data_location = TensorProto.EXTERNAL
        del tensor.external_data[:]
        for key, value in (("location", weights.name), ("offset", str(slot["offset"])),
                           ("length", str(slot["length"]))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        count += 1
    return count


def _layouts(sizes: dict, vq, clip: dict) -> dict:
    from ..official import keys as K

    common = {k: sizes[k] for k in ("code_num", "code_dim", "width", "ff", "text_dim")}
    return {"t2m": K.t2m_layout(**common, n_layers=sizes["t2m_layers"]),
            "res": K.res_layout(**common, n_layers=sizes["res_layers"], num_quantizers=sizes["num_quantizers"]),
            "vq": K.vq_layout(vq), "clip": {k: tuple(v.shape) for k, v in clip.items()}}


def build_templates(out_dir, *, sizes: dict | None = None, clip_sizes: dict | None = None, seed: int = 0) -> Path:
    """Writes the templates (graphs, tokenizer.json, templates.json) into `out_dir`; returns templates.json.
    sizes / clip_sizes: the architecture (default `PAPER` / `CLIP_PAPER`; tests use smaller ones)."""
    import onnx
    import torch

    from .clip_export import ClipTextGraph, runtime_tokenizer
    from .export import export_graphs, runtime_info
    from .text_graph import FORMAT_VERSION as TEXT_FORMAT, INPUT_NAMES, OUTPUT_NAME, export_text_graph, \
        store_weights_float16
    from ..models.clip_text import build_clip_tokenizer

    sizes, clip_sizes = dict(sizes or PAPER), dict(clip_sizes or CLIP_PAPER)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t2m, res, vq, config = _modules(sizes, seed)
    clip = _clip_state(clip_sizes, seed + 1)
    tokenizer = build_clip_tokenizer()
    tensors = {f"{name}.{k}": v.detach().numpy() for name, module in (("t2m", t2m), ("res", res), ("vq", vq))
               for k, v in _weights(module).items()}
    tensors.update({f"clip.{k}": v.numpy() for k, v in clip.items()})
    with tempfile.TemporaryDirectory() as tmp:
        export_graphs(t2m=t2m, res=res, vq=vq, config=config, out=Path(tmp), graphs=GRAPHS)
        protos = {name: onnx.load(str(Path(tmp) / file)) for name, file in GRAPHS.items()}
    eot = int(tokenizer.eos_token_id)
    text_graph = ClipTextGraph(clip, eot_id=eot).eval()
    runtime_tok = runtime_tokenizer(tokenizer, clip_sizes["context"])
    with torch.no_grad():
        protos["text"] = export_text_graph(text_graph, runtime_tok, sample=["a person walks", "a man jumps"],
                                           pad_id=0, length_bound=clip_sizes["context"])
    for name in FLOAT16_GRAPHS:
        protos[name] = store_weights_float16(protos[name])
    kinds = {kind: _candidates(tensors, kind) for kind in ("float32", "float16", "int8")}
    files, variants, counts = {}, {}, {}
    for precision in PRECISIONS:
        graphs = {}
        for name in [*GRAPHS, "text"]:
            quantized = precision == "int8" and name in INT8_GRAPHS
            proto = _quantize_matmuls(protos[name]) if quantized else protos[name]
            suffix = ".int8" if quantized else ""
            file = GRAPHS.get(name, "text.onnx").replace(".onnx", f"{suffix}.onnx")
            weights = WEIGHT_FILES[name].replace(".weights", f"{suffix}.weights")
            files.setdefault(weights, _WeightFile(weights))
            if file not in counts:
                kind = "int8" if quantized else "float16" if name in FLOAT16_GRAPHS else "float32"
                counts[file] = _externalise(proto, kinds[kind], files[weights])
                onnx.save_model(proto, str(out / file))
            graphs[name] = file
        variants[precision] = {"graphs": {k: v for k, v in graphs.items() if k != "text"},
                               "weights": sorted({WEIGHT_FILES[n].replace(".weights", ".int8.weights")
                                                  if precision == "int8" and n in INT8_GRAPHS else WEIGHT_FILES[n]
                                                  for n in graphs})}
    runtime_tok.save(str(out / "tokenizer.json"))
    text_json = {"format_version": TEXT_FORMAT, "text_encoder": "clip", "dim": clip_sizes["projection"],
                 "max_length": clip_sizes["context"], "pad_id": 0, "weights_dtype": "float16",
                 "inputs": list(INPUT_NAMES), "output": OUTPUT_NAME}
    info = runtime_info(config=config, t2m_config=t2m.config, text_encoder="clip",
                        text_files=["text.onnx", "text.json", "tokenizer.json"], graphs={})
    weights = {name: {"bytes": f.size, "slots": list(f.slots.values())} for name, f in sorted(files.items())}
    template = {"format_version": TEMPLATE_FORMAT, "architecture": "official", "sizes": sizes, "clip": clip_sizes,
                "runtime": info, "text": text_json, "variants": variants, "weights": weights,
                "externalised": counts,
                "layouts": {k: {n: list(s) for n, s in v.items()} for k, v in _layouts(sizes, vq, clip).items()}}
    (out / "templates.json").write_text(json.dumps(template, indent=1) + "\n")
    return out / "templates.json"
