"""`TorchNets`: the `nets.Nets` interface over the torch modules (training-time evaluation, CLI, GPUs).

Arrays cross the interface as numpy; the key/value cache stays on the device as torch tensors. Works with
int8 token transformers (`models/int8.py`) as with float32 ones: both run the same module methods.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.residual import ResidualTransformer
from ..models.transformer import BAMMTransformer
from ..models.vq import RVQVAE
from .nets import Nets, NetsConfig


class TorchNets(Nets):
    """Text encoder + RVQ-VAE + BAMM transformer + residual transformer + Mean/Std on one torch device."""

    def __init__(self, *, text_encoder, vq: RVQVAE, t2m: BAMMTransformer, res: ResidualTransformer, mean, std,
                 fps: float = 20.0, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.text_encoder = text_encoder.to(self.device)
        self.vq, self.t2m, self.res = (m.to(self.device).eval() for m in (vq, t2m, res))
        self.mean = np.asarray(torch.as_tensor(mean).float().cpu(), np.float32).reshape(-1)
        self.std = np.asarray(torch.as_tensor(std).float().cpu(), np.float32).reshape(-1)
        q = vq.config.num_quantizers
        for what, got, want in [("BAMM transformer code_num", t2m.config.code_num, vq.config.code_num),
                                ("residual code_num", res.config.code_num, vq.config.code_num),
                                ("residual num_quantizers", res.config.num_quantizers, q),
                                ("BAMM transformer text_dim", t2m.config.text_dim, text_encoder.dim),
                                ("residual text_dim", res.config.text_dim, text_encoder.dim),
                                ("mean size", self.mean.size, vq.config.input_dim),
                                ("std size", self.std.size, vq.config.input_dim)]:
            if got != want:
                raise ValueError(f"{what} is {got}, expected {want} (the models do not belong together)")
        if res.config.max_tokens < t2m.config.max_tokens - 1:
            raise ValueError(f"residual max_tokens {res.config.max_tokens} is shorter than the BAMM transformer's "
                             f"{t2m.config.max_tokens - 1} motion tokens")
        self.config = NetsConfig(code_num=t2m.config.code_num, max_tokens=t2m.config.max_tokens,
                                 res_max_tokens=res.config.max_tokens, num_quantizers=q,
                                 frames_per_token=vq.config.frames_per_token, fps=float(fps),
                                 text_dim=t2m.config.text_dim, input_dim=vq.config.input_dim,
                                 contact_root=vq.config.contact_root)
        self.text_name = getattr(text_encoder, "name", "?")

    def _t(self, array, dtype=None) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=self.device)

    @staticmethod
    def _np(tensor: torch.Tensor) -> np.ndarray:
        return tensor.float().cpu().numpy()

    @torch.inference_mode()
    def encode_text(self, prompts: list[str]) -> np.ndarray:
        return self._np(self.text_encoder.encode(list(prompts)))

    @torch.inference_mode()
    def prefill(self, ids, text_emb, drop, allowed):
        logits, keys, values = self.t2m.prefill(self._t(ids, torch.long), self._t(text_emb, torch.float32),
                                                self._t(drop, torch.bool), self._t(allowed, torch.bool))
        return self._np(logits), (keys, values)

    @torch.inference_mode()
    def step(self, ids, pos, allowed, state):
        logits, keys, values = self.t2m.step(self._t(ids, torch.long), int(pos), self._t(allowed, torch.bool),
                                             *state)
        return self._np(logits), (keys, values)

    @torch.inference_mode()
    def residual_logits(self, codes, layer, text_emb, drop, valid):
        codes = self._t(codes, torch.long)
        layer = torch.full((len(codes),), int(layer), dtype=torch.long, device=self.device)
        return self._np(self.res.layer_logits(codes, layer, self._t(text_emb, torch.float32),
                                              self._t(drop, torch.bool), self._t(valid, torch.bool)))

    @torch.inference_mode()
    def vq_encode(self, features):
        return self.vq.encode(self._t(features, torch.float32)).cpu().numpy()

    @torch.inference_mode()
    def vq_decode(self, codes):
        return self._np(self.vq.decode(self._t(codes, torch.long)))
