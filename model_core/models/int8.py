"""Int8 decoding on the CPU for the token transformers.

An incremental decoding step multiplies 2 rows (the prompt and its guidance twin) by every weight matrix, so
it is bound by how fast the weights stream from memory; the residual transformer's passes are bound by
multiply-adds. `quantize_int8` replaces the linear layers of a model by int8 ones (weights per output channel,
activations quantised per call: fbgemm dynamic quantisation): a quarter of the bytes per step and twice the
multiply-adds per cycle. The result is an inference-only copy.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def int8_available() -> bool:
    """Whether this torch build has the fbgemm kernels `Int8Linear` needs (x86-64 CPU builds do)."""
    return "fbgemm" in torch.backends.quantized.supported_engines


class Int8Linear(nn.Module):
    """Inference-only int8 version of an `nn.Linear` (CPU): per-channel int8 weights, dynamic activations."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float().cpu()
        scale = (w.abs().amax(1) / 127).clamp(min=1e-12).double()
        with warnings.catch_warnings():  # torch announces a new home for quantised tensors; these kernels stay
            warnings.simplefilter("ignore", UserWarning)
            q = torch.quantize_per_channel(w, scale, torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float().cpu()
        self.packed = torch.ops.quantized.linear_prepack(q, bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reduce_range: 7-bit activations, so AVX2's int8 multiply-add cannot saturate
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, self.in_features).float(), self.packed, True)
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace every `nn.Linear` inside `model` (a CPU model in eval mode) by an `Int8Linear`, in place."""
    if not int8_available():
        raise RuntimeError("int8 decoding needs torch's fbgemm kernels, which this torch build lacks; "
                           "use the float32 weights")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("int8 decoding runs on the CPU only; move the model to the CPU first")
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, Int8Linear(child))
        else:
            quantize_int8(child)
    return model.eval()
