"""`model_core.official.torch_zip`: torch archives read with numpy alone equal `torch.load(weights_only=True)`
and `torch.jit.load`; files carrying code, damaged or lying archives are refused with one line naming the
file, before anything runs or anything large is read."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model_core.official import torch_zip  # noqa: E402
from model_core.official.torch_zip import ArchiveError, LazyTensor, ModuleState  # noqa: E402
from support.clip_archives import write_zip_bomb  # noqa: E402
from support.official_ckpt import write_official  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = {"t2m": "t2m_transformer", "res": "res_transformer", "vq": "vq_model"}


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    return write_official(tmp_path_factory.mktemp("official"))


def _same(ours, theirs, where="root"):
    """`ours` (torch_zip.load's tree, tensors materialised) equals `theirs` (torch.load's), types included."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, LazyTensor), where
        value = ours.numpy()
        want = theirs.detach().float() if theirs.dtype == torch.bfloat16 else theirs.detach()
        assert value.dtype == want.numpy().dtype and value.shape == tuple(want.shape), where
        assert value.flags.c_contiguous and value.flags.writeable and np.array_equal(value, want.numpy()), where
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), where
        for key in theirs:
            _same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def _one_line(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert isinstance(error.value, ValueError) and "\n" not in message and message.startswith(f"{path}: ")
    return message


def _member_data_offset(path, name: str) -> int:
    """Where member `name`'s bytes start in the file (after its local header)."""
    with zipfile.ZipFile(path) as z:
        start = z.getinfo(name).header_offset
    with open(path, "rb") as f:
        f.seek(start)
        header = f.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return start + 30 + name_len + extra_len


def _patch(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _zip(path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


# ------------------------------------------------------------------------------------------- equal to torch

@pytest.mark.parametrize("name", ["t2m", "res", "vq"])
def test_official_checkpoints_equal_torch_load(official, name):
    tree = torch_zip.load(official[name])
    _same(tree, torch.load(official[name], map_location="cpu", weights_only=True))
    assert isinstance(tree["scheduler"]["milestones"], collections.Counter)
    state = torch_zip.read_state(official[name], ENTRIES[name])
    want = torch.load(official[name], weights_only=True)[ENTRIES[name]]
    assert list(state) == list(want)
    assert all(np.array_equal(state[k], want[k].numpy()) and state[k].dtype == np.float32 for k in want)


def test_optimiser_state_is_never_read(official, tmp_path):
    """read_state reads the model entry only: the optimiser's storages may be damaged."""
    path = tmp_path / "vq.tar"
    path.write_bytes(official["vq"].read_bytes())
    tree = torch_zip.load(path)
    exp_avg = tree["opt_vq_model"]["state"][0]["exp_avg"]
    member = f"{exp_avg._storage.archive.prefix}/data/{exp_avg._storage.key}"
    _patch(path, _member_data_offset(path, member), b"\xff" * 8)  # CRC no longer matches
    state = torch_zip.read_state(path, "vq_model")
    assert len(state) == len(torch.load(official["vq"], weights_only=True)["vq_model"])
    with pytest.raises(ArchiveError, match="damaged archive.*Bad CRC") as error:
        torch_zip.load(path)["opt_vq_model"]["state"][0]["exp_avg"].numpy()
    _one_line(error, path)


def _tensors():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {"transposed": base.t(), "strided": base[::2, 1::3], "offset": base[1:, 2:], "shared": base,
            "expanded": torch.arange(3.0)[:, None].expand(3, 4), "scalar": torch.tensor(2.5),
            "empty": torch.zeros(0, 3), "half": torch.randn(3, 2).half(), "long": torch.arange(-3, 5),
            "bool": torch.tensor([True, False, True]), "bfloat16": torch.randn(5).bfloat16(),
            "double": torch.randn(2, dtype=torch.float64), "int": torch.arange(4, dtype=torch.int32),
            "short": torch.arange(4, dtype=torch.int16), "char": torch.arange(-2, 2, dtype=torch.int8),
            "byte": torch.arange(4, dtype=torch.uint8), "param": torch.nn.Parameter(torch.randn(2, 2))}


def test_views_dtypes_and_parameters_equal_torch_load(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(_tensors(), path)
    tree = torch_zip.load(path)
    assert tree["shared"]._storage.archive.read_bytes == 0  # lazy: nothing read yet
    assert tree["bfloat16"].dtype == np.float32 and tree["half"].dtype == np.float16 and tree["param"].shape == (2, 2)
    _same(tree, torch.load(path, weights_only=True))
    state = torch_zip.read_state(path)
    assert state["shared"].base is None and not np.shares_memory(state["shared"], state["offset"])


def test_shared_storage_is_read_once(tmp_path):
    path = tmp_path / "shared.pt"
    base = torch.arange(1000.0)
    torch.save({"a": base[:10], "b": base[500:], "c": base.view(10, 100)}, path)
    tree = torch_zip.load(path)
    arrays = torch_zip.materialise(tree)
    assert tree["a"]._storage.archive.read_bytes == 4000 and not tree["a"]._storage.archive.cache
    assert np.array_equal(arrays["b"], np.arange(500.0, 1000.0, dtype=np.float32))


@pytest.mark.parametrize("kind", ["script", "trace-half"])
def test_torchscript_tensors_equal_the_state_dict(tmp_path, kind):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3, 4)
            self.blocks = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.LayerNorm(2))
            self.register_buffer("steps", torch.arange(5))

        def forward(self, x):
            return self.blocks(self.proj(x)) + self.steps.sum()

    net = Net()
    module = torch.jit.script(net) if kind == "script" else torch.jit.trace(net, torch.zeros(2, 3)).half()
    path = tmp_path / "net.pt"
    torch.jit.save(module, str(path))
    ours = torch_zip.read_torchscript_tensors(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = torch.jit.load(str(path), map_location="cpu").state_dict()
    assert list(ours) == list(want)
    assert all(ours[k].dtype == want[k].numpy().dtype and np.array_equal(ours[k], want[k].numpy()) for k in want)
    assert isinstance(torch_zip.load(path), ModuleState)


def test_big_endian_archive_is_byte_swapped(tmp_path):
    little = tmp_path / "little.pt"
    torch.save({k: v for k, v in _tensors().items() if k != "param"}, little)
    tree = torch_zip.load(little)
    kinds = {t._storage.key: t._storage.file_dtype for t in tree.values()}
    big = tmp_path / "big.pt"
    with zipfile.ZipFile(little) as src, zipfile.ZipFile(big, "w") as dst:
        for info in src.infolist():
            data, key = src.read(info), info.filename.rsplit("/", 1)[-1]
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = np.frombuffer(data, kinds[key]).astype(kinds[key].newbyteorder(">")).tobytes()
            dst.writestr(info, data)
    _same(torch_zip.load(big), torch.load(big, weights_only=True))
    _same(torch_zip.load(big), torch.load(little, weights_only=True))


def test_read_time_of_a_small_file(tmp_path):
    path = tmp_path / "three.pt"
    torch.save({"a": torch.randn(384, 384), "b": torch.randn(1024), "c": torch.randn(512, 512)}, path)
    start = time.perf_counter()
    state = torch_zip.read_state(path)
    seconds = time.perf_counter() - start
    print(f"read_state of 3 tensors ({path.stat().st_size / 1e6:.1f} MB): {seconds * 1e3:.2f} ms")
    assert list(state) == ["a", "b", "c"] and seconds < 2


def test_module_never_imports_torch(official):
    code = ("import sys; from model_core.official import torch_zip; "
            f"s = torch_zip.read_state({str(official['vq'])!r}, 'vq_model'); "
            "assert len(s) > 10 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# --------------------------------------------------------------------------------------- code is refused

class MakesMarker:
    """Pickled by reference (tests.test_torch_zip.MakesMarker): creates the file it is given."""

    def __init__(self, path):
        Path(path).write_text("ran")

    def __reduce__(self):
        return MakesMarker, (self.path,)


def _payload(kind: str, marker: Path):
    class Payload:
        def __reduce__(self):
            return {"os.system": (os.system, (f"touch {marker}",)),
                    "eval": (builtins.eval, (f"open({str(marker)!r}, 'w')",)),
                    "exec": (builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
                    "subprocess": (subprocess.Popen, (["touch", str(marker)],)),
                    "open": (open, (str(marker), "w"))}[kind]

    if kind == "reduce":
        payload = MakesMarker.__new__(MakesMarker)
        payload.path = str(marker)
        return payload
    return Payload()


GLOBAL_NAMES = {"os.system": r"(posix|os|nt)\.system", "eval": r"builtins\.eval", "exec": r"builtins\.exec",
                "subprocess": r"subprocess\.Popen", "open": r"(io|builtins)\.open", "reduce": r".*MakesMarker"}


@pytest.mark.parametrize("where", ["data.pkl", "nested in a state dict", "scheduler entry"])
@pytest.mark.parametrize("kind", list(GLOBAL_NAMES))
def test_code_is_refused_before_it_runs(tmp_path, kind, where):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.tar"
    if where == "data.pkl":
        _zip(path, {"evil/data.pkl": pickle.dumps({"vq_model": _payload(kind, marker)}, protocol=2),
                    "evil/byteorder": b"little"})
    elif where == "nested in a state dict":
        torch.save({"vq_model": {"w": torch.ones(2), "b": {"deep": [_payload(kind, marker)]}}}, path)
    else:
        torch.save({"vq_model": {"w": torch.ones(2)}, "scheduler": _payload(kind, marker), "ep": 3}, path)
    before = sorted(tmp_path.iterdir())
    for read in (torch_zip.load, lambda p: torch_zip.read_state(p, "vq_model")):
        with pytest.raises(ArchiveError, match=rf"refusing to load the global '{GLOBAL_NAMES[kind]}'") as error:
            read(path)
        _one_line(error, path)
    assert not marker.exists() and sorted(tmp_path.iterdir()) == before


def _torchscript_pickle(state: dict) -> bytes:
    """A TorchScript-style data.pkl: a ``__torch__.Net`` module object whose state is `state`."""
    body = pickle.dumps(state, protocol=2)[2:-1]  # without PROTO and STOP; the prefix below memoises nothing
    return b"\x80\x02c__torch__\nNet\n)\x81" + body + b"b."


def test_torchscript_module_state_with_a_forbidden_global_is_refused(tmp_path):
    good = _zip(tmp_path / "good.pt", {"m/data.pkl": _torchscript_pickle({"training": True, "width": 3}),
                                       "m/constants.pkl": b""})
    root = torch_zip.load(good)
    assert isinstance(root, ModuleState) and root.attributes == {"training": True, "width": 3}
    assert torch_zip.read_torchscript_tensors(good) == {}
    marker = tmp_path / "marker"
    evil = _zip(tmp_path / "evil.pt", {"m/data.pkl": _torchscript_pickle({"w": _payload("os.system", marker)}),
                                       "m/constants.pkl": b""})
    with pytest.raises(ArchiveError, match=r"refusing to load the global '(posix|os)\.system'") as error:
        torch_zip.read_torchscript_tensors(evil)
    _one_line(error, evil)
    assert not marker.exists()


# ------------------------------------------------------------------------------------ damaged and lying

def _tensor_archive(path, *, numel: int, offset=0, size=(4,), stride=(1,), member_bytes=None, storage="FloatStorage",
                    compress=False) -> Path:
    """An archive whose one tensor (offset, size, stride) views storage '0' of `numel` values."""
    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), offset, size, stride, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            kind = getattr(torch, storage)
            return ("storage", kind, "0", "cpu", numel) if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"w": Tensor()})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        z.writestr("x/data.pkl", buffer.getvalue())
        z.writestr("x/data/0", bytes(4 * numel if member_bytes is None else member_bytes))
    return path


@pytest.mark.parametrize("offset, size, stride, reaches", [
    (0, (5,), (1,), 5), (2, (3,), (1,), 5), (0, (2, 2), (3, 1), 5), (3, (2,), (2,), 6), (0, (2, 3), (1, 2), 6)])
def test_storage_shorter_than_its_view_is_refused(tmp_path, offset, size, stride, reaches):
    path = _tensor_archive(tmp_path / "short.pt", numel=4, offset=offset, size=size, stride=stride)
    tensor = torch_zip.load(path)["w"]  # lazy: found when the tensor is read
    assert tensor.shape == size
    with pytest.raises(ArchiveError, match=rf"reaches value {reaches} of storage 0, which holds 4") as error:
        tensor.numpy()
    _one_line(error, path)
    with pytest.raises(ArchiveError, match="reaches value"):
        torch_zip.read_state(path)


@pytest.mark.parametrize("case, match", [
    ("member size", r"storage 0 declares 12 bytes for 4 values of FloatStorage \(16 expected\)"),
    ("complex storage", r"refusing to load the global 'torch\.ComplexFloatStorage'"),
    ("not a state dict", r"the file is not a state dict"),
    ("missing entry", r"no 'vq_model' entry \(found \['b', 'w'\]\); is this the right file\?"),
    ("not a zip", r"not a zip archive: .*must be re-saved with a current torch"),
    ("legacy torch file", r"not a zip archive: .*must be re-saved with a current torch"),
    ("no data.pkl", r"not a torch archive: archive without a single top-level data\.pkl"),
    ("byteorder", r"unknown byte order b'middle'"),
    ("pickle limit", r"data\.pkl declares \d+ bytes, more than the limit of 10"),
    ("total limit", r"a tensor of shape \(4,\) takes 16 bytes, over the limits \(\d+ each, 20 in all\)"),
    ("read limit", r"reading storage 0 \(400 bytes\) would pass the limit of 100 bytes read from one archive"),
    ("garbage pickle", r"cannot read x/data\.pkl \(ValueError"),
    ("missing file", r"cannot read the file \(No such file or directory\)"),
    ("repeating view", r"a tensor of shape \(1073741824, 4\) takes 17179869184 bytes, over the limits"),
])
def test_bad_files_are_refused_with_one_line(tmp_path, case, match):
    path = tmp_path / "bad.pt"
    read = torch_zip.read_state
    if case == "member size":
        _tensor_archive(path, numel=4, member_bytes=12)
    elif case == "complex storage":
        torch.save({"w": torch.zeros(2, dtype=torch.complex64)}, path)
    elif case == "not a state dict":
        torch.save({"w": torch.zeros(2), "n": 3}, path)
    elif case == "missing entry":
        torch.save({"w": {}, "b": 1}, path)
        read = lambda p: torch_zip.read_state(p, "vq_model")  # noqa: E731
    elif case == "not a zip":
        path.write_text("not a checkpoint")
    elif case == "legacy torch file":
        torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
    elif case == "no data.pkl":
        _zip(path, {"x/other.pkl": b""})
    elif case == "byteorder":
        _zip(path, {"x/data.pkl": pickle.dumps({}, protocol=2), "x/byteorder": b"middle"})
    elif case == "pickle limit":
        torch.save({"w": torch.zeros(2)}, path)
        read = lambda p: torch_zip.read_state(p, max_pickle_bytes=10)  # noqa: E731
    elif case == "total limit":
        torch.save({"a": torch.zeros(4), "b": torch.zeros(4)}, path)
        read = lambda p: torch_zip.read_state(p, max_total_bytes=20)  # noqa: E731
    elif case == "repeating view":  # one value seen 2**32 times: refused before any array is made
        _tensor_archive(path, numel=1, size=(2**30, 4), stride=(0, 0))
    elif case == "read limit":  # one value of a 100-value storage
        _tensor_archive(path, numel=100, size=(1,))
        read = lambda p: torch_zip.read_state(p, max_total_bytes=100)  # noqa: E731
    elif case == "garbage pickle":
        _zip(path, {"x/data.pkl": b"\x80\x02garbage"})
    with pytest.raises(ArchiveError, match=match) as error:
        read(path)
    _one_line(error, path)


@pytest.mark.parametrize("cut", [0.02, 0.3, 0.7, 0.99, -22, -1])
def test_truncated_archives_are_refused(official, tmp_path, cut):
    data = official["t2m"].read_bytes()
    path = tmp_path / "cut.tar"
    path.write_bytes(data[:int(len(data) * cut) if cut > 0 else len(data) + cut])
    with pytest.raises(ArchiveError, match="truncated or damaged zip archive") as error:
        torch_zip.read_state(path, "t2m_transformer")
    _one_line(error, path)


def test_zip_bomb_is_refused_in_bounded_memory(tmp_path):
    bomb = write_zip_bomb(tmp_path / "bomb.pt", mib=600)  # a 600 MiB storage, about 600 kB on disk
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match=r"storage 0 declares 629145600 bytes .*at most 536870912 bytes each"):
            torch_zip.read_torchscript_tensors(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"zip bomb (600 MiB storage): peak {peak / 2**20:.2f} MiB traced")
    assert peak < 8 * 2**20


def test_member_holding_more_than_it_declares_is_refused_in_bounded_memory(tmp_path):
    """A deflated 64 MiB member whose zip entry declares 16 bytes: no more than that is decompressed (its CRC
    then fails)."""
    path = _tensor_archive(tmp_path / "lies.pt", numel=4, member_bytes=64 * 2**20, compress=True)
    with open(path, "rb") as f:
        data = f.read()
    entry = data.rindex(b"PK\x01\x02")  # central directory entry of the last member, x/data/0
    assert data[entry + 46:entry + 46 + 8] == b"x/data/0"
    _patch(path, entry + 24, struct.pack("<I", 16))  # its uncompressed size
    tensor = torch_zip.load(path)["w"]
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match=r"x/data/0.*damaged archive|damaged archive.*x/data/0") as error:
            tensor.numpy()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_line(error, path)
    print(f"lying 64 MiB member: peak {peak / 2**20:.2f} MiB traced")
    assert peak < 8 * 2**20
