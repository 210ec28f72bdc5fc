"""CLIP archives that do not hold what they declare: refused with a message before anything large is read
(a zip member's declared size bounds what is read of it)."""

from __future__ import annotations

import collections
import io
import pickle
import tracemalloc
import zipfile

import pytest

from model_core.request import InputError

torch = pytest.importorskip("torch")


def _pickle_with_storage(numel: int) -> bytes:
    """A TorchScript-style data.pkl whose one tensor's storage 'data/0' holds ``numel`` float32 values."""
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


def test_clip_zip_bomb_is_refused_before_reading(tmp_path):
    from model_core.models.clip_text import read_clip_state_dict

    numel = 600 * 2**20 // 4  # 600 MiB of zeros: about 600 kB compressed
    archive = tmp_path / "bomb.pt"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb/data.pkl", _pickle_with_storage(numel))
        z.writestr("bomb/constants.pkl", b"")
        with z.open("bomb/data/0", "w", force_zip64=True) as member:
            chunk = bytes(2**20)
            for _ in range(600):
                member.write(chunk)
    assert archive.stat().st_size < 5 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"storage 0 declares 629145600 bytes .*at most 268435456 bytes each"):
            read_clip_state_dict(archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


@pytest.mark.parametrize("members, message", [
    ({"x/data.pkl": b"\x80\x02garbage", "x/constants.pkl": b""}, "cannot read the tensors"),
    ({"x/constants.pkl": b"", "x/code/a.py": b""}, "without a single top-level data.pkl"),
])
def test_malformed_torchscript_archive(tmp_path, members, message):
    from model_core.models.clip_text import read_clip_state_dict

    archive = tmp_path / "bad.pt"
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(InputError, match=message):
        read_clip_state_dict(archive)


def test_storage_size_must_match_its_member(tmp_path):
    from model_core.models.clip_text import read_clip_state_dict

    archive = tmp_path / "lies.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x/data.pkl", _pickle_with_storage(1000))
        z.writestr("x/constants.pkl", b"")
        z.writestr("x/data/0", bytes(16))
    with pytest.raises(InputError, match="storage 0 declares 16 bytes for 1000 values"):
        read_clip_state_dict(archive)
