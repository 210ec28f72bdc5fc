"""BAMM masked self-attention transformer: predicts the base-layer motion tokens from a text embedding.

The sequence is ``[text, m_1 .. m_N, END, PAD ..]``: position 0 holds the projected text embedding (or a
learned null token when the condition is dropped, for classifier-free guidance), positions 1.. hold token ids
(codes ``0 .. code_num-1``, ``END = code_num``, ``PAD = code_num + 1``). Output row ``p`` predicts the id at
position ``p + 1`` over ``code_num + 1`` classes (the codes and END).

Hybrid attention (paper Sec. 3.2), additive mask ``M`` with ``M_ij = 0`` where query ``i`` may see key ``j``:

* unidirectional causal: ``i >= j``;
* bidirectional causal: ``(i >= j and i not in U) or j in U`` with ``U`` the unmasked positions (text and END
  always in ``U``). A masked position sees its past and every unmasked token, future ones included, so masked
  tokens are still predicted one after the other, but with context on both sides. A row ``i`` in ``U`` sees
  only ``U`` (its own past masked tokens are hidden from it). The official code builds the same matrix (causal
  rows of ``U`` cleared, then ``U`` columns opened), so a masked token that follows an unmasked one is
  predicted from ``U`` alone; with every other token masked the whole pass needs a single forward.

Masking is done by the attention matrix only: masked positions keep their (teacher-forced) codes as input,
exactly as in the official code, and no key/query path can reach a masked target before its turn. A [MASK]
input id would make the masked tokens independent of each other, so there is none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .layers import PositionalEncoding, bert_head, check_arch, init_weights, lengths_to_mask, noisy_text


@dataclass(kw_only=True)
class BAMMConfig:
    code_num: int = 512  # base codebook size of the RVQ-VAE
    text_dim: int = 384  # sentence-embedding size (all-MiniLM-L6-v2: 384, CLIP ViT-B/32: 512)
    latent_dim: int = 384  # transformer width
    n_layers: int = 8  # transformer blocks
    n_heads: int = 6  # attention heads
    ff_dim: int = 1024  # feed-forward width
    dropout: float = 0.2  # attention, residual and embedding dropout
    cond_drop_prob: float = 0.1  # chance a training sample sees the null text token (classifier-free guidance)
    max_tokens: int = 50  # longest id sequence: 196 frames / 4 = 49 motion tokens + END
    bidir_prob: float = 0.5  # chance a training sample uses the bidirectional causal mask
    min_mask_ratio: float = 0.5  # bidirectional samples hide a uniform 50..100 % of their motion tokens
    token_noise: float = 0.5  # inputs replaced by random codes at a rate ~ U(0, token_noise) (official code)
    text_noise: float = 0.0  # training: Gaussian noise of this many times the embedding's RMS (layers.noisy_text)
    arch: str = "bamm"  # "bamm" (pre-norm, linear head) or "official" (the published checkpoints, layers.ARCHS)

    OPTIONAL_KEYS: ClassVar[tuple[str, ...]] = ("text_noise", "arch")  # absent from older config files

    def __post_init__(self):
        check_arch(self.arch, "BAMMConfig")
        for name in ("code_num", "text_dim", "latent_dim", "n_layers", "n_heads", "ff_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"BAMMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_tokens < 2:
            raise ValueError(f"BAMMConfig.max_tokens must be >= 2 (one token + END), got {self.max_tokens}")
        if self.latent_dim % self.n_heads or self.latent_dim % 2:
            raise ValueError(f"BAMMConfig.latent_dim {self.latent_dim} must be even and divisible by "
                             f"n_heads {self.n_heads}")
        for name in ("dropout", "cond_drop_prob", "bidir_prob", "min_mask_ratio", "token_noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"BAMMConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.text_noise >= 0.0:
            raise ValueError(f"BAMMConfig.text_noise must be >= 0, got {self.text_noise}")

    @property
    def end_id(self) -> int:
        return self.code_num

    @property
    def pad_id(self) -> int:
        return self.code_num + 1


T2M_PRESETS = {
    # BAMM on HumanML3D: 8 layers, 6 heads, width 384, feed-forward 1024, dropout 0.2.
    "paper": BAMMConfig(),
    # Trainable on 2 CPU cores in about half an hour on ~3k clips (with the "small" tokenizer). Text noise: the
    # shipped data's captions come from templates; noise lets held-out wording work (see the model card).
    "small": BAMMConfig(latent_dim=256, n_layers=4, n_heads=4, ff_dim=512, dropout=0.1,
                        text_noise=2.0),
    # Unit tests only (matches the "tiny" tokenizer's 32 codes).
    "tiny": BAMMConfig(code_num=32, latent_dim=32, n_layers=2, n_heads=2, ff_dim=64, dropout=0.0, max_tokens=17),
}


def hybrid_attention_mask(unmasked: torch.Tensor, causal_only: bool | torch.Tensor = False) -> torch.Tensor:
    """Additive attention mask (B, L, L): 0 where query i may attend key j, -inf elsewhere.

    unmasked (B, L) bool is U. Rows with causal_only (a bool or (B,) bool) get the unidirectional causal mask
    ``i >= j``; the others the bidirectional causal mask ``(i >= j and i not in U) or j in U``. Every row keeps
    at least its diagonal, so no row is fully masked.
    """
    if unmasked.ndim != 2 or unmasked.dtype != torch.bool:
        raise ValueError(f"unmasked must be a (B, L) bool tensor, got {unmasked.dtype} {tuple(unmasked.shape)}")
    b, n = unmasked.shape
    idx = torch.arange(n, device=unmasked.device)
    causal = (idx[:, None] >= idx[None, :])[None]  # (1, L, L)
    bidir = (causal & ~unmasked[:, :, None]) | unmasked[:, None, :]
    causal_only = torch.as_tensor(causal_only, dtype=torch.bool, device=unmasked.device).expand(b)
    allowed = torch.where(causal_only[:, None, None], causal, bidir)
    return torch.zeros(b, n, n, device=unmasked.device).masked_fill(~allowed, float("-inf"))


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, S, K) bool, True where query s may attend key k -> (B, 1, S, K) additive mask (0 / -inf)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))[:, None]


def write_rows(buffer: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """buffer (B, H, L, d) with rows (B, H, S, d) written at positions pos..pos+S-1 (pos a 0-d int64 tensor).

    Written with a select instead of an in-place slice so the shapes never depend on pos (ONNX export)."""
    slots = torch.arange(buffer.shape[2], device=buffer.device)
    inside = (slots >= pos) & (slots < pos + rows.shape[2])
    placed = rows.index_select(2, (slots - pos).clamp(0, rows.shape[2] - 1))
    return torch.where(inside[None, None, :, None], placed, buffer)


class SelfAttention(nn.Module):
    def __init__(self, c: BAMMConfig):
        super().__init__()
        self.n_heads, self.dropout = c.n_heads, c.dropout
        self.qkv = nn.Linear(c.latent_dim, 3 * c.latent_dim)
        self.proj = nn.Linear(c.latent_dim, c.latent_dim)
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x, mask, past=None, pos=None, append=False):
        """x (B, S, C), mask additive (B, 1, S, keys) or None. Returns (output, keys, values), keys/values
        (B, H, keys, C / H). Without `past` the keys are x's own; with past (keys, values) of the whole buffer
        (B, H, L, C / H), x's keys and values are written at positions pos..pos+S-1 and every query attends
        over the whole buffer. With `append` (one query, S = 1) the buffer is not written: the query attends over
        the buffer and its own key, mask (B, 1, 1, L + 1) (the last column: its own key; the buffer's slot pos
        masked), and only its own key and value (B, H, 1, C / H) are returned, so no copy of the buffer is made."""
        b, s, c = x.shape
        q, k, v = (t.view(b, s, self.n_heads, c // self.n_heads).transpose(1, 2) for t in self.qkv(x).split(c, 2))
        if append:
            scale = (c // self.n_heads) ** -0.5
            scores = torch.cat([q @ past[0].transpose(-1, -2), (q * k).sum(-1, keepdim=True)], -1) * scale
            w = torch.softmax(scores + mask, -1)
            y = w[..., :-1] @ past[1] + w[..., -1:] * v
            return self.proj(y.transpose(1, 2).reshape(b, s, c)), k, v
        if past is not None:
            k, v = write_rows(past[0], k, pos), write_rows(past[1], v, pos)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, s, c))), k, v


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)). With arch "official", post-norm as
    torch's `nn.TransformerEncoderLayer`: ln(x + attn(x)), then ln(x + mlp(x))."""

    def __init__(self, c):
        super().__init__()
        self.post_norm = c.arch == "official"
        self.ln1, self.ln2 = nn.LayerNorm(c.latent_dim), nn.LayerNorm(c.latent_dim)
        self.attn = SelfAttention(c)
        self.mlp = nn.Sequential(nn.Linear(c.latent_dim, c.ff_dim), nn.GELU(), nn.Linear(c.ff_dim, c.latent_dim),
                                 nn.Dropout(c.dropout))

    def forward(self, x, mask, past=None, pos=None, append=False):
        """Returns (x, keys, values); see `SelfAttention.forward`."""
        if self.post_norm:
            y, k, v = self.attn(x, mask, past, pos, append)
            x = self.ln1(x + y)
            return self.ln2(x + self.mlp(x)), k, v
        y, k, v = self.attn(self.ln1(x), mask, past, pos, append)
        x = x + y
        return x + self.mlp(self.ln2(x)), k, v


