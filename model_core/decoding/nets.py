"""The network interface the decoding loop (`loop.py`) calls; numpy in, numpy out, no torch.

Two back ends implement it: `torch_nets.TorchNets` (the torch modules: training-time evaluation, the command
line, GPUs) and `runtime.ort_nets.OrtNets` (graphs exported to ONNX, run by ONNX Runtime: the Blender
extension). The loop builds every attention mask itself and passes it in; the networks hold no decoding logic.

Shapes: B batch, L = ``max_tokens + 1`` BAMM positions (text, motion tokens, [END]), V = ``code_num + 1``
classes (codes and [END]), N motion tokens, Q RVQ layers, D text embedding size, T = 4N frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class NetsConfig:
    """Every number the decoding loop needs (written to a runtime folder's runtime.json)."""

    code_num: int  # codebook size; ids 0..code_num-1 are codes
    max_tokens: int  # BAMM transformer ids after the text position: motion tokens + [END]
    res_max_tokens: int  # longest token sequence the residual transformer takes
    num_quantizers: int  # Q
    frames_per_token: int  # 4
    fps: float  # 20.0
    text_dim: int  # D
    input_dim: int  # feature size (263)
    contact_root: bool = False  # decoded features get `motion.contact_root` (the tokenizer was trained so)

    def __post_init__(self):
        for name in ("code_num", "max_tokens", "res_max_tokens", "num_quantizers", "frames_per_token", "text_dim",
                     "input_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"NetsConfig.{name} must be an integer >= 1, got {value!r}")
        if self.max_tokens < 2 or self.num_quantizers < 2:
            raise ValueError(f"NetsConfig needs max_tokens >= 2 and num_quantizers >= 2, got {self.max_tokens} and "
                             f"{self.num_quantizers}")
        if not isinstance(self.contact_root, bool):
            raise ValueError(f"NetsConfig.contact_root must be true or false, got {self.contact_root!r}")
        if not self.fps > 0:
            raise ValueError(f"NetsConfig.fps must be > 0, got {self.fps!r}")

    @property
    def end_id(self) -> int:
        return self.code_num

    @property
    def pad_id(self) -> int:
        return self.code_num + 1

    @property
    def length(self) -> int:
        """L: BAMM transformer positions (text + max_tokens ids)."""
        return self.max_tokens + 1

    @property
    def motion_tokens(self) -> int:
        """Most motion tokens in one pass (the context less [END])."""
        return self.max_tokens - 1

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: dict, *, where: str = "runtime.json") -> "NetsConfig":
        names = set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or not names - {"contact_root"} <= set(data) <= names:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{where}: expected the keys {sorted(names)}, got {got}")
        return cls(**{k: (float(v) if k == "fps" else v) for k, v in data.items()})


class Nets:
    """Base class of the back ends. Subclasses set `config`, `mean`, `std` (float32 (input_dim,)),
    `text_name` and implement the methods below; every array argument and result is numpy."""

    config: NetsConfig
    mean: np.ndarray
    std: np.ndarray
    text_name: str = "?"

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        """Prompts -> (B, D) float32 embeddings."""
        raise NotImplementedError

    def prefill(self, ids: np.ndarray, text_emb: np.ndarray, drop: np.ndarray, allowed: np.ndarray):
        """BAMM transformer over all L positions. ids (B, L-1) int64 at positions 1..L-1, text_emb (B, D)
        float32, drop (B,) bool (True: the null text token), allowed (B, L, L) bool (query i may see key j).
        Returns (logits (B, L, V) float32, state): row p predicts the id at position p + 1; state is the opaque
        key/value cache for `step`."""
        raise NotImplementedError

    def step(self, ids: np.ndarray, pos: int, allowed: np.ndarray, state):
        """ids (B, 1) int64 at position pos (1 <= pos < L), allowed (B, 1, L) bool (row pos of the mask).
        Writes the position's keys/values into the state and returns (logits (B, 1, V) float32, state)."""
        raise NotImplementedError

    def residual_logits(self, codes: np.ndarray, layer: int, text_emb: np.ndarray, drop: np.ndarray,
                        valid: np.ndarray) -> np.ndarray:
        """Residual transformer: logits (B, N, code_num) float32 of RVQ layer `layer` (1..Q-1) from codes
        (B, N, Q) int64 (only layers < `layer` are read), text_emb (B, D) float32, drop (B,) bool, valid (B, N)
        bool (False: padding, never attended to)."""
        raise NotImplementedError

    def vq_encode(self, features: np.ndarray) -> np.ndarray:
        """Normalised features (B, T, input_dim) float32, T a multiple of 4 -> codes (B, T / 4, Q) int64."""
        raise NotImplementedError

    def vq_decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (B, N, Q) int64 -> normalised features (B, 4N, input_dim) float32."""
        raise NotImplementedError
