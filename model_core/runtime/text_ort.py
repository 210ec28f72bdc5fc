"""Run time: a prompt becomes the BAMM condition vector with ONNX Runtime, inside stock Blender.

Imports numpy, onnxruntime and tokenizers only (never torch, transformers or sentence-transformers). Reads the
folder written by `runtime.text_export.export_text_encoder`: ``text.onnx``, ``tokenizer.json``, ``text.json``.
Prompts are tokenised as the torch encoder tokenises them (lower-cased word pieces, [CLS] … [SEP]) and truncated
to ``max_length`` tokens (256 for MiniLM, special tokens included); longer prompts keep their first 254 pieces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
FILES = ("text.json", "text.onnx", "tokenizer.json")


class OrtTextEncoder:
    """The exported text encoder `name` ("minilm" or "minilm-lexical"): `encode(prompts)` → (B, dim) float32."""

    def __init__(self, folder, *, providers=None, batch_size: int = 64, threads: int | None = None):
        """folder: holds text.json, text.onnx and tokenizer.json; providers: ONNX Runtime execution providers
        (default ["CPUExecutionProvider"]); batch_size: prompts per graph run (default 64); threads: CPU
        threads of one graph run (default: ONNX Runtime's choice, one per physical core)."""
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModuleNotFoundError(f"the ONNX text encoder needs the onnxruntime and tokenizers wheels "
                                      f"({exc})") from None
        folder = Path(folder)
        missing = [name for name in FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"text encoder folder {folder} lacks {', '.join(missing)}; write it with "
                                    f"model_core.runtime.text_export.export_text_encoder")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        info = _read_info(folder / "text.json")
        self.folder = folder
        self.name = info["text_encoder"]
        self.dim = info["dim"]
        self.max_length = info["max_length"]
        self.pad_id = info["pad_id"]
        self.weights_dtype = info.get("weights_dtype", "float32")
        self.batch_size = batch_size

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # padded here, to the longest prompt of each batch
        self.tokenizer.enable_truncation(max_length=self.max_length, strategy="longest_first", direction="right")

        providers = _check_providers(providers, ort.get_available_providers())
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / "text.onnx"), options, providers=providers)
        inputs = sorted(i.name for i in self.session.get_inputs())
        outputs = self.session.get_outputs()
        if inputs != sorted(info["inputs"]) or [o.name for o in outputs] != [info["output"]]:
            raise ValueError(f"{folder / 'text.onnx'} has inputs {inputs} and outputs {[o.name for o in outputs]}, "
                             f"text.json names {info['inputs']} and {info['output']!r}")
        width = outputs[0].shape[-1]
        if isinstance(width, int) and width != self.dim:
            raise ValueError(f"{folder / 'text.onnx'} gives {width}-d embeddings, text.json says {self.dim}")
        self.output = info["output"]

    def encode(self, prompts: list[str]) -> np.ndarray:
        """(B, dim) float32 embeddings of the B `prompts`, encoded `batch_size` at a time."""
        if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
            raise TypeError(f"prompts must be a list of strings, got {type(prompts).__name__}")
        wrong = sorted({type(p).__name__ for p in prompts if not isinstance(p, str)})
        if wrong:
            raise TypeError(f"prompts must be a list of strings, it holds {', '.join(wrong)}")
        if not prompts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for start in range(0, len(prompts), self.batch_size):
            ids, mask = self.tokens(prompts[start:start + self.batch_size])
            out = self.session.run([self.output], {"input_ids": ids, "attention_mask": mask})[0]
            parts.append(np.asarray(out, dtype=np.float32))
        return np.concatenate(parts)

    def tokens(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) of `prompts`: int64 (B, L), truncated to max_length, padded with
        pad_id on the right to the longest prompt (L ≤ max_length)."""
        return token_arrays(self.tokenizer, prompts, self.pad_id)


def token_arrays(tokenizer, prompts: list[str], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), both int64 (B, L), of `prompts` tokenised by `tokenizer` (a
    tokenizers.Tokenizer, with its own truncation) and padded with `pad_id` on the right to the longest."""
    encodings = tokenizer.encode_batch(list(prompts))
    length = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), length), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, :len(e.ids)] = e.ids
        mask[row, :len(e.ids)] = 1
    return ids, mask


def _read_info(path: Path) -> dict:
    """text.json, checked: format_version, text_encoder, dim, max_length, pad_id, inputs, output."""
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: expected a JSON object with format_version {FORMAT_VERSION}")
    for key in ("dim", "max_length", "pad_id"):
        value = info.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "pad_id" else 1):
            raise ValueError(f"{path}: {key} must be a positive integer, got {value!r}")
    if not isinstance(info.get("text_encoder"), str) or not isinstance(info.get("output"), str):
        raise ValueError(f"{path}: text_encoder and output must be strings")
    if not isinstance(info.get("inputs"), list) or not all(isinstance(n, str) for n in info["inputs"]):
        raise ValueError(f"{path}: inputs must be a list of input names")
    return info


def _check_providers(providers, available: list[str]) -> list:
    """`providers` (None → CPU only) as a list, each one available in this onnxruntime build."""
    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str) or not isinstance(providers, (list, tuple)) or not providers:
        raise ValueError(f"providers must be a non-empty list of provider names, got {providers!r}")
    names = [p[0] if isinstance(p, tuple) and p else p for p in providers]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"execution provider(s) {unknown} not in this onnxruntime build "
                         f"(available: {', '.join(available)})")
    return list(providers)
