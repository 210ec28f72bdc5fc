"""Reading the published `.tar` checkpoints and `mean.npy` / `std.npy` without running code from them.

The checkpoints are `torch.save` archives holding a dict: the model's state dict under one entry
(``t2m_transformer``, ``res_transformer`` or ``vq_model``) plus optimiser and scheduler state, epoch and
iteration counts. They are read by `torch_zip` with numpy alone (no torch needed): its unpickler rebuilds
tensors and plain containers only and refuses any other Python object, so a file carrying code is rejected
before anything of it runs. Only the model entry's tensors are read; the rest of the file is never read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import torch_zip

ENTRIES = {"t2m": "t2m_transformer", "res": "res_transformer", "vq": "vq_model"}


def read_state(path, entry: str) -> dict[str, np.ndarray]:
    """The tensors of `entry` in the checkpoint `path` as arrays by name (``clip_model.*`` keys, if any,
    removed). Raises FileNotFoundError for a missing file, ValueError (one line naming the file) for a file
    that is not such a checkpoint or is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch_zip.read_state(path, entry)


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
