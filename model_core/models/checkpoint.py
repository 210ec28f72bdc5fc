"""Model checkpoints as `<name>.safetensors` (weights and buffers) + `<name>.json` (the config dataclass).

Loading validates everything against the config's freshly built module and never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..contract.limits import InputError  # a ValueError: a weights file that does not fit is the user's to fix

FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 1_000_000  # a config is a few hundred bytes
MAX_HEADER_BYTES = 100_000_000  # a safetensors header (JSON) of any real model is far smaller
_TORCH_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def save_tensors(path, tensors: dict) -> Path:
    """Write a dict of tensors / numpy arrays to a safetensors file (e.g. dataset mean and std)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: _plain_tensor(value) for key, value in tensors.items()}, str(path))
    return path


def _plain_tensor(value) -> torch.Tensor:
    """A contiguous CPU copy (safetensors refuses tensors that share storage)."""
    tensor = value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))
    return tensor.detach().cpu().contiguous().clone()


def load_tensors(path, *, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file into a dict of tensors. Missing file: FileNotFoundError; bad file: ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tensor file not found: {path}")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from e


def save_model(module: torch.nn.Module, config, directory, name: str) -> Path:
    """Write `<directory>/<name>.safetensors` (state dict) and `<name>.json` (config). Returns the .json path."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
    directory = Path(directory)
    save_tensors(directory / f"{name}.safetensors", module.state_dict())
    meta = {"format_version": FORMAT_VERSION, "config_class": type(config).__name__,
            "config": dataclasses.asdict(config)}
    json_path = directory / f"{name}.json"
    json_path.write_text(json.dumps(meta, indent=2) + "\n")
    return json_path


def read_json_object(path, *, what: str = "file") -> dict:
    """A JSON file that must hold an object: clear errors for a missing, corrupt or wrong-shaped file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes is too large for a config file")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object")
    return meta


def load_config(config_cls, path):
    """Read and validate a config written by `save_model`."""
    meta = read_json_object(path, what="model config")
    if not isinstance(meta.get("config"), dict):
        raise InputError(f"{path}: expected an object with a 'config' object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: format_version {meta.get('format_version')!r} is not {FORMAT_VERSION}")
    if meta.get("config_class") != config_cls.__name__:
        raise InputError(f"{path}: config_class {meta.get('config_class')!r} is not {config_cls.__name__!r}")
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    values = meta["config"]
    optional = set(getattr(config_cls, "OPTIONAL_KEYS", ()))  # added later; older files may lack them
    unknown, missing = sorted(set(values) - fields), sorted(fields - set(values) - optional)
    if unknown or missing:
        raise InputError(f"{path}: config keys do not match {config_cls.__name__}: "
                         f"unknown {unknown}, missing {missing}")
    for f in dataclasses.fields(config_cls):
        if f.name in values and not _has_type(values[f.name], str(f.type)):
            raise InputError(f"{path}: config {f.name!r} must be {f.type}, got {values[f.name]!r}")
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: {e}") from None


def _has_type(value, annotation: str) -> bool:
    """Whether a JSON value fits a config field's annotation (int, float, bool, str, optional, tuple)."""
    if "None" in annotation and value is None:
        return True
    kind = annotation.split("|")[0].split("[")[0].strip()
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**31
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e30
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind in ("tuple", "list"):
        return isinstance(value, list)
    return True


def read_header(path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{name: (dtype, shape)} of a safetensors file from its header alone (no tensor is read)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tensor file not found: {path}")
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 0 < n <= min(MAX_HEADER_BYTES, size - 8):
                raise InputError(f"header length {n} does not fit the file of {size} bytes")
            header = json.loads(fh.read(n))
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            shape = tuple(int(d) for d in info["shape"])
            start, end = (int(v) for v in info["data_offsets"])
            want = DTYPE_BYTES.get(info["dtype"], 0) * int(np.prod(shape, dtype=np.int64))
            if not 0 <= start <= end <= size - 8 - n or end - start != want:
                raise InputError(f"tensor {name!r} {info['dtype']} {list(shape)} does not fit its bytes")
            out[name] = (_TORCH_NAMES.get(info["dtype"], info["dtype"]), shape)
        return out
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError, struct.error) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from None




