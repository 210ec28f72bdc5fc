"""What the decoding API hands back and how it reports progress: `Motion` (one motion: joints, features,
tokens) and `Progress` (stages of a call onto one overall fraction for the caller's callback). Shared by
`generate.py` (generation) and `editing.py` (edit, extend, long sequences); numpy arrays only, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Motion:
    """One motion. joints (T, 22, 3) metres Y-up; features (T, 263) de-normalised; tokens (ceil(T/4), Q)."""

    joints: np.ndarray
    features: np.ndarray
    tokens: np.ndarray
    prompt: str | None = None
    fps: float = 20.0

    @property
    def frames(self) -> int:
        return len(self.joints)

    @property
    def seconds(self) -> float:
        return len(self.joints) / self.fps


class Progress:
    """Maps (stage, fraction of the stage) onto one overall fraction for the caller's callback."""

    def __init__(self, callback, weights: dict[str, float]):
        self.callback, self.start, total, acc = callback, {}, sum(weights.values()), 0.0
        self.weights = {k: w / total for k, w in weights.items()}
        for k, w in self.weights.items():
            self.start[k], acc = acc, acc + w

    def __call__(self, stage: str, fraction: float = 1.0) -> None:
        if self.callback is not None:
            self.callback(stage, min(1.0, self.start[stage] + self.weights[stage] * fraction))

    def stage(self, stage: str):
        return None if self.callback is None else (lambda f: self(stage, f))
