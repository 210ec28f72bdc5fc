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

from .layers import (PositionalEncoding, cfg_logits, init_weights, lengths_to_mask, noisy_text, sample_tokens,
                     top_k_filter)


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

    OPTIONAL_KEYS: ClassVar[tuple[str, ...]] = ("text_noise",)  # training-only, absent from older config files

    def __post_init__(self):
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


class KVCache:
    """Keys and values of every layer at every position, (B, H, L, head_dim) each, for incremental decoding."""

    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers


class SelfAttention(nn.Module):
    def __init__(self, c: BAMMConfig):
        super().__init__()
        self.n_heads, self.dropout = c.n_heads, c.dropout
        self.qkv = nn.Linear(c.latent_dim, 3 * c.latent_dim)
        self.proj = nn.Linear(c.latent_dim, c.latent_dim)
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x, mask, cache: KVCache | None = None, layer: int = 0, pos: int | None = None, total: int = 0):
        """x (B, S, C), mask (B, S, keys). Without cache: plain attention over x. With cache and pos None:
        prefill (positions 0..S-1, buffers of length `total`); with pos: positions pos..pos+S-1 attend to the
        whole buffer."""
        b, s, c = x.shape
        q, k, v = (t.view(b, s, self.n_heads, c // self.n_heads).transpose(1, 2) for t in self.qkv(x).split(c, 2))
        if cache is not None:
            if pos is None:
                cache.k[layer] = k.new_zeros(b, self.n_heads, total, c // self.n_heads)
                cache.v[layer] = torch.zeros_like(cache.k[layer])
                cache.k[layer][:, :, :s], cache.v[layer][:, :, :s] = k, v
            else:
                cache.k[layer][:, :, pos:pos + s], cache.v[layer][:, :, pos:pos + s] = k, v
                end = pos + s if mask is None else None  # no mask: a single query sees every key up to it
                k, v = cache.k[layer][:, :, :end], cache.v[layer][:, :, :end]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None].to(q.dtype),
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, s, c)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, c: BAMMConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.latent_dim), nn.LayerNorm(c.latent_dim)
        self.attn = SelfAttention(c)
        self.mlp = nn.Sequential(nn.Linear(c.latent_dim, c.ff_dim), nn.GELU(), nn.Linear(c.ff_dim, c.latent_dim),
                                 nn.Dropout(c.dropout))

    def forward(self, x, mask, cache=None, layer=0, pos=None, total=0):
        x = x + self.attn(self.ln1(x), mask, cache, layer, pos, total)
        return x + self.mlp(self.ln2(x))


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
        self.ln_f = nn.LayerNorm(c.latent_dim)
        self.head = nn.Linear(c.latent_dim, c.code_num + 1)  # codes + END
        self.apply(init_weights)
        nn.init.normal_(self.null_text, std=0.02)

    # ------------------------------------------------------------------------------------------ forward

    def text_token(self, text_emb: torch.Tensor | None, drop: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) embeddings (None: all dropped), drop (B,) bool -> (B, 1, C) position-0 inputs."""
        null = self.null_text.expand(len(drop), -1)
        if text_emb is None:
            return null[:, None]
        if text_emb.shape != (len(drop), self.config.text_dim):
            raise ValueError(f"text_emb must have shape ({len(drop)}, {self.config.text_dim}), "
                             f"got {tuple(text_emb.shape)}")
        return torch.where(drop[:, None], null, self.text_proj(text_emb))[:, None]

    def _run(self, x, mask, cache=None, pos=None, total=0):
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i, pos, total)
        return self.head(self.ln_f(x))

    def forward(self, ids: torch.Tensor, text: torch.Tensor, attn_mask: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        """ids (B, L-1) at positions 1..L-1, text (B, 1, C) from `text_token`, attn_mask (B, L, L) ->
        logits (B, L, code_num + 1); row p predicts the id at position p + 1. A cache gets every layer's keys
        and values (prefill) for `step`."""
        x = self.pos_enc(torch.cat([text, self.token_emb(ids)], dim=1))
        return self._run(x, attn_mask, cache, None, x.shape[1] if cache is None else self.config.max_tokens + 1)

    def step(self, ids: torch.Tensor, pos: int, attn_mask: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        """Incremental forward of ids (B, S) at positions pos..pos+S-1 (pos >= 1) over a prefilled cache.

        attn_mask (B, S, L) rows of the full mask (L <= max_tokens + 1; missing keys are masked), or None for
        one query (S = 1) that sees every position up to its own (the unidirectional mask). Returns logits
        (B, S, code_num + 1), equal to the full forward's rows pos..pos+S-1 when the cache holds every key
        those rows may see."""
        if attn_mask is None and ids.shape[1] != 1:
            raise ValueError("step without attn_mask takes one position at a time")
        total = cache.k[0].shape[2]
        if attn_mask is not None and attn_mask.shape[-1] < total:
            attn_mask = F.pad(attn_mask, (0, total - attn_mask.shape[-1]), value=float("-inf"))
        x = self.token_emb(ids) + self.pos_enc.pe[pos:pos + ids.shape[1]].to(self.null_text.dtype)
        return self._run(x, attn_mask, cache, pos)

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

    # ------------------------------------------------------------------------------------------ decoding

    def _guided_text(self, text_emb, b, cfg_scale, device):
        """Text tokens for a batch of b, doubled (cond, then null) when guidance applies. Returns (text, rep)."""
        guided = text_emb is not None and cfg_scale != 0
        rep = 2 if guided else 1
        drop = torch.arange(rep * b, device=device) >= (b if text_emb is not None else 0)
        return self.text_token(None if text_emb is None else text_emb.repeat(rep, 1), drop), rep

    def _pick(self, logits, rep, b, cfg_scale, temperature, top_k, generator, *, ban_end=False):
        """Guided logits (rep*B, V) -> sampled ids (B,) and their probability under the guided softmax."""
        if rep == 2:
            logits = cfg_logits(logits[:b], logits[b:], cfg_scale)
        if ban_end:
            logits = logits.clone()
            logits[:, self.config.end_id] = float("-inf")
        logits = top_k_filter(logits.float(), top_k)
        ids = sample_tokens(logits, temperature=temperature, generator=generator)
        conf = logits.softmax(-1).gather(1, ids[:, None])[:, 0]
        return ids, conf

    @torch.no_grad()
    def generate_ar(self, text_emb: torch.Tensor | None, *, batch: int | None = None, cfg_scale: float = 4.0,
                    temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None,
                    use_cache: bool = True, progress=None):
        """Unidirectional pass: sample tokens until END (at least 1 token, at most max_tokens - 1).

        text_emb (B, text_dim), or None with `batch` for unconditional samples. Returns ids (B, max_tokens)
        (codes, END, PAD), lengths (B,) in tokens and conf (B, max_tokens) (probability of each sampled id).
        progress(fraction) is called after every step."""
        c = self.config
        b = len(text_emb) if text_emb is not None else int(batch)
        device = self.null_text.device
        text, rep = self._guided_text(text_emb, b, cfg_scale, device)
        s = c.max_tokens
        ids = torch.full((b, s), c.pad_id, dtype=torch.long, device=device)
        conf = torch.zeros(b, s, device=device)
        lengths = torch.full((b,), s - 1, dtype=torch.long, device=device)
        done = torch.zeros(b, dtype=torch.bool, device=device)
        causal = hybrid_attention_mask(torch.zeros(rep * b, s + 1, dtype=torch.bool, device=device), True)
        was_training = self.training
        self.eval()
        try:
            cache = KVCache(c.n_layers) if use_cache else None
            for p in range(s):  # row p predicts slot p (position p + 1)
                if p == 0:
                    logits = self(ids[:, :0].repeat(rep, 1), text, causal[:, :1, :1], cache)[:, 0]
                elif use_cache:
                    logits = self.step(ids[:, p - 1:p].repeat(rep, 1), p, None, cache)[:, 0]
                else:
                    logits = self(ids[:, :p].repeat(rep, 1), text, causal[:, :p + 1, :p + 1])[:, -1]
                # p == 0: at least one motion token
                new, prob = self._pick(logits, rep, b, cfg_scale, temperature, top_k, generator, ban_end=p == 0)
                if p == s - 1:
                    new = torch.full_like(new, c.end_id)  # longest motion reached
                new = torch.where(done, c.pad_id, new)
                ended = ~done & (new == c.end_id)
                lengths = torch.where(ended, p, lengths)
                ids[:, p], conf[:, p] = new, torch.where(done, 0.0, prob)
                done |= ended
                if progress is not None:
                    progress((p + 1) / s)
                if bool(done.all()):
                    break
            return ids, lengths, conf
        finally:
            self.train(was_training)

    @torch.no_grad()
    def generate_masked(self, codes: torch.Tensor, lengths: torch.Tensor, keep: torch.Tensor,
                        text_emb: torch.Tensor | None, *, cfg_scale: float = 3.0, temperature: float = 1.0,
                        top_k: int | None = None, generator: torch.Generator | None = None,
                        use_cache: bool = True, progress=None):
        """Bidirectional pass: re-predict, left to right, the motion tokens where keep is False.

        codes (B, N) base codes (values at re-predicted places are ignored), lengths (B,), keep (B, N) bool;
        U = text + kept tokens + END (placed after each length). text_emb None: unconditional. Returns codes
        (B, N) with kept tokens unchanged (PAD-free: slots past a length are 0) and conf (B, N)."""
        c = self.config
        b, n = self._check_codes(codes.clamp(0, c.code_num - 1), lengths, text_emb)
        device = codes.device
        valid = lengths_to_mask(lengths, n + 1)
        ids = torch.cat([codes, codes.new_zeros(b, 1)], 1).masked_fill(~valid, c.pad_id)
        ids = ids.scatter(1, lengths[:, None], c.end_id)
        keep = torch.cat([keep, keep.new_zeros(b, 1)], 1) | ~valid
        todo = valid & ~keep  # slots to sample
        unmasked = torch.cat([torch.ones_like(valid[:, :1]), (valid & keep) | (ids == c.end_id)], 1)
        # row p must be computed once its input is final if it predicts a slot to sample or if a later
        # masked row that does will look at it
        out_needed = todo & ~unmasked[:, :-1]
        later = torch.flip(torch.cumsum(torch.flip(out_needed.int(), [1]), 1), [1]) > 0
        run_row = (~unmasked[:, :-1] & later).any(0)  # (N+1,) over rows 0..N
        text, rep = self._guided_text(text_emb, b, cfg_scale, device)
        mask = hybrid_attention_mask(unmasked.repeat(rep, 1))
        conf = torch.ones(b, n + 1, device=device)
        was_training = self.training
        self.eval()
        try:
            cache = KVCache(c.n_layers) if use_cache else None
            rows = self(ids.repeat(rep, 1), text, mask, cache)  # exact for rows in U
            n_todo, done = int(todo.any(0).sum()), 0
            for p in range(n):  # row p (input: slot p - 1, final by now) predicts slot p
                if p > 0 and bool(run_row[p]):
                    if use_cache:
                        rows[:, p] = self.step(ids[:, p - 1:p].repeat(rep, 1), p, mask[:, p:p + 1], cache)[:, 0]
                    else:
                        rows[:, p] = self(ids.repeat(rep, 1), text, mask)[:, p]
                if not bool(todo[:, p].any()):
                    continue
                new, prob = self._pick(rows[:, p], rep, b, cfg_scale, temperature, top_k, generator, ban_end=True)
                ids[:, p] = torch.where(todo[:, p], new, ids[:, p])
                conf[:, p] = torch.where(todo[:, p], prob, conf[:, p])
                done += 1
                if progress is not None:
                    progress(done / n_todo)
            out = ids[:, :n].masked_fill(~valid[:, :n], 0)
            return out, conf[:, :n]
        finally:
            self.train(was_training)
