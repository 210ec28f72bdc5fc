"""A MODEL spec (the worker's model description, see ``worker.py``) -> a loaded model, and its limits read
without loading it. torch and ONNX Runtime get half the CPU cores unless ``OMP_NUM_THREADS`` is set."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..contract.limits import Limits


def half_the_cores() -> int | None:
    """Threads for a model (None: the library's default, when OMP_NUM_THREADS is set)."""
    return None if "OMP_NUM_THREADS" in os.environ else max(1, (os.cpu_count() or 2) // 2)


def import_torch():
    try:
        import torch
    except ImportError:
        raise ImportError(f"the worker Python '{sys.executable}' cannot import torch, which this model spec "
                          "needs: use the bundled runtime (backend 'onnx') or a Python with torch") from None
    threads = half_the_cores()
    if threads is not None:
        torch.set_num_threads(threads)
    return torch


def resolve_device(name: str | None) -> str:
    if name not in (None, "", "auto", "cpu", "cuda", "mps"):
        raise ValueError(f"device must be auto, cpu, cuda or mps, got {name!r}")
    if name not in (None, "", "auto"):
        return name
    torch = import_torch()
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def load_model(spec: dict):
    """A `Generator` (ONNX Runtime) or a `BAMM` (torch) from a MODEL spec (see the module docstring)."""
    if not isinstance(spec, dict):
        raise ValueError(f"model spec must be an object, got {spec!r}")
    backend = spec.get("backend", "torch")
    if backend == "onnx":
        from ..decoding.generate import Generator
        from ..runtime.ort_nets import load_runtime

        runtime = Path(str(spec.get("runtime") or ""))
        if not (runtime / "runtime.json").is_file():
            raise FileNotFoundError(f"no BAMM runtime in '{runtime}' (runtime.json not found)")
        device = {None: "auto", "": "auto", "mps": "coreml"}.get(spec.get("device"), spec.get("device"))
        return Generator(load_runtime(runtime, device=device, threads=half_the_cores()))
    if backend != "torch":
        raise ValueError(f"model spec backend must be 'onnx' or 'torch', got {backend!r}")
    if "random" in spec:
        import_torch()
        from ..decoding.generate import BAMM

        options = dict(spec["random"])
        return BAMM.random(device=resolve_device(options.pop("device", "cpu")), **options)
    weights = Path(str(spec.get("weights") or ""))
    if not (weights / "bamm.json").is_file():
        raise FileNotFoundError(f"no BAMM weights in '{weights}' (bamm.json not found)")
    import_torch()
    from ..decoding.generate import BAMM

    device = resolve_device(spec.get("device"))
    return BAMM.from_pretrained(weights, text_encoder=spec.get("text_encoder"), device=device,
                                int8=bool(spec.get("int8")) and device == "cpu")


class ModelCache:
    """Keeps the last loaded model, keyed by its spec."""

    def __init__(self):
        self.key, self.model = None, None

    def get(self, spec: dict):
        key = json.dumps(spec, sort_keys=True)
        if key != self.key:
            self.key, self.model = None, None  # free the old model before loading the next
            self.model, self.key = load_model(spec), key
        return self.model


def spec_limits(spec: dict) -> Limits | None:
    """The limits of a MODEL spec's runtime or weights folder, read without loading it (None: random)."""
    folder = spec.get("runtime") if spec.get("backend") == "onnx" else spec.get("weights")
    if "random" in spec and spec.get("backend", "torch") == "torch":
        return None
    return Limits.from_folder(str(folder or ""))
