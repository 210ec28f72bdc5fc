"""Torch datasets of the trainers, built on `data.humanml3d.load_split`.

Per-sample randomness (which caption, which crop) comes from a generator keyed by (seed, epoch, index), so an
item is the same whichever rank, worker or resumed run loads it. The trainer calls `set_epoch` before each
epoch; the data order itself comes from the (distributed) sampler, also seeded by epoch.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .common import TrainError

MAX_FRAMES = 196  # longest training motion of the transformers (HumanML3D / MoMask / BAMM)
# Shorter caption ranges are left out of transformer training. MoMask's HumanML3D loader uses 40; 20 (five
# tokens) keeps the short gestures of the Bandai-Namco data (15% of its clips are 20..39 frames).
MIN_FRAMES = 20
BALANCE_CAP = 8  # default most copies of one training item (`repeat_factors`)


def repeat_factors(labels: list[str | None], *, cap: int = BALANCE_CAP,
                   styles: list[str | None] | None = None) -> list[int]:
    """How many times each training item is listed per epoch so that rare actions are learnt: an action with
    `n` items gets round(sqrt(n_max / n)) copies (at most `cap`), the most frequent one a single copy
    (repeat-factor sampling). Items without a label (datasets without meta.jsonl) count once.

    styles (one per item, None: no style label): an item gets the larger of its action's copies and its
    (action, style) pair's, the pair's counted the same way against the most frequent pair, so that within
    one style a rare action does not outnumber a common one (a style whose clips hold one walk and one walk
    backwards lists both equally often, not the rare action 5 times as often). The pairs' copies lengthen the
    epoch by a factor g (items listed by pair over items listed by action); an item is then listed at least
    floor(g x its action's copies) times, so an action of one or two clips, whose pair adds nothing, keeps its
    share of the epoch instead of shrinking by 1 / g."""
    if styles is not None and len(styles) != len(labels):
        raise ValueError(f"{len(labels)} action labels but {len(styles)} style labels")
    factor = _factors(labels, cap)
    out = [1 if label is None else factor[label] for label in labels]
    if styles is None:
        return out
    pairs = [(a, s) if a is not None and s is not None else None for a, s in zip(labels, styles)]
    pair_factor = _factors(pairs, cap)
    paired = [r if pair is None else max(r, pair_factor[pair]) for r, pair in zip(out, pairs)]
    growth = sum(paired) / max(1, sum(out))
    return [max(p, int(r * growth)) for r, p in zip(out, paired)]


def _factors(keys: list, cap: int) -> dict:
    """Copies per key (None left out): round(sqrt(n_max / n)), between 1 and `cap`."""
    counts = Counter(k for k in keys if k is not None)
    top = max(counts.values(), default=0)
    return {k: int(min(cap, max(1, round(np.sqrt(top / n))))) for k, n in counts.items()}


def repeated(items: list, labels: list[str | None], *, cap: int = BALANCE_CAP,
             styles: list[str | None] | None = None) -> list:
    """The items, each listed `repeat_factors` times (its label's copies) in a row."""
    return [item for item, r in zip(items, repeat_factors(labels, cap=cap, styles=styles)) for _ in range(r)]


def balance_settings(balance: bool | None, balance_cap: int | None, *, resume: bool,
                     balance_style: bool | None = None) -> dict:
    """The run.json entries of ``--no-balance`` / ``--balance-cap`` / ``--balance-style`` (new runs: balanced,
    cap `BALANCE_CAP` unless given, by action only unless asked; a resumed run keeps its own unless given);
    TrainError for a bad cap."""
    if balance_cap is not None and not (isinstance(balance_cap, int) and balance_cap >= 1):
        raise TrainError(f"--balance-cap must be an integer >= 1, got {balance_cap}")
    if resume:
        return {"balance": balance, "balance_cap": balance_cap, "balance_style": balance_style}
    return {"balance": True if balance is None else bool(balance),
            "balance_cap": BALANCE_CAP if balance_cap is None else balance_cap,
            "balance_style": bool(balance_style)}


def balance_of(extra: dict) -> dict:
    """``balance`` / ``balance_cap`` / ``balance_style`` keyword arguments of a stage from a run's recorded
    settings (runs from before ``balance_style`` balanced by action only)."""
    return {"balance": bool(extra.get("balance", False)), "balance_cap": int(extra.get("balance_cap") or BALANCE_CAP),
            "balance_style": bool(extra.get("balance_style", False))}


class MotionCrops(Dataset):
    """One random fixed-length crop per motion: item i -> (crop (window, D) float32, valid frames (int64)).

    Motions shorter than the window (but at least `min_frames` long) are zero-padded (zero is the mean pose
    of normalised features) and their valid length is returned, so the loss can ignore the padding.
    """

    def __init__(self, motions: list[np.ndarray], *, window: int = 64, min_frames: int = 4, seed: int = 0):
        if window < min_frames or min_frames < 1:
            raise ValueError(f"need 1 <= min_frames <= window, got {min_frames}, {window}")
        self.motions = [m for m in motions if len(m) >= min_frames]
        self.window, self.seed, self.epoch = window, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.motions)

    def __getitem__(self, i: int):
        motion = self.motions[i]
        n = min(len(motion), self.window)
        start = int(np.random.default_rng([self.seed, self.epoch, int(i)]).integers(len(motion) - n + 1))
        crop = np.zeros((self.window, motion.shape[1]), dtype=np.float32)
        crop[:n] = motion[start:start + n]
        return torch.from_numpy(crop), torch.tensor(n)


@dataclass(frozen=True)
class Segment:
    """A tokenised motion (or caption sub-range of one) with the rows of its captions in the text table."""

    key: str
    tokens: np.ndarray  # (N, Q) int64 codes
    captions: tuple[int, ...]


class TextTokens(Dataset):
    """Text-token pairs: item i -> (codes (n, Q) int64, text embedding (D,)) with n <= max_tokens.

    A random caption of the segment is picked, and a segment longer than `max_tokens` is cropped at a random
    token offset. With `window_prob` p > 0, each item is, with probability p, a random window of the segment
    instead: its length uniform in [`min_tokens`, min(n, `max_tokens`)], at a random offset. The residual
    transformer trains on such windows: what it predicts depends on the codes around a position, not on where
    in a clip it falls, and without them it learns a rare action's only clip position by position and misses
    it anywhere else.
    """

    def __init__(self, segments: list[Segment], text_table: torch.Tensor, *, max_tokens: int, seed: int = 0,
                 window_prob: float = 0.0, min_tokens: int = 1):
        if not segments:
            raise TrainError("no text-token pairs: the split has no captioned motion long enough to train on")
        if not 0.0 <= window_prob <= 1.0 or min_tokens < 1:
            raise ValueError(f"window_prob must be in [0, 1] and min_tokens >= 1, got {window_prob}, {min_tokens}")
        self.segments, self.text_table = segments, text_table
        self.max_tokens, self.seed, self.epoch = max_tokens, seed, 0
        self.window_prob, self.min_tokens = window_prob, min_tokens

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        seg = self.segments[i]
        caption = seg.captions[int(rng.integers(len(seg.captions)))]
        tokens = seg.tokens
        length = min(len(tokens), self.max_tokens)
        if self.window_prob and rng.random() < self.window_prob and length > self.min_tokens:
            length = int(rng.integers(self.min_tokens, length + 1))
        if len(tokens) > length:
            start = int(rng.integers(len(tokens) - length + 1))
            tokens = tokens[start:start + length]
        return torch.from_numpy(np.ascontiguousarray(tokens)), self.text_table[caption]


def collate_text_tokens(items):
    """-> (codes (B, N, Q) int64 zero-padded to the longest item, lengths (B,) int64, text (B, D) float32)."""
    lengths = torch.tensor([len(codes) for codes, _ in items], dtype=torch.long)
    codes = torch.zeros(len(items), int(lengths.max()), items[0][0].shape[1], dtype=torch.long)
    for row, (c, _) in enumerate(items):
        codes[row, :len(c)] = c
    return codes, lengths, torch.stack([text for _, text in items]).float()


class SkipSampler(Sampler):
    """The indices of `base` after the first `skip` (to resume in the middle of an epoch)."""

    def __init__(self, base: Sampler, skip: int):
        self.base, self.skip = base, skip

    def __iter__(self):
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)


def caption_segments(clip, *, min_frames: int = MIN_FRAMES) -> dict[tuple[int, int], list[str]]:
    """{(start, end) frames: [caption texts]} of one clip; ranges shorter than `min_frames` are left out."""
    out: dict[tuple[int, int], list[str]] = {}
    for caption in clip.captions:
        start, end = caption.start_frame, caption.end_frame
        if end - start >= min_frames:
            out.setdefault((start, end), []).append(caption.text)
    return out


def segment_key(clip_id: str, start: int, end: int, n_frames: int) -> str:
    return clip_id if (start, end) == (0, n_frames) else f"{clip_id}@{start}-{end}"


def segment_clip(key: str) -> str:
    """The clip id of a `segment_key`."""
    return key.split("@")[0]
