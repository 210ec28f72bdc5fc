"""Build time: what every exported text encoder shares (MiniLM's `text_export`, CLIP's `clip_export`, the
templates of `templates`): the text graph's names, its export from a torch module, float16 weight storage, and
the writing and checking of the three files `text_ort.py` reads (text.onnx, tokenizer.json, text.json)."""

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