def check_shapes(cls, config, weights_path, *, widen: tuple[str, ...] = ()) -> None:
    """Compare the module a config builds (on torch's meta device: nothing allocated) with the file's tensors,
    so a config that asks for a huge model, or weights of another model, fail before any allocation."""
    with torch.device("meta"):
        expected = cls(config).state_dict()
    stored = read_header(weights_path)
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise InputError(f"{weights_path}: tensors do not match {cls.__name__} (weights of another "
                         f"version or model?): missing {_some(missing)}, unexpected {_some(unexpected)}")
    for key, want in expected.items():
        dtype, shape = stored[key]
        if key in widen and len(shape) == 2 and want.dim() == 2 and shape[0] == want.shape[0] \
                and shape[1] < want.shape[1]:
            continue
        if shape != tuple(want.shape) or dtype != str(want.dtype).removeprefix("torch."):
            raise InputError(f"{weights_path}: parameter {key!r} has shape {shape} torch.{dtype}, the model expects "
                             f"{tuple(want.shape)} {want.dtype} (as its config file sets it)")


def _some(names: list[str], shown: int = 6) -> str:
    """A list of names for an error message: all of a short list, else the first few and how many more."""
    return str(names) if len(names) <= shown else f"{names[:shown]} and {len(names) - shown} more"


def load_weights_into(module: torch.nn.Module, weights_path, *, widen: tuple[str, ...] = ()) -> torch.nn.Module:
    """Load `weights_path` into `module` after checking every tensor's name, shape and dtype against it.

    widen: names of tensors that may be stored smaller than the module's (a layer that grew: a condition layer
    whose text input has more dimensions, a wider decoder convolution). The stored values fill the first rows
    and columns; the module's rows that were stored read nothing from the new columns (zero weights), and its
    new rows keep their initial values (halved on the new columns), so the module computes on its stored
    channels what the stored one did and the new channels can learn. Dimensions past the second (a
    convolution's kernel) must match.
    """
    tensors = load_tensors(weights_path)
    expected = module.state_dict()
    for key in widen:
        got, want = tensors.get(key), expected.get(key)
        if (got is None or want is None or got.dim() != want.dim() or got.dtype != want.dtype
                or got.shape == want.shape or got.shape[2:] != want.shape[2:]
                or any(g > w for g, w in zip(got.shape, want.shape))):
            continue  # nothing to grow, or a mismatch reported below
        grown = want.clone()
        if grown.dim() > 1:
            grown[:, got.shape[1]:] *= 0.5
            grown[:got.shape[0], got.shape[1]:] = 0.0
        grown[tuple(slice(0, n) for n in got.shape)] = got
        tensors[key] = grown
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise InputError(f"{weights_path}: tensors do not match {type(module).__name__} (weights of another "
                         f"version or model?): missing {_some(missing)}, unexpected {_some(unexpected)}")
    for key, want in expected.items():
        got = tensors[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise InputError(f"{weights_path}: parameter {key!r} has shape {tuple(got.shape)} {got.dtype}, "
                             f"the model expects {tuple(want.shape)} {want.dtype}")
    module.load_state_dict(tensors, strict=True)
    return module


def load_model(cls, config_cls, directory, name: str, *, device: str = "cpu") -> torch.nn.Module:
    """Build `cls(config)` from `<directory>/<name>.json` and load `<name>.safetensors` into it (eval mode).

    Missing files raise FileNotFoundError; a config or tensor that does not match raises ValueError naming it.
    """
    directory = Path(directory)
    config = load_config(config_cls, directory / f"{name}.json")
    check_shapes(cls, config, directory / f"{name}.safetensors")
    module = cls(config)
    load_weights_into(module, directory / f"{name}.safetensors")
    return module.to(device).eval()
