"""The decoding loop of BAMM (paper Sec. 3.3), written once in numpy over the `nets.Nets` interface.

Cascade: a unidirectional pass samples base tokens until [END] (or, for a given length, a bidirectional pass
sees only the text and an [END] at that length); ``rounds - 1`` bidirectional refinement passes re-predict
part of the tokens (`refine_redo`) with the rest visible; the residual transformer fills layers 1..Q-1.
Editing is the same bidirectional pass with kept tokens visible (`regenerate`). Guidance everywhere is
``(1 + s) * cond - s * uncond``, computed in float64.

Random numbers are drawn in one place, `Sampler.draw`: inverse-CDF sampling from float64 probabilities with
``numpy.random.Generator(PCG64(seed))``, so a seed gives the same tokens whichever back end computes the logits
(as long as their logits agree to far below the gaps between cumulative probabilities).

Profiles: "bamm" (the default, above) and "official", which decodes as the published BAMM code does (for
published numbers with the published checkpoints; `official_settings`): its guidance ``u + s (c - u)`` is
ours with s - 1 (4 / 3 / 5 there: 3 / 2 / 4 here), [END] may come first (then the motion is one token of code
0), refinement re-predicts the first round(n / 2) tokens (ties broken by position, as the official ranking
ends up doing), the residual layers sample among the 52 most likely codes, and the tokenizer decodes all
``max_tokens`` slots with zero vectors past the end before the motion is trimmed (`decoder_codes`). The
official loop also runs every step over the whole sequence without a cache and samples past [END]; neither
changes its result, so this loop does not repeat that work.

Arrays: codes int64, masks bool, B batch, n motion tokens of the batch, L = max_tokens + 1 positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contract.limits import PROFILES
from ..contract.request import DEFAULT_CFG, DEFAULT_RES_CFG, REFINE_MODES  # the request contract's names
from .nets import Nets

REFINE_CHOICES = REFINE_MODES + ("official",)  # "official": the published code's choice (official profile)
# [END] is not sampled before this many motion tokens: 5 tokens = 20 frames = 1 s, the shortest motion the
# transformers are trained on (train.datasets.MIN_FRAMES); shorter "motions" are never what a prompt asks for.
MIN_TOKENS = 5


def is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Sampling settings. cfg: guidance of the first pass and of the refinement passes; res_cfg: of the
    residual layers; refine: which tokens refinement re-predicts (None: no refinement); rounds: token passes
    in all; temperature 0 or top_k 1 takes the most likely token; res_top_k: top-k of the residual layers
    (None: top_k); profile: "bamm" or "official" (see the module docstring; `official_settings`)."""

    cfg: tuple[float, float] = DEFAULT_CFG
    refine: str | None = "every_other"
    rounds: int = 2
    temperature: float = 1.0
    top_k: int | None = None
    res_cfg: float = DEFAULT_RES_CFG
    res_top_k: int | None = None
    profile: str = "bamm"

    def __post_init__(self):
        cfg = self.cfg
        if not isinstance(cfg, (tuple, list)) or len(cfg) != 2 or not all(is_number(s) for s in cfg):
            raise ValueError(f"cfg must be a pair of finite guidance scales (first pass, refinement), got {cfg!r}")
        object.__setattr__(self, "cfg", (float(cfg[0]), float(cfg[1])))
        check_positive_int(self.rounds, "rounds")
        if self.refine is not None and self.refine not in REFINE_CHOICES:
            raise ValueError(f"refine must be one of {REFINE_CHOICES} or None, got {self.refine!r}")
        if not is_number(self.res_cfg):
            raise ValueError(f"res_cfg must be a finite guidance scale, got {self.res_cfg!r}")
        if not is_number(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be a number >= 0 (0 = most likely token), got {self.temperature!r}")
        if self.top_k is not None:
            check_positive_int(self.top_k, "top_k")
        if self.res_top_k is not None:
            check_positive_int(self.res_top_k, "res_top_k")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")

    @property
    def min_tokens(self) -> int:
        """[END] is not sampled before this many tokens (the official profile lets it come first)."""
        return MIN_TOKENS if self.profile == "bamm" else 0

    @property
    def passes(self) -> int:
        """Refinement passes after the first."""
        return self.rounds - 1 if self.refine is not None else 0


OFFICIAL_TOP_K = 52  # the official residual sampling keeps ceil(0.1 * 513) classes


def official_settings(*, temperature: float = 1.0, **overrides) -> Settings:
    """The published code's decoding in this loop: guidance 4 / 3 / 5 of ``u + s (c - u)`` (3 / 2 / 4 here),
    one refinement pass over the first round(n / 2) tokens, residual top-k 52, [END] allowed first."""
    values = dict(cfg=(3.0, 2.0), refine="official", rounds=2, temperature=temperature, top_k=None, res_cfg=4.0,
                  res_top_k=OFFICIAL_TOP_K, profile="official")
    return Settings(**{**values, **overrides})


def decoder_codes(codes: np.ndarray, st: Settings, slots: int) -> np.ndarray:
    """codes (N, Q) of one motion -> what the tokenizer decodes: the same, or with the official profile all
    `slots` slots, -1 (a zero vector) past the end; the caller keeps the first 4N frames."""
    if st.profile == "bamm" or len(codes) >= slots:
        return codes
    return np.concatenate([codes, np.full((slots - len(codes), codes.shape[1]), -1, np.int64)])


class Sampler:
    """The only source of random numbers of decoding: ``numpy.random.Generator(PCG64(seed))``."""

    def __init__(self, seed: int):
        self.rng = np.random.Generator(np.random.PCG64(check_positive_int(seed, "seed", 0)))

    def draw(self, logits: np.ndarray, temperature: float, top_k: int | None) -> tuple[np.ndarray, np.ndarray]:
        """logits (..., V) -> ids (...) int64 and their probability under softmax(top-k logits) (float64).

        One uniform number per row (none at temperature 0, which takes the argmax)."""
        z = np.array(logits, dtype=np.float64)
        if top_k is not None and top_k < z.shape[-1]:
            kth = np.partition(z, -top_k, axis=-1)[..., -top_k, None]
            z[z < kth] = -np.inf
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        if temperature == 0:
            ids = z.argmax(-1)
        else:
            w = np.exp((z - z.max(-1, keepdims=True)) / temperature)
            cdf = np.cumsum(w, -1)
            u = self.rng.random(z.shape[:-1]) * cdf[..., -1]
            ids = np.minimum((cdf <= u[..., None]).sum(-1), z.shape[-1] - 1)
        conf = np.take_along_axis(p, ids[..., None], -1)[..., 0]
        return ids.astype(np.int64), conf


def guide(logits: np.ndarray, rep: int, scale: float) -> np.ndarray:
    """(rep * B, ...) logits (conditional rows first) -> (B, ...) float64 ``(1 + s) cond - s uncond``."""
    z = np.asarray(logits, dtype=np.float64)
    if rep == 1:
        return z
    b = len(z) // 2
    return (1.0 + scale) * z[:b] - scale * z[b:]


def guided_inputs(text: np.ndarray | None, batch: int, scale: float, dim: int):
    """Text inputs for a batch: (text_emb (rep * B, D), drop (rep * B,), rep). Guidance doubles the batch
    (conditional rows, then the same rows with the null condition); text None is unconditional."""
    if text is None:
        return np.zeros((batch, dim), np.float32), np.ones(batch, bool), 1
    text = np.asarray(text, np.float32)
    if scale == 0:
        return text, np.zeros(batch, bool), 1
    return np.concatenate([text, text]), np.arange(2 * batch) >= batch, 2


def hybrid_allowed(unmasked: np.ndarray, causal_only: bool = False) -> np.ndarray:
    """(B, L) bool U -> (B, L, L) bool, True where query i may attend key j: ``i >= j`` (unidirectional) or
    ``(i >= j and i not in U) or j in U`` (bidirectional). Every row keeps its diagonal."""
    n = unmasked.shape[1]
    causal = np.tril(np.ones((n, n), bool))[None]
    if causal_only:
        return np.broadcast_to(causal, (len(unmasked), n, n)).copy()
    return (causal & ~unmasked[:, :, None]) | unmasked[:, None, :]


def refine_redo(mode: str, round_: int, eligible: np.ndarray, conf: np.ndarray | None) -> np.ndarray:
    """(B, n) bool: tokens re-predicted in refinement round `round_` (1 = the first refinement), among the
    `eligible` ones (the motion's tokens; for an edit, the regenerated ones). Half of them (at least one),
    except every_other (by slot parity: even slots first, odd ones next round). conf (B, n): probability of
    each token when sampled (only "low_confidence" reads it). "official": the first round(n / 2) (half to
    even, at least one), the published code's choice."""
    if mode not in REFINE_CHOICES:
        raise ValueError(f"refine must be one of {REFINE_CHOICES}, got {mode!r}")
    slot = np.arange(eligible.shape[1])[None]
    count = eligible.sum(1, keepdims=True)
    half = (count + 1) // 2
    order = np.cumsum(eligible, 1) - 1  # index among the eligible tokens
    if mode == "every_other":
        redo = (slot % 2) == ((round_ - 1) % 2)
    elif mode == "low_confidence":
        score = np.where(eligible, conf, np.inf)
        redo = np.argsort(np.argsort(score, 1, kind="stable"), 1, kind="stable") < half
    elif mode == "suffix":
        redo = order >= count - half
    elif mode == "prefix":  # the first half
        redo = order < half
    else:  # "official": round(n / 2) rounds half to even (torch.round), tied scores ranked by position
        redo = order < np.maximum(np.round(count / 2), 1)
    return redo & eligible


# ------------------------------------------------------------------------------------------ passes

def _pick(nets: Nets, row, rep: int, scale: float, st: Settings, sampler: Sampler, ban_end: bool):
    z = guide(row, rep, scale)
    if ban_end:
        z[:, nets.config.end_id] = -np.inf
    return sampler.draw(z, st.temperature, st.top_k)


def sample_ar(nets: Nets, text, batch: int, st: Settings, sampler: Sampler, progress=None, use_cache: bool = True):
    """Unidirectional pass: tokens until [END] (at least MIN_TOKENS, at most max_tokens - 1). text (B, D) or None.
    Returns codes (B, n) (0 past each length), lengths (B,) and conf (B, n). progress(fraction) per step."""
    c = nets.config
    s, scale = c.max_tokens, st.cfg[0]
    text_in, drop, rep = guided_inputs(text, batch, scale, c.text_dim)
    ids = np.full((batch, s), c.pad_id, np.int64)
    conf = np.zeros((batch, s))
    lengths = np.full(batch, s - 1, np.int64)
    done = np.zeros(batch, bool)
    allowed = hybrid_allowed(np.zeros((rep * batch, c.length), bool), causal_only=True)
    logits, state = nets.prefill(np.tile(ids, (rep, 1)), text_in, drop, allowed)
    row = logits[:, 0]
    for p in range(s):  # row p predicts slot p (position p + 1)
        if p > 0 and use_cache:
            out, state = nets.step(np.tile(ids[:, p - 1:p], (rep, 1)), p, allowed[:, p:p + 1], state)
            row = out[:, 0]
        elif p > 0:
            row = nets.prefill(np.tile(ids, (rep, 1)), text_in, drop, allowed)[0][:, p]
        if p == s - 1:  # longest motion reached
            new, prob = np.full(batch, c.end_id, np.int64), np.ones(batch)
        else:
            new, prob = _pick(nets, row, rep, scale, st, sampler, ban_end=p < min(st.min_tokens, s - 1))
        new = np.where(done, c.pad_id, new)
        ended = ~done & (new == c.end_id)
        lengths = np.where(ended, p, lengths)
        if p == 0 and st.min_tokens == 0:  # [END] first: one token of code 0 (the official rule)
            new, lengths = np.where(ended, 0, new), np.where(ended, 1, lengths)
        ids[:, p], conf[:, p] = new, np.where(done, 0.0, prob)
        done |= ended
        if progress is not None:
            progress((p + 1) / s)
        if done.all():
            break
    n = int(lengths.max())
    slot = np.arange(n)[None]
    return np.where(slot < lengths[:, None], ids[:, :n], 0), lengths, conf[:, :n]


def sample_masked(nets: Nets, codes, lengths, keep, text, scale: float, st: Settings, sampler: Sampler,
                  progress=None, use_cache: bool = True):
    """Bidirectional pass: re-predict, left to right, the motion tokens where keep is False.

    codes (B, n) base codes (values at re-predicted slots are ignored), lengths (B,), keep (B, n) bool;
    U = text + kept tokens + [END] after each length. Returns codes (B, n) (0 past each length) and conf."""
    c = nets.config
    b, n = codes.shape
    ids = np.full((b, c.max_tokens), c.pad_id, np.int64)
    ids[:, :n] = codes
    valid = np.arange(c.max_tokens)[None] < lengths[:, None]
    ids[~valid] = c.pad_id
    ids[np.arange(b), lengths] = c.end_id
    kept = np.zeros((b, c.max_tokens), bool)
    kept[:, :n] = keep
    kept |= ~valid
    todo = valid & ~kept
    unmasked = np.concatenate([np.ones((b, 1), bool), (valid & kept) | (ids == c.end_id)], 1)  # (B, L)
    # row p is recomputed (its input is final by then) if it is masked and it, or a later masked row,
    # predicts a slot to sample: masked rows see every earlier position
    needed = todo & ~unmasked[:, :-1]
    later = np.flip(np.cumsum(np.flip(needed, 1), 1), 1) > 0
    run_row = (~unmasked[:, :-1] & later).any(0)
    text_in, drop, rep = guided_inputs(text, b, scale, c.text_dim)
    allowed = hybrid_allowed(np.tile(unmasked, (rep, 1)))
    rows, state = nets.prefill(np.tile(ids, (rep, 1)), text_in, drop, allowed)  # exact for rows in U
    conf = np.ones((b, n))
    n_todo, finished = int(todo.any(0).sum()), 0
    for p in range(n):
        if p > 0 and run_row[p]:
            if use_cache:
                out, state = nets.step(np.tile(ids[:, p - 1:p], (rep, 1)), p, allowed[:, p:p + 1], state)
                rows[:, p] = out[:, 0]
            else:
                rows[:, p] = nets.prefill(np.tile(ids, (rep, 1)), text_in, drop, allowed)[0][:, p]
        if not todo[:, p].any():
            continue
        new, prob = _pick(nets, rows[:, p], rep, scale, st, sampler, ban_end=True)
        ids[:, p] = np.where(todo[:, p], new, ids[:, p])
        conf[:, p] = np.where(todo[:, p], prob, conf[:, p])
        finished += 1
        if progress is not None:
            progress(finished / n_todo)
    return np.where(valid[:, :n], ids[:, :n], 0), conf


def base_tokens(nets: Nets, text, *, batch: int, lengths=None, codes=None, keep=None, st: Settings,
                sampler: Sampler, progress=None, refine_progress=None, use_cache: bool = True):
    """Cascaded base-layer decoding. lengths None: the unidirectional pass picks each length; else the
    bidirectional pass with `keep` (B, n) tokens of `codes` (B, n) visible (none by default). Then
    `st.passes` refinement passes over the tokens not kept. Returns codes (B, n) and lengths (B,).
    progress / refine_progress (fraction) report the first pass and the refinement passes."""
    if lengths is None:
        base, lengths, conf = sample_ar(nets, text, batch, st, sampler, progress, use_cache)
        keep = np.zeros(base.shape, bool)
    else:
        lengths = np.asarray(lengths, np.int64)
        n = int(lengths.max())
        codes = np.zeros((batch, n), np.int64) if codes is None else np.asarray(codes, np.int64)
        keep = np.zeros((batch, n), bool) if keep is None else np.asarray(keep, bool)
        base, conf = sample_masked(nets, codes, lengths, keep, text, st.cfg[0], st, sampler, progress, use_cache)
    eligible = (np.arange(base.shape[1])[None] < lengths[:, None]) & ~keep
    for r in range(1, st.passes + 1):
        redo = refine_redo(st.refine, r, eligible, conf)
        report = None if refine_progress is None else (lambda f, r=r: refine_progress((r - 1 + f) / st.passes))
        if redo.any():
            base, new_conf = sample_masked(nets, base, lengths, ~redo, text, st.cfg[1], st, sampler, report,
                                           use_cache)
            conf = np.where(redo, new_conf, conf)
    return base, lengths


def residual_layers(nets: Nets, base, lengths, text, st: Settings, sampler: Sampler, keep_codes=None, keep=None):
    """Layers 1..Q-1 for base codes (B, n) -> codes (B, n, Q) (0 past each length). Where keep (B, n) is
    True every layer is copied from keep_codes (B, n, Q). text None: the null condition, no guidance."""
    c = nets.config
    if (keep_codes is None) != (keep is None):
        raise ValueError("keep_codes and keep must be given together")
    b, n = base.shape
    valid = np.arange(n)[None] < np.asarray(lengths)[:, None]
    codes = np.zeros((b, n, c.num_quantizers), np.int64)
    codes[..., 0] = base
    if keep is not None:
        codes = np.where(keep[..., None], keep_codes, codes)
    codes[~valid] = 0
    text_in, drop, rep = guided_inputs(text, b, st.res_cfg, c.text_dim)
    for j in range(1, c.num_quantizers):
        logits = nets.residual_logits(np.tile(codes, (rep, 1, 1)), j, text_in, drop, np.tile(valid, (rep, 1)))
        top_k = st.top_k if st.res_top_k is None else st.res_top_k
        pred, _ = sampler.draw(guide(logits, rep, st.res_cfg), st.temperature, top_k)
        if keep is not None:
            pred = np.where(keep, keep_codes[..., j], pred)
        codes[..., j] = np.where(valid, pred, 0)
    return codes


def regenerate(nets: Nets, items, text, st: Settings, sampler: Sampler, progress=None, use_cache: bool = True):
    """items: [(codes (N, Q), keep (N,) bool)] -> [codes (N, Q)] with the tokens where keep is False
    regenerated (every layer, first pass and `st.refine` rounds) and every kept token unchanged. text
    (len(items), D) or None (unconditional). A sequence longer than one context is edited through a window of
    max_tokens - 1 tokens centred on the regenerated span. progress(fraction) over the whole call."""
    c = nets.config
    w = c.motion_tokens
    windows, spans = [], []
    for codes, keep in items:
        redo = np.flatnonzero(~keep)
        if not len(redo):
            raise ValueError("nothing to regenerate: every token is kept")
        lo, hi = int(redo.min()), int(redo.max()) + 1
        if hi - lo > w:
            f = c.frames_per_token
            raise ValueError(f"the span to regenerate covers {hi - lo} tokens ({(hi - lo) * f} frames); these "
                             f"weights regenerate at most {w} tokens ({w * f} frames) at once")
        s = min(max(lo - (w - (hi - lo)) // 2, 0), max(len(codes) - w, 0))
        spans.append((s, min(s + w, len(codes))))
        windows.append((codes[s:s + w], keep[s:s + w]))
    lengths = np.array([len(k) for _, k in windows], np.int64)
    n = int(lengths.max())
    codes = np.zeros((len(items), n, c.num_quantizers), np.int64)
    keep = np.ones((len(items), n), bool)
    for i, (cw, kw) in enumerate(windows):
        codes[i, :len(cw)], keep[i, :len(kw)] = cw, kw
    total = 1 + st.passes
    first = None if progress is None else (lambda f: progress(f / total))
    rest = None if progress is None else (lambda f: progress((1 + f * st.passes) / total))
    base, _ = base_tokens(nets, text, batch=len(items), lengths=lengths, codes=codes[..., 0], keep=keep, st=st,
                          sampler=sampler, progress=first, refine_progress=rest, use_cache=use_cache)
    full = residual_layers(nets, base, lengths, text, st, sampler, keep_codes=codes, keep=keep)
    out = []
    for i, ((cs, _), (s, e)) in enumerate(zip(items, spans)):
        cs = np.array(cs, np.int64)
        cs[s:e] = full[i, :e - s]
        out.append(cs)
    if progress is not None:
        progress(1.0)
    return out