class BAMMTransformer(nn.Module):
    text_input = "text_proj.weight"  # the layer reading the text embedding (widened by --init, see warm_start)

    def __init__(self, config: BAMMConfig):
        super().__init__()
        c = self.config = config
        self.text_proj = nn.Linear(c.text_dim, c.latent_dim)
        self.null_text = nn.Parameter(torch.zeros(c.latent_dim))
        self.token_emb = nn.Embedding(c.code_num + 2, c.latent_dim)  # codes, END, PAD
        self.pos_enc = PositionalEncoding(c.latent_dim, max_len=c.max_tokens + 1, dropout=c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        if c.arch == "official":  # no final norm; dense -> GELU -> LayerNorm -> classes
            self.ln_f, self.head = nn.Identity(), bert_head(c.latent_dim, c.code_num + 1)
        else:
            self.ln_f, self.head = nn.LayerNorm(c.latent_dim), nn.Linear(c.latent_dim, c.code_num + 1)  # codes + END
        self.apply(init_weights)
        nn.init.normal_(self.null_text, std=0.02)

    # ------------------------------------------------------------------------------------------ forward

    def text_token(self, text_emb: torch.Tensor | None, drop: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) embeddings (None: all dropped), drop (B,) bool -> (B, 1, C) position-0 inputs."""
        null = self.null_text.expand(drop.shape[0], -1)
        if text_emb is None:
            return null[:, None]
        if text_emb.shape[1:] != (self.config.text_dim,) or text_emb.shape[0] != drop.shape[0]:
            raise ValueError(f"text_emb must have shape ({len(drop)}, {self.config.text_dim}), "
                             f"got {tuple(text_emb.shape)}")
        return torch.where(drop[:, None], null, self.text_proj(text_emb))[:, None]

    def _run(self, x, mask, past=None, pos=None, append=False):
        """Blocks + head. Returns logits and every layer's keys and values, stacked (n_layers, B, H, L, d)."""
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, mask, None if past is None else (past[0][i], past[1][i]), pos, append)
            keys.append(k)
            values.append(v)
        return self.head(self.ln_f(x)), torch.stack(keys), torch.stack(values)

    def forward(self, ids: torch.Tensor, text: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """ids (B, L-1) at positions 1..L-1, text (B, 1, C) from `text_token`, attn_mask (B, L, L) additive
        (`hybrid_attention_mask`) -> logits (B, L, code_num + 1); row p predicts the id at position p + 1."""
        x = self.pos_enc(torch.cat([text, self.token_emb(ids)], dim=1))
        return self._run(x, attn_mask[:, None].to(x.dtype))[0]

    def prefill(self, ids: torch.Tensor, text_emb: torch.Tensor, drop: torch.Tensor, allowed: torch.Tensor):
        """Full forward that also returns the key/value cache for `step`.

        ids (B, L-1) int64 at positions 1..L-1, text_emb (B, text_dim) float32, drop (B,) bool (True: the null
        text token), allowed (B, L, L) bool (True where query i may attend key j). Returns logits
        (B, L, code_num + 1), keys and values (n_layers, B, n_heads, L, latent_dim / n_heads)."""
        x = self.pos_enc(torch.cat([self.text_token(text_emb, drop), self.token_emb(ids)], dim=1))
        return self._run(x, additive_mask(allowed, x.dtype))

    def step(self, ids: torch.Tensor, pos: torch.Tensor | int, allowed: torch.Tensor, keys: torch.Tensor,
             values: torch.Tensor):
        """Incremental forward of ids (B, S) at positions pos..pos+S-1 (pos >= 1) over a cache from `prefill`.

        allowed (B, S, L) bool: rows pos..pos+S-1 of the full mask, over every position of the cache. Returns
        logits (B, S, code_num + 1) and the updated keys and values; the logits equal the full forward's rows
        pos..pos+S-1 when the cache holds every key those rows may see."""
        pos = torch.as_tensor(pos, dtype=torch.long, device=ids.device)
        at = pos + torch.arange(ids.shape[1], device=ids.device)
        x = self.token_emb(ids) + self.pos_enc.pe.index_select(0, at).to(self.null_text.dtype)
        return self._run(x, additive_mask(allowed, x.dtype), (keys, values), pos)

    def step_rows(self, ids: torch.Tensor, pos: torch.Tensor | int, allowed: torch.Tensor, keys, values):
        """`step` for one id per row (ids (B, 1)) that leaves the cache unwritten: keys / values are the cache's
        layers (each (B, H, L, d), or stacked), the query attends over every slot but its own, which it replaces
        by its new key and value. Returns logits (B, 1, code_num + 1) and the new keys and values
        (n_layers, B, H, 1, d), which the caller writes at `pos`. The logits equal `step`'s."""
        pos = torch.as_tensor(pos, dtype=torch.long, device=ids.device)
        x = self.token_emb(ids) + self.pos_enc.pe.index_select(0, pos[None]).to(self.null_text.dtype)
        slots = torch.arange(allowed.shape[-1], device=ids.device)
        mask = torch.cat([allowed & (slots != pos), allowed.index_select(2, pos[None])], -1)
        return self._run(x, additive_mask(mask, x.dtype), (keys, values), pos, append=True)

    # ------------------------------------------------------------------------------------------ training

    def loss(self, codes: torch.Tensor, lengths: torch.Tensor, text_emb: torch.Tensor):
        """Next-token cross-entropy on base-layer codes (B, N), lengths (B,) in tokens, text_emb (B, text_dim).

        Per sample: unidirectional mask (targets: every motion token and END) or, with `bidir_prob`, the
        bidirectional mask with a uniform 50..100 % of motion tokens hidden (targets: the hidden ones; visible
        ones would be copied). Text dropping, text noise and input noise apply in training mode only; the masks
        are drawn in both modes. Returns (loss, logs)."""
        c = self.config
        b, n = self._check_codes(codes, lengths, text_emb)
        device = codes.device
        valid = lengths_to_mask(lengths, n + 1)  # motion slots
        ids = torch.cat([codes, codes.new_full((b, 1), c.pad_id)], 1).masked_fill(~valid, c.pad_id)
        ids = ids.scatter(1, lengths[:, None], c.end_id)  # (B, N+1): codes, END, PAD
        is_end = ids == c.end_id
        noise_rate = torch.rand(b, 1, device=device) * (c.token_noise if self.training else 0.0)
        noisy = valid & (torch.rand(b, n + 1, device=device) < noise_rate)
        inputs = torch.where(noisy, torch.randint_like(ids, c.code_num), ids)

        bidir = torch.rand(b, device=device) < c.bidir_prob
        ratio = c.min_mask_ratio + (1 - c.min_mask_ratio) * torch.rand(b, device=device)
        n_hidden = torch.ceil(ratio * lengths).clamp(min=1)  # at least one target per sample
        rank = torch.rand(b, n + 1, device=device).masked_fill(~valid, 2.0).argsort(1).argsort(1)
        hidden = rank < n_hidden[:, None]
        unmasked = torch.cat([torch.ones_like(valid[:, :1]), (valid & ~hidden) | is_end], 1)  # (B, N+2)
        mask = hybrid_attention_mask(unmasked, ~bidir)

        drop = torch.rand(b, device=device) < (c.cond_drop_prob if self.training else 0.0)
        text_emb = noisy_text(text_emb, c.text_noise if self.training else 0.0)
        logits = self(inputs, self.text_token(text_emb, drop), mask)[:, :-1]  # rows 0..N predict ids[:, 0..N]
        counted = torch.where(bidir[:, None], hidden, valid | is_end)
        target = ids.masked_fill(~counted, -100)
        loss = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100)
        pred = logits.argmax(-1)
        acc = (pred == ids)[counted].float().mean()
        end_acc = (pred == ids)[is_end & ~bidir[:, None]].float().mean() if (~bidir).any() else torch.tensor(1.0)
        return loss, {"loss": loss.item(), "acc": acc.item(), "end_acc": end_acc.item(),
                      "bidir_frac": bidir.float().mean().item()}

    def _check_codes(self, codes, lengths, text_emb):
        c = self.config
        if codes.ndim != 2 or codes.dtype != torch.long:
            raise ValueError(f"codes must be an int64 (B, N) tensor, got {codes.dtype} {tuple(codes.shape)}")
        b, n = codes.shape
        if not 1 <= n <= c.max_tokens - 1:
            raise ValueError(f"codes length N={n} must be in [1, max_tokens - 1 = {c.max_tokens - 1}]")
        if codes.min() < 0 or codes.max() >= c.code_num:
            raise ValueError(f"codes must lie in [0, {c.code_num}), got [{int(codes.min())}, {int(codes.max())}]")
        if lengths.shape != (b,) or lengths.min() < 1 or lengths.max() > n:
            raise ValueError(f"lengths must have shape ({b},) with values in [1, {n}], got {lengths.tolist()}")
        if text_emb is not None and text_emb.shape != (b, c.text_dim):
            raise ValueError(f"text_emb must have shape ({b}, {c.text_dim}), got {tuple(text_emb.shape)}")
        return b, n
