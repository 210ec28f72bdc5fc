"""Residual transformer (MoMask, reused by BAMM): predicts RVQ layers 1..Q-1 from the layers below them.

To predict layer j, every token's input is the sum of the embeddings of its codes in layers 0..j-1. The
sequence seen by a bidirectional transformer encoder is `[text token, layer-j token, motion tokens...]`; the
output for each motion token is scored against the embedding table of layer j (input and output embeddings
are shared, MoMask's `share_weight`). The text token is swapped for a learned null token with probability
`cond_drop_prob` during training, which enables classifier-free guidance at generation. The layers are the
pre-norm blocks of the BAMM transformer (`transformer.Block`), here without a causal mask. With arch "official"
(the published MoMask checkpoint) the blocks are post-norm and logits use a separate output table `out_emb`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .layers import PositionalEncoding, bert_head, check_arch, init_weights, lengths_to_mask, noisy_text
from .transformer import Block


@dataclass(kw_only=True)
class ResidualConfig:
    code_num: int = 512  # codebook size of the RVQ-VAE
    num_quantizers: int = 6  # Q of the RVQ-VAE (this model predicts layers 1..Q-1)
    text_dim: int = 512  # size of the sentence embedding (CLIP ViT-B/32: 512, all-MiniLM-L6-v2: 384)
    latent_dim: int = 384  # transformer width
    n_layers: int = 8  # transformer encoder layers
    n_heads: int = 6  # attention heads
    ff_dim: int = 1024  # feed-forward width
    dropout: float = 0.2  # transformer dropout
    cond_drop_prob: float = 0.2  # chance a training sample sees the null condition (for CFG)
    max_tokens: int = 56  # longest token sequence (196 frames / 4 = 49, rounded up)
    text_noise: float = 0.0  # training: Gaussian noise of this many times the embedding's RMS (layers.noisy_text)
    arch: str = "bamm"  # "bamm" or "official" (post-norm, separate output table; layers.ARCHS)

    OPTIONAL_KEYS: ClassVar[tuple[str, ...]] = ("text_noise", "arch")  # absent from older config files

    def __post_init__(self):
        check_arch(self.arch, "ResidualConfig")
        for name in ("code_num", "text_dim", "latent_dim", "n_layers", "n_heads", "ff_dim", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"ResidualConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_quantizers < 2:
            raise ValueError(f"ResidualConfig.num_quantizers must be >= 2, got {self.num_quantizers}")
        if self.latent_dim % self.n_heads:
            raise ValueError(f"ResidualConfig.latent_dim {self.latent_dim} is not divisible by n_heads {self.n_heads}")
        for name in ("dropout", "cond_drop_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ResidualConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.text_noise >= 0.0:
            raise ValueError(f"ResidualConfig.text_noise must be >= 0, got {self.text_noise}")


RES_PRESETS = {
    # MoMask's released residual transformer used by BAMM: tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw.
    "paper": ResidualConfig(),
    # CPU-trainable, for the all-MiniLM-L6-v2 text encoder.
    "small": ResidualConfig(text_dim=384, latent_dim=256, n_layers=4, n_heads=4, ff_dim=512, dropout=0.1,
                            text_noise=2.0),
    # Unit tests only.
    "tiny": ResidualConfig(code_num=32, num_quantizers=3, text_dim=8, latent_dim=32, n_layers=2, n_heads=2,
                           ff_dim=64, dropout=0.0, cond_drop_prob=0.1, max_tokens=16),
}


class ResidualTransformer(nn.Module):
    text_input = "cond_proj.weight"  # the layer reading the text embedding (widened by --init, see warm_start)

    def __init__(self, config: ResidualConfig):
        super().__init__()
        c = self.config = config
        self.token_emb = nn.Parameter(torch.randn(c.num_quantizers, c.code_num, c.latent_dim) * 0.02)
        self.out_bias = nn.Parameter(torch.zeros(c.num_quantizers, c.code_num))
        self.layer_emb = nn.Embedding(c.num_quantizers, c.latent_dim)
        self.cond_proj = nn.Linear(c.text_dim, c.latent_dim)
        self.null_cond = nn.Parameter(torch.randn(c.latent_dim) * 0.02)
        self.pos_enc = PositionalEncoding(c.latent_dim, max_len=c.max_tokens, dropout=c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        if c.arch == "official":  # no final norm, LayerNorm eps 1e-12, logits against a separate output table
            self.ln_f, self.head = nn.Identity(), bert_head(c.latent_dim, None)
            self.out_emb = nn.Parameter(torch.randn(c.num_quantizers, c.code_num, c.latent_dim) * 0.02)
        else:
            self.ln_f = nn.LayerNorm(c.latent_dim)
            self.head = nn.Sequential(nn.Linear(c.latent_dim, c.latent_dim), nn.GELU(), nn.LayerNorm(c.latent_dim))
        self.apply(init_weights)

    def _check(self, codes: torch.Tensor, text_emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Checks of `loss` ((B, N, Q) codes).

        Returns the (B, N) mask of valid tokens; codes beyond `lengths` may hold anything (e.g. a pad id).
        """
        c = self.config
        if codes.dtype != torch.long:
            raise ValueError(f"codes must be int64, got {codes.dtype}")
        b, n = codes.shape[:2]
        if not 1 <= n <= c.max_tokens:
            raise ValueError(f"token sequence length {n} must be in [1, max_tokens={c.max_tokens}]")
        if text_emb.shape != (b, c.text_dim):
            raise ValueError(f"text_emb must have shape ({b}, {c.text_dim}), got {tuple(text_emb.shape)}")
        if lengths.shape != (b,) or lengths.min() < 1 or lengths.max() > n:
            raise ValueError(f"lengths must have shape ({b},) with values in [1, {n}], got {lengths.tolist()}")
        valid = lengths_to_mask(lengths.to(codes.device), n)
        used = codes[valid]
        if used.min() < 0 or used.max() >= c.code_num:
            raise ValueError(f"codes must lie in [0, {c.code_num}), got [{int(used.min())}, {int(used.max())}]")
        return valid

    def _logits(self, x: torch.Tensor, layer: torch.Tensor, cond: torch.Tensor, valid: torch.Tensor):
        """x (B, N, D) summed lower-layer embeddings, layer (B,) target layer, cond (B, D) condition token,
        valid (B, N) -> logits (B, N, code_num) for layer `layer`."""
        seq = torch.cat([cond[:, None], self.layer_emb(layer)[:, None], self.pos_enc(x)], dim=1)
        keys = torch.cat([valid.new_ones(valid.shape[0], 2), valid], dim=1)  # padding is never attended to
        mask = torch.zeros(keys.shape, dtype=seq.dtype, device=seq.device).masked_fill(~keys, float("-inf"))
        mask = mask[:, None, None]  # (B, 1, 1, keys): the same keys for every query
        for block in self.blocks:
            seq = block(seq, mask)[0]
        h = self.head(self.ln_f(seq)[:, 2:])
        table = self.out_emb if self.config.arch == "official" else self.token_emb
        return torch.einsum("bnd,bkd->bnk", h, table[layer]) + self.out_bias[layer][:, None]

    def _cond(self, text_emb: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) -> (B, D) condition tokens; rows where drop is True get the null condition."""
        return torch.where(drop[:, None], self.null_cond.expand(drop.shape[0], -1), self.cond_proj(text_emb))

    def loss(self, codes: torch.Tensor, text_emb: torch.Tensor, lengths: torch.Tensor):
        """Cross-entropy of one random layer j in [1, Q-1] per sample, given its layers < j.

        codes (B, N, Q) int64, text_emb (B, text_dim), lengths (B,) valid tokens. Returns (loss, logs).
        """
        c = self.config
        if codes.ndim != 3 or codes.shape[-1] != c.num_quantizers:
            raise ValueError(f"codes must have shape (B, N, {c.num_quantizers}), got {tuple(codes.shape)}")
        valid = self._check(codes, text_emb, lengths)
        codes = codes.masked_fill(~valid[..., None], 0)
        b, n, q = codes.shape
        layer = torch.randint(1, q, (b,), device=codes.device)
        drop = torch.rand(b, device=codes.device) < (c.cond_drop_prob if self.training else 0.0)
        text_emb = noisy_text(text_emb, c.text_noise if self.training else 0.0)
        logits = self.layer_logits(codes, layer, text_emb, drop, valid)
        target = codes.gather(2, layer[:, None, None].expand(b, n, 1))[..., 0].masked_fill(~valid, -100)
        loss = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100)
        acc = (logits.argmax(-1) == target)[valid].float().mean()
        return loss, {"loss": loss.item(), "acc": acc.item()}

    def layer_logits(self, codes: torch.Tensor, layer: torch.Tensor, text_emb: torch.Tensor, drop: torch.Tensor,
                     valid: torch.Tensor) -> torch.Tensor:
        """Logits of layer j = `layer` (B,) int64 in [1, Q-1] given the codes of the layers below it.

        codes (B, N, Q) int64 (layers >= j and invalid tokens are ignored; any value in [0, code_num)),
        text_emb (B, text_dim) float32, drop (B,) bool (True: the null condition), valid (B, N) bool.
        Returns (B, N, code_num) float32."""
        q = self.config.num_quantizers
        layers = torch.arange(q, device=codes.device)
        emb = self.token_emb[layers, codes]  # (B, N, Q, D)
        below = (layers[None] < layer[:, None]).to(emb.dtype)  # (B, Q)
        x = (emb * below[:, None, :, None]).sum(2)
        return self._logits(x, layer, self._cond(text_emb, drop), valid)
