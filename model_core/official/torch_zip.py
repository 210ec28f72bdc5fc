"""Reading PyTorch zip archives with numpy alone, without running code from them (no torch needed).

Two kinds of file are read, both zip archives with one top-level folder ``<prefix>/``:
- ``torch.save`` files (the published BAMM ``latest.tar`` and MoMask ``net_best_fid.tar``): ``data.pkl``, the
  pickled object tree, and ``data/<key>``, one member per tensor storage, raw values in the byte order of
  ``byteorder`` (little endian when the member is missing);
- TorchScript archives (OpenAI's ``ViT-B-32.pt``): the same two parts, where ``data.pkl`` holds module objects
  of classes ``__torch__.*`` whose state is a dict of attributes, plus ``constants.pkl`` and ``code/``, which are
  not read.

``data.pkl`` goes through an unpickler that resolves an allow-list of globals (``ALLOWED``: containers, the
tensor rebuild calls, storage types, ``torch.Size``, ``torch.device``, TorchScript's typed-list markers,
module-state placeholders) and refuses every other global before anything of the file runs; the allowed
callables build plain values. It is the pure-Python unpickler: its memo is a dict, where the C one sizes an
array by the index a file names.

Tensors are lazy: the pickle pass records each one's storage, dtype, offset, shape and stride and checks that
the storage's member declares (``ZipInfo.file_size``) its number of values times their size, within
``max_storage_bytes``. Values are read only when a tensor is materialised (``LazyTensor.numpy()``), so the
optimiser state of a checkpoint is never read. zipfile decompresses no more than a member declares (and then
checks its CRC), so a compressed member that lies cannot fill memory.

Every failure raises `ArchiveError` (a ValueError) with one line naming the file and the reason. Nothing is
written to disk.
"""

from __future__ import annotations

import _compat_pickle
import collections
import contextlib
import io
import math
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

MAX_PICKLE_BYTES = 64 * 2**20  # data.pkl (a 250 MB checkpoint with its optimiser state: a few hundred kB)
MAX_STORAGE_BYTES = 512 * 2**20  # one storage (CLIP ViT-L/14's largest: about 100 MB in float32)
MAX_TOTAL_BYTES = 3 * 2**30  # all storages read from one archive; all arrays made from it
_DAMAGE = (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError)


class ArchiveError(ValueError):
    """A file that is not a readable torch archive, or is refused. ``path`` and ``reason``; str() is one line."""

    def __init__(self, path, reason: str):
        self.path, self.reason = Path(path), " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


# what a ``torch.<Name>Storage`` global resolves to (not callable): its name, the numpy type of its values
_StorageType = collections.namedtuple("_StorageType", "name code")
_STORAGES = {name: _StorageType(name, code) for name, code in [
    ("FloatStorage", "f4"), ("HalfStorage", "f2"), ("DoubleStorage", "f8"), ("BFloat16Storage", "u2"),
    ("LongStorage", "i8"), ("IntStorage", "i4"), ("ShortStorage", "i2"), ("CharStorage", "i1"),
    ("ByteStorage", "u1"), ("BoolStorage", "b1")]}


class _Archive:
    """One archive's path, prefix, byte order and limits; reads storages on demand, each shared one once."""

    def __init__(self, path: Path, prefix: str, big_endian: bool, max_storage_bytes: int, max_total_bytes: int):
        self.path, self.prefix, self.big_endian = path, prefix, big_endian
        self.max_storage_bytes, self.max_total_bytes = max_storage_bytes, max_total_bytes
        self.read_bytes = self.made_bytes = 0  # storage bytes read, bytes of the arrays made
        self.zip: zipfile.ZipFile | None = None
        self.cache: dict[str, bytes] = {}  # storages some tensor not yet materialised still needs
        self.pending: collections.Counter = collections.Counter()

    def fail(self, reason: str) -> ArchiveError:
        return ArchiveError(self.path, reason)

    @contextlib.contextmanager
    def opened(self):
        """Keeps the zip file open for the reads inside the block (opened once for many tensors)."""
        if self.zip is not None:
            yield
            return
        try:
            self.zip = zipfile.ZipFile(self.path)
        except _DAMAGE as e:
            raise self.fail(f"cannot open the archive again to read its tensors ({type(e).__name__}: {e})") from None
        try:
            yield
        finally:
            self.zip.close()
            self.zip = None

    def storage_bytes(self, storage: "_Storage") -> bytes:
        raw = self.cache.get(storage.key)
        if raw is not None:
            return raw
        if self.read_bytes + storage.nbytes > self.max_total_bytes:
            raise self.fail(f"reading storage {storage.key} ({storage.nbytes} bytes) would pass the limit of "
                            f"{self.max_total_bytes} bytes read from one archive")
        with self.opened():
            raw = _read_member(self, self.zip, f"{self.prefix}/data/{storage.key}", storage.nbytes,
                               expect=storage.nbytes)
        self.read_bytes += storage.nbytes
        self.cache[storage.key] = raw
        return raw

    def release(self, key: str) -> None:
        self.pending[key] -= 1
        if self.pending[key] <= 0:
            self.cache.pop(key, None)


