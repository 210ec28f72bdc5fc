"""TorchScript-style CLIP archives that do not hold what they declare (for tests and bench/bad_inputs.py)."""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path


def pickle_with_storage(numel: int) -> bytes:
    """A TorchScript-style data.pkl whose one tensor's storage 'data/0' holds ``numel`` float32 values."""
    import torch

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, (numel,), (1,), False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"weight": Tensor()})
    return buffer.getvalue()


def write_zip_bomb(path, mib: int = 600) -> Path:
    """An archive at ``path`` whose one storage declares and holds ``mib`` MiB of zeros, deflated (about 1 kB
    on disk per MiB)."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/data.pkl", pickle_with_storage(mib * 2**20 // 4))
        z.writestr("bomb/constants.pkl", b"")
        with z.open("bomb/data/0", "w", force_zip64=True) as member:
            chunk = bytes(2**20)
            for _ in range(mib):
                member.write(chunk)
    return path
