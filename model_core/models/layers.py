"""Small blocks shared by the token transformers: positional encoding, masks, init, text noise.

Signatures here are relied on by `transformer.py` (BAMM) and `residual.py`; keep them stable.
"""

from __future__ import annotations

import math

import torch
from torch import nn


ARCHS = ("bamm", "official")
"""Layouts of the token transformers: "bamm" (pre-norm blocks, final LayerNorm, linear head, the residual
transformer's output table tied to its input table) and "official" (the layout of the published BAMM / MoMask
checkpoints: post-norm blocks, no final LayerNorm, BERT-style head, a separate residual output table)."""


def check_arch(arch: str, where: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"{where}.arch must be one of {ARCHS}, got {arch!r}")


def bert_head(dim: int, out: int | None) -> nn.Sequential:
    """dense -> GELU -> LayerNorm (eps 1e-12) [-> linear to `out`]: the head of the official checkpoints."""
    layers = [nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim, eps=1e-12)]
    return nn.Sequential(*layers, *([nn.Linear(dim, out)] if out else []))


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal position code added to batch-first sequences `(B, T, dim)`."""

    def __init__(self, dim: int, *, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"PositionalEncoding: dim must be even, got {dim}")
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(position * freq)
        pe[:, 1::2] = torch.cos(position * freq)
        self.register_buffer("pe", pe, persistent=False)  # recomputed on load, not a weight
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[0]:
            raise ValueError(f"PositionalEncoding: sequence of {x.shape[1]} exceeds max_len {self.pe.shape[0]}")
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """`(B,)` lengths -> `(B, max_len)` bool mask, True at valid positions `i < lengths[b]`."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def init_weights(module: nn.Module) -> None:
    """Transformer init used by MoMask/BAMM: N(0, 0.02) linear/embedding weights, zero biases, unit norms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def noisy_text(text_emb: torch.Tensor, scale: float) -> torch.Tensor:
    """Sentence embeddings (B, D) plus Gaussian noise of ``scale`` times each row's RMS (training augmentation).

    Captions written from templates sit on a few points of the encoder's space; noise makes the model read
    the directions that carry the content (left/right, walk/run) instead of memorising those points, so
    phrasings it never saw still work. scale 0 returns the input.
    """
    if scale == 0:
        return text_emb
    rms = text_emb.pow(2).mean(-1, keepdim=True).sqrt()
    return text_emb + scale * rms * torch.randn_like(text_emb)


def gumbel_noise(shape, *, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Standard Gumbel samples `-log(-log(u))`, u ~ U(0, 1), float32."""
    u = torch.rand(shape, generator=generator, device=device).clamp_min(1e-20)  # rand is < 1, so -log(u) > 0
    return -torch.log(-torch.log(u))