def _read_member(archive: _Archive, z: zipfile.ZipFile, name: str, limit: int, expect: int | None = None) -> bytes:
    """The bytes of member `name`, refused when it declares more than `limit` (or not `expect`) bytes."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise archive.fail(f"{name} is missing from the archive") from None
    if expect is not None and info.file_size != expect:
        raise archive.fail(f"{name} declares {info.file_size} bytes, {expect} expected (the file changed?)")
    if info.file_size > limit:
        raise archive.fail(f"{name} declares {info.file_size} bytes, more than the limit of {limit}")
    try:
        with z.open(info) as f:
            data = f.read(info.file_size + 1)
    except _DAMAGE as e:
        raise archive.fail(f"truncated or damaged archive: {name}: {type(e).__name__}: {e}") from None
    if len(data) != info.file_size:
        raise archive.fail(f"{name} holds {'more' if len(data) > info.file_size else 'fewer'} bytes than the "
                           f"{info.file_size} it declares (damaged archive)")
    return data


class _Storage:
    """A storage of the archive: member key, value type and count; its bytes are read on demand."""

    def __init__(self, archive: _Archive, key: str, kind: _StorageType, numel: int):
        self.archive, self.key, self.kind, self.numel = archive, key, kind, numel
        self.file_dtype = np.dtype(kind.code).newbyteorder(">" if archive.big_endian else "<")
        self.nbytes = numel * self.file_dtype.itemsize


class LazyTensor:
    """A tensor of an archive, not read yet: ``shape`` (tuple), ``dtype`` (numpy; bfloat16 is read as float32)
    and ``numpy()``, which reads it."""

    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple):
        self._storage, self._offset, self.shape, self._stride = storage, offset, shape, stride
        self.dtype = np.dtype(np.float32 if storage.kind.name == "BFloat16Storage" else storage.kind.code)
        self._counted = True
        storage.archive.pending[storage.key] += 1

    def __setstate__(self, state):
        raise pickle.UnpicklingError("a tensor takes no state")

    def __repr__(self):
        return f"LazyTensor(shape={self.shape}, dtype={self.dtype}, storage={self._storage.key!r})"

    def numpy(self) -> np.ndarray:
        """The values: a new C-contiguous little-endian array. Refused when the tensor's offset, shape and stride
        reach past its storage, or its array is larger than max_storage_bytes or would take the arrays made from
        the archive past max_total_bytes. A storage is read at most once while tensors of it remain unread."""
        s, archive = self._storage, self._storage.archive
        try:
            nbytes = math.prod(self.shape) * self.dtype.itemsize  # a view may repeat values (stride 0)
            if nbytes > archive.max_storage_bytes or archive.made_bytes + nbytes > archive.max_total_bytes:
                raise archive.fail(f"a tensor of shape {self.shape} takes {nbytes} bytes, over the limits "
                                   f"({archive.max_storage_bytes} each, {archive.max_total_bytes} in all)")
            archive.made_bytes += nbytes
            if nbytes == 0:
                return np.zeros(self.shape, self.dtype)
            last = self._offset + sum((n - 1) * st for n, st in zip(self.shape, self._stride))
            if last >= s.numel:
                raise archive.fail(f"a tensor of shape {self.shape} (offset {self._offset}, stride {self._stride}) "
                                   f"reaches value {last + 1} of storage {s.key}, which holds {s.numel}")
            base = np.frombuffer(archive.storage_bytes(s), dtype=s.file_dtype)
            view = np.lib.stride_tricks.as_strided(base[self._offset:], self.shape,
                                                   [st * base.itemsize for st in self._stride], writeable=False)
            if s.kind.name == "BFloat16Storage":  # bfloat16 is the upper half of a float32
                return (np.ascontiguousarray(view, dtype="<u4") << 16).view("<f4")
            return np.array(view, dtype=self.dtype.newbyteorder("<"), order="C")
        finally:
            if self._counted:
                self._counted = False
                archive.release(s.key)


class ModuleState:
    """A module object of a TorchScript archive: ``attributes`` (parameters, buffers, submodules, flags)."""

    attributes = None

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"a TorchScript module's state is a {type(state).__name__}, not a dict")
        self.attributes = state


def _ints(value, what: str) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) > 64 or \
            not all(type(n) is int and 0 <= n < 2**62 for n in value):
        raise pickle.UnpicklingError(f"a tensor's {what} is not a tuple of non-negative integers: {value!r:.80}")
    return tuple(value)


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _Storage) or type(offset) is not int or offset < 0:
        raise pickle.UnpicklingError("a tensor without a storage and an offset")
    size, stride = _ints(size, "shape"), _ints(stride, "stride")
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"a tensor of shape {size} with stride {stride}")
    return LazyTensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=True, hooks=None, state=None):
    if not isinstance(data, LazyTensor):
        raise pickle.UnpicklingError("a parameter without a tensor")
    return data


def _device(kind, index=None):
    if not isinstance(kind, str) or not (index is None or type(index) is int):
        raise pickle.UnpicklingError("a device that is not a name and an index")
    return kind if index is None else f"{kind}:{index}"


def _encode(text, encoding="utf-8"):  # bytes in protocol 2: _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only for bytes (latin1)")
    return text.encode("latin-1")


def _same(value, *type_tag):  # TorchScript's typed lists and dicts: the value itself
    if not isinstance(value, (list, dict)):
        raise pickle.UnpicklingError(f"a TorchScript list or dict that is a {type(value).__name__}")
    return value


# The globals a file may name, (module, name) -> what it resolves to; ``__torch__.*`` resolves to `ModuleState`.
ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict, ("collections", "Counter"): collections.Counter,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("_codecs", "encode"): _encode,
    ("torch", "Size"): lambda dims=(): _ints(dims, "torch.Size"), ("torch", "device"): _device,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch.jit._pickle", name): _same for name in (
        "build_intlist", "build_doublelist", "build_boollist", "build_tensorlist", "restore_type_tag")},
    **{("torch", name): kind for name, kind in _STORAGES.items()},
}


class _Unpickler(pickle._Unpickler):
    """data.pkl -> its object tree, with lazy tensors; any global outside `ALLOWED` is refused."""

    def __init__(self, data: bytes, archive: _Archive, z: zipfile.ZipFile):
        super().__init__(io.BytesIO(data))
        self.archive, self.zip, self.storages = archive, z, {}

    def find_class(self, module, name):
        if self.proto < 3 and (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names, as pickle does
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif self.proto < 3:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "__torch__" or module.startswith("__torch__."):
            return ModuleState
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        raise self.archive.fail(f"refusing to load the global '{module}.{name}': only tensors and plain values are "
                                f"read (the file was refused before any of it ran)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[2], str)
                and isinstance(pid[1], _StorageType) and type(pid[4]) is int and pid[4] >= 0):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.100}")
        _, kind, key, _location, numel = pid
        if key in self.storages:
            if (self.storages[key].kind, self.storages[key].numel) != (kind, numel):
                raise self.archive.fail(f"storage {key} is declared twice with different types or sizes")
            return self.storages[key]
        storage = _Storage(self.archive, key, kind, numel)
        try:
            declared = self.zip.getinfo(f"{self.archive.prefix}/data/{key}").file_size
        except KeyError:
            if numel:
                raise self.archive.fail(f"storage {key} is missing from the archive") from None
            declared = 0
        if declared != storage.nbytes:
            raise self.archive.fail(f"storage {key} declares {declared} bytes for {numel} values of {kind.name} "
                                    f"({storage.nbytes} expected): truncated or damaged archive")
        if declared > self.archive.max_storage_bytes:
            raise self.archive.fail(f"storage {key} declares {declared} bytes ({numel} values of {kind.name}), over "
                                    f"the limit: at most {self.archive.max_storage_bytes} bytes each")
        self.storages[key] = storage
        return storage


def load(path, *, max_pickle_bytes: int = MAX_PICKLE_BYTES, max_storage_bytes: int = MAX_STORAGE_BYTES,
         max_total_bytes: int = MAX_TOTAL_BYTES):
    """The object tree of the torch archive `path` (dicts, lists, numbers, strings, `ModuleState`s), tensors as
    `LazyTensor`s; nothing of the storages is read yet.

    max_pickle_bytes: data.pkl's size (default 64 MiB); max_storage_bytes: one storage, one tensor's array
    (512 MiB); max_total_bytes: all storages read from this archive, and all arrays made from it (3 GiB each).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ArchiveError(path, f"cannot read the file ({e.strerror or e})") from None
    try:
        z = zipfile.ZipFile(path)
    except _DAMAGE as e:
        if head == b"PK\x03\x04":
            raise ArchiveError(path, f"truncated or damaged zip archive ({e})") from None
        raise ArchiveError(path, "not a zip archive: torch.save writes zip archives since torch 1.6; a file in the "
                                 "older format must be re-saved with a current torch (load it there and save it again)"
                           ) from None
    with z:
        pickles = [n for n in z.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ArchiveError(path, f"not a torch archive: archive without a single top-level data.pkl "
                                     f"(found {len(pickles)})")
        prefix = pickles[0][:-len("/data.pkl")]
        archive = _Archive(path, prefix, False, max_storage_bytes, max_total_bytes)
        order = b"little"
        if f"{prefix}/byteorder" in z.namelist():
            order = _read_member(archive, z, f"{prefix}/byteorder", 16).strip()
        if order not in (b"little", b"big"):
            raise archive.fail(f"unknown byte order {order!r:.20} in {prefix}/byteorder")
        archive.big_endian = order == b"big"
        data = _read_member(archive, z, pickles[0], max_pickle_bytes)
        try:
            return _Unpickler(data, archive, z).load()
        except ArchiveError:
            raise
        except Exception as e:  # anything a damaged pickle or wrong arguments to an allowed call raise
            raise archive.fail(f"cannot read {pickles[0]} ({type(e).__name__}: {e})") from None


def materialise(tensors: dict) -> dict[str, np.ndarray]:
    """{name: LazyTensor} of one archive -> {name: array}; a tensor found under two names gives one array."""
    arrays, done = {}, {}
    archives = {id(t._storage.archive): t._storage.archive for t in tensors.values()}
    with contextlib.ExitStack() as stack:
        for archive in archives.values():
            stack.enter_context(archive.opened())
        for name, tensor in tensors.items():
            if id(tensor) not in done:
                done[id(tensor)] = tensor.numpy()
            arrays[name] = done[id(tensor)]
    return arrays


def read_state(path, entry: str | None = None, **limits) -> dict[str, np.ndarray]:
    """The state dict under `entry` of the torch.save dict in `path` (entry None: the file is the state dict),
    as arrays by name; ``clip_model.*`` tensors are dropped unread. limits: those of `load`."""
    tree = load(path, **limits)
    what = "the file"
    if entry is not None:
        if not isinstance(tree, dict):
            raise ArchiveError(path, f"expected a dict with the entry '{entry}', found {type(tree).__name__}")
        if entry not in tree:
            raise ArchiveError(path, f"no '{entry}' entry (found {sorted(map(str, tree))}); is this the right file?")
        tree, what = tree[entry], f"entry '{entry}'"
    if not isinstance(tree, dict) or not all(isinstance(k, str) and isinstance(v, LazyTensor) for k, v in tree.items()):
        raise ArchiveError(path, f"{what} is not a state dict (a dict of tensors by name)")
    return materialise({k: v for k, v in tree.items() if not k.startswith("clip_model.")})


def module_tensors(root: "ModuleState") -> dict:
    """Every tensor attribute of a TorchScript module tree by dotted path (``visual.proj``,
    ``transformer.resblocks.0.ln_1.weight``), as `LazyTensor`s, in the order found."""
    found, seen = {}, {id(root)}
    stack = [("", iter((root.attributes or {}).items()))]
    while stack:  # depth first without recursion; a module reached twice is read once
        prefix, items = stack[-1]
        for name, value in items:
            if isinstance(value, LazyTensor) and isinstance(name, str):
                found[prefix + name] = value
            elif isinstance(value, ModuleState) and isinstance(name, str) and id(value) not in seen:
                seen.add(id(value))
                stack.append((f"{prefix}{name}.", iter((value.attributes or {}).items())))
                break
        else:
            stack.pop()
    return found


def read_torchscript_tensors(path, **limits) -> dict[str, np.ndarray]:
    """Every tensor attribute of the TorchScript archive `path`'s module tree by dotted path (`module_tensors`),
    as arrays. limits: those of `load`."""
    root = load(path, **limits)
    if not isinstance(root, ModuleState):
        raise ArchiveError(path, f"not a TorchScript archive (data.pkl holds a {type(root).__name__}, not a module)")
    return materialise(module_tensors(root))
