"""Reading the published `.tar` checkpoints and `mean.npy` / `std.npy` without running code from them.

The checkpoints are `torch.save` archives holding a dict: the model's state dict under one entry
(``t2m_transformer``, ``res_transformer`` or ``vq_model``) plus optimiser and scheduler state, epoch and
iteration counts. They are read with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler
rebuilds tensors and plain containers only and refuses any other Python object, so a file carrying code is
rejected before anything of it runs. Only the model entry is used; the rest is ignored.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

ENTRIES = {"t2m": "t2m_transformer", "res": "res_transformer", "vq": "vq_model"}


def read_state(path, entry: str) -> dict[str, torch.Tensor]:
    """The tensors of `entry` in the checkpoint `path` (``clip_model.*`` keys, if any, removed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: refused: the file holds Python objects other than tensors and plain values, "
                         f"which could run code when loaded ({reason})") from None
    except Exception as e:  # torch raises several types for files that are no torch archive at all
        raise ValueError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict with the entry '{entry}', got {type(data).__name__}")
    if entry not in data:
        raise ValueError(f"{path}: no '{entry}' entry (found {sorted(map(str, data))}); is this the right file?")
    state = data[entry]
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ValueError(f"{path}: entry '{entry}' is not a state dict (a dict of tensors by name)")
    return {k: v for k, v in state.items() if not k.startswith("clip_model.")}


def read_stats(folder, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """mean.npy and std.npy of `folder` (the dataset normalisation the tokenizer was trained with), (dim,) each."""
    folder = Path(folder)
    out = []
    for name in ("mean", "std"):
        path = folder / f"{name}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (the folder with the dataset's mean.npy and std.npy, "
                                    f"e.g. the tokenizer checkpoint's meta/ folder)")
        try:
            value = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ValueError(f"{path}: not a plain numpy array file ({e})") from None
        if value.shape != (dim,) or not np.issubdtype(value.dtype, np.floating) or not np.isfinite(value).all():
            raise ValueError(f"{path}: expected {dim} finite floats, got {value.dtype} {value.shape}")
        out.append(value.astype(np.float32))
    if (out[1] <= 0).any():
        raise ValueError(f"{folder / 'std.npy'}: every standard deviation must be > 0")
    return out[0], out[1]
