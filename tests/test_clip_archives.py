"""CLIP archives that do not hold what they declare: refused with a message before anything large is read
(a zip member's declared size bounds what is read of it)."""

from __future__ import annotations

import tracemalloc
import zipfile

import pytest

from model_core.contract.limits import InputError

pytest.importorskip("torch")

from support.clip_archives import pickle_with_storage, write_zip_bomb  # noqa: E402


def test_clip_zip_bomb_is_refused_before_reading(tmp_path):
    from model_core.models.clip_text import read_clip_state_dict

    archive = write_zip_bomb(tmp_path / "bomb.pt", mib=600)  # 600 MiB of zeros: about 600 kB compressed
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
        z.writestr("x/data.pkl", pickle_with_storage(1000))
        z.writestr("x/constants.pkl", b"")
        z.writestr("x/data/0", bytes(16))
    with pytest.raises(InputError, match="storage 0 declares 16 bytes for 1000 values"):
        read_clip_state_dict(archive)
