"""Build time: the CLIP ViT-B/32 text tower (the published BAMM checkpoints' text encoder) for ONNX Runtime.

`export_clip_text(path, out_dir)` writes the same three files as `text_export.export_text_encoder` (through
`text_graph.write_runtime`), read by
`runtime/text_ort.py` (numpy, onnxruntime, tokenizers):
- ``text.onnx``: inputs ``input_ids``, ``attention_mask`` (int64, (B, L)), output ``text_embedding`` (B, 512):
  CLIP's `encode_text`: token + position embeddings, the pre-norm causal transformer (quick GELU), ``ln_final``,
  the feature of the end-of-text token times ``text_projection``, not normalised. Written from the checkpoint's
  tensors in plain torch operations. Padding sits after end-of-text, which the causal mask keeps unseen.
- ``tokenizer.json``: CLIP's byte-level BPE (start and end tokens added, 77 tokens at most, longer prompts
  keep their first 75 pieces) with a normaliser standing in for CLIP's text clean-up: NFC, whitespace runs to
  one space, stripped, lower case. ftfy's repairs (curly quotes, mojibake) and HTML entities are not applied
  (Blender ships neither), so prompts with those can give slightly different embeddings than the torch encoder.
- ``text.json``: as for MiniLM, with ``text_encoder`` "clip", max length 77, pad id 0.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .text_graph import WEIGHTS_DTYPES, write_runtime

CHECK_PROMPTS = ["a person walks forward", "A man jumps, then waves his LEFT hand twice!", "日本語 🙂",
                 "jump " * 100]


class ClipTextGraph(nn.Module):
    """CLIP `encode_text` from OpenAI-keyed tensors: (input_ids, attention_mask) int64 (B, L) -> (B, D)."""

    def __init__(self, state: dict[str, torch.Tensor], *, eot_id: int = 49407):
        super().__init__()
        f = {k: v.float() for k, v in state.items()}
        self.width = f["ln_final.weight"].shape[0]
        self.heads = self.width // 64
        self.eot_id = eot_id
        self.tensors = nn.ParameterDict({k.replace(".", "_"): nn.Parameter(v, requires_grad=False)
                                         for k, v in f.items() if not k.startswith("visual.")
                                         and v.dim() > 0})
        self.layers = 0
        while f"transformer_resblocks_{self.layers}_attn_in_proj_weight" in self.tensors:
            self.layers += 1

    def t(self, key: str) -> torch.Tensor:
        return self.tensors[key.replace(".", "_")]

    def forward(self, input_ids, attention_mask):
        ids = input_ids * attention_mask  # padding is id 0 already; keeps the mask an input of the graph
        b, length = ids.shape
        x = self.t("token_embedding.weight")[ids] + self.t("positional_embedding")[:length]
        for i in range(self.layers):
            p = f"transformer.resblocks.{i}."
            h = nn.functional.layer_norm(x, (self.width,), self.t(p + "ln_1.weight"), self.t(p + "ln_1.bias"))
            qkv = nn.functional.linear(h, self.t(p + "attn.in_proj_weight"), self.t(p + "attn.in_proj_bias"))
            q, k, v = (z.reshape(b, length, self.heads, -1).transpose(1, 2) for z in qkv.chunk(3, dim=-1))
            y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).reshape(b, length, self.width)
            x = x + nn.functional.linear(y, self.t(p + "attn.out_proj.weight"), self.t(p + "attn.out_proj.bias"))
            h = nn.functional.layer_norm(x, (self.width,), self.t(p + "ln_2.weight"), self.t(p + "ln_2.bias"))
            h = nn.functional.linear(h, self.t(p + "mlp.c_fc.weight"), self.t(p + "mlp.c_fc.bias"))
            h = h * torch.sigmoid(1.702 * h)  # quick GELU
            x = x + nn.functional.linear(h, self.t(p + "mlp.c_proj.weight"), self.t(p + "mlp.c_proj.bias"))
        x = nn.functional.layer_norm(x, (self.width,), self.t("ln_final.weight"), self.t("ln_final.bias"))
        eot = (input_ids == self.eot_id).to(torch.int64).argmax(dim=1)
        return x[torch.arange(b), eot] @ self.t("text_projection")


def runtime_tokenizer(tokenizer, max_length: int):
    """CLIP's fast tokenizer backend with the clean-up as a normaliser, truncating to `max_length`."""
    from tokenizers import Regex, Tokenizer, normalizers

    out = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    out.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Strip(), normalizers.Lowercase()])
    out.no_padding()
    out.enable_truncation(max_length=max_length, strategy="longest_first", direction="right")
    return out


def export_clip_text(path, out_dir, *, weights_dtype: str = "float32") -> dict:
    """Writes text.onnx, tokenizer.json and text.json for the CLIP file `path` into `out_dir`; checks the graph
    against the torch encoder on a few prompts. Returns text.json's contents plus ``check_max_abs_error``."""
    from ..models.clip_text import CLIPTextEncoder, read_clip_state_dict, resolve_clip_path

    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {weights_dtype!r}")
    path = resolve_clip_path(path)
    encoder = CLIPTextEncoder(path=path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graph = ClipTextGraph(read_clip_state_dict(path), eot_id=int(encoder.tokenizer.eos_token_id)).eval()
    tokenizer = runtime_tokenizer(encoder.tokenizer, encoder.context_length)
    return write_runtime(out, graph, tokenizer, encoder, kind="clip", max_length=int(encoder.context_length),
                         pad_id=0, weights_dtype=weights_dtype, sample=CHECK_PROMPTS[:2], check=CHECK_PROMPTS,
                         length_bound=encoder.context_length)
