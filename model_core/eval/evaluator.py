"""Text–motion matching evaluator and action/style classifier, trained on real clips.

The evaluation protocol (FID, R-precision, MM-Dist, diversity, multimodality) needs a motion encoder
and a text encoder that share one embedding space. HumanML3D's official evaluator is trained on
HumanML3D; for our own data we train one the same way (contrastive), on the training split only:

- ``MotionEncoder``: two strided 1-D convolutions (×4 downsampling, like the tokenizer) and a
  bidirectional GRU, mean-pooled over valid frames.
- ``MatchingEvaluator``: motion encoder + an MLP over the frozen sentence embedding of the caption,
  trained with a symmetric InfoNCE loss in which clips sharing the same labels count as positives
  (label-derived captions repeat, so they must not be pushed apart). Embeddings are L2-normalised:
  MM-Dist and diversity are chord distances in [0, 2].
- ``MotionClassifier``: its own motion encoder with action (content) and style heads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(kw_only=True)
class EvaluatorConfig:
    dim_pose: int = 263       # HumanML3D feature size
    text_dim: int = 384       # sentence-embedding size of the text encoder (MiniLM: 384)
    hidden: int = 128         # conv / GRU width
    embed_dim: int = 128      # shared embedding size
    n_contents: int = 1       # action classes (classifier only)
    n_styles: int = 1         # style classes (classifier only)
    temperature: float = 0.1  # InfoNCE temperature
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def lengths_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class MotionEncoder(nn.Module):
    """(B, T, dim_pose) normalised features + lengths → (B, out_dim)."""

    def __init__(self, *, dim_pose: int, hidden: int, out_dim: int, dropout: float = 0.1):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(dim_pose, hidden, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        )
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)            # (B, T/4, H)
        n = torch.clamp(torch.div(lengths, 4, rounding_mode="floor"), min=1, max=h.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(h, n.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        mask = lengths_mask(n, h.shape[1]).unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1)
        return self.out(pooled)


class MatchingEvaluator(nn.Module):
    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        c = config
        self.motion_encoder = MotionEncoder(dim_pose=c.dim_pose, hidden=c.hidden, out_dim=c.embed_dim,
                                            dropout=c.dropout)
        self.text_head = nn.Sequential(nn.Linear(c.text_dim, c.hidden), nn.LeakyReLU(0.2),
                                       nn.Dropout(c.dropout), nn.Linear(c.hidden, c.embed_dim))

    def embed_motion(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.motion_encoder(x, lengths), dim=-1)

    def embed_text(self, text_emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(text_emb), dim=-1)

    def loss(self, x, lengths, text_emb, groups: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Symmetric InfoNCE; ``groups`` (B,) int: equal ids are positives of each other."""
        m, t = self.embed_motion(x, lengths), self.embed_text(text_emb)
        logits = t @ m.T / self.config.temperature
        target = (groups[:, None] == groups[None, :]).float()
        target = target / target.sum(1, keepdim=True)
        loss = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                      + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean())
        return loss, {"nce": float(loss.detach())}


class MotionClassifier(nn.Module):
    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = MotionEncoder(dim_pose=c.dim_pose, hidden=c.hidden, out_dim=c.hidden, dropout=c.dropout)
        self.content_head = nn.Linear(c.hidden, c.n_contents)
        self.style_head = nn.Linear(c.hidden, c.n_styles)

    def forward(self, x, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.encoder(x, lengths), 0.2)
        return self.content_head(h), self.style_head(h)

    def loss(self, x, lengths, content, style) -> tuple[torch.Tensor, dict]:
        lc, ls = self(x, lengths)
        loss = F.cross_entropy(lc, content) + F.cross_entropy(ls, style)
        return loss, {"ce": float(loss.detach())}

    @torch.no_grad()
    def predict(self, x, lengths) -> tuple[torch.Tensor, torch.Tensor]:
        lc, ls = self(x, lengths)
        return lc.argmax(-1), ls.argmax(-1)
