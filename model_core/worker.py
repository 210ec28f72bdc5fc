"""The generation worker: ``python -m model_core.worker`` speaks JSON lines on stdin / stdout.

The Blender add-on starts it with Blender's own Python for the bundled ONNX Runtime back end (numpy,
onnxruntime and tokenizers; no torch), or with a Python that has torch (for example the project's virtual
environment, CUDA torch) for the torch back end. One JSON object per line, UTF-8.

Worker -> client, once at start::

    {"type": "ready", "pid": 123, "torch": "2.13.0" | null, "onnxruntime": "1.32.0" | null,
     "model_core": "0.1.0", "path": "<model_core folder>"}
    {"type": "fatal", "message": "..."}          (then exit code 3: numpy missing)

Client -> worker::

    {"id": 1, "op": "generate", "model": MODEL, "args": {"prompt": "...", "frames": null, "n": 1, "seed": 0,
                                                          "cfg": [4.0, 3.0]}, "out_dir": "/tmp/x"}
    {"id": 2, "op": "edit", "model": MODEL, "args": {"source": "/tmp/x/src.npy", "source_tokens": null,
                                                      "frames": [40, 80], "prompt": null, "seed": 0, "n": 1},
     "out_dir": "/tmp/x"}
    {"id": 3, "op": "extend", "model": MODEL, "args": {"source": "...", "source_tokens": "/tmp/x/src-tok.npy",
                                                        "before_s": 0, "after_s": 2.0, "prompt": null, "seed": 0,
                                                        "n": 1}, "out_dir": "..."}
    {"id": 4, "op": "plan", "model": MODEL, "args": {"plan": {"steps": [{"prompt": "a man walks forward",
                                                    "seconds": 3.0, "together": "a man waves"}, ...]}, "n": 1,
                                                    "seed": 0}, "out_dir": "..."}
    {"op": "cancel", "id": 2}
    {"op": "shutdown"}

A ``generate`` prompt that names several actions ("walks forward, then bows", "walks while waving") is planned
and generated as one motion (`plan.py`, `compose.py`); ``plan`` takes a plan object as ``Plan.to_json`` writes
it. ``args`` of every op may also set ``"refine"`` (``"every_other"``, ``"low_confidence"``, ``"suffix"``,
``"prefix"`` or null), ``"rounds"``, ``"temperature"``, ``"top_k"`` and ``"res_cfg"`` (see `Generator.generate`).
``source``: a ``.npy`` path of joints (T, 22, 3) float32. ``source_tokens`` (optional, null or absent): a
``.npy`` path of that motion's tokens (ceil(T / 4), Q) int64, as returned with an earlier result: when they
fit the joints, the kept part of the motion is taken from them as they are instead of encoding the joints
again (encoding decoded joints does not give the same codes back); tokens of another shape are ignored and
the joints encoded.

``MODEL`` is one of

* ``{"backend": "onnx", "runtime": DIR, "device": "auto" | "cpu" | "gpu" | "cuda" | "directml" | "coreml"}``:
  a runtime folder written by ``bamm export-runtime``, run by ONNX Runtime (no torch needed);
* ``{"backend": "torch", "weights": DIR, "text_encoder": null | "minilm" | "clip:/path", "device": "auto" |
  "cpu" | "cuda" | "mps", "int8": false}`` (``"backend"`` may be left out; int8: int8 token transformers when
  the device is the CPU);
* ``{"random": {"preset": "tiny", "text_encoder": "minilm", "seed": 0}}`` (untrained torch models, for tests).

The loaded model is kept for the next request with the same ``MODEL``.

Worker -> client, per request::

    {"id": 1, "type": "progress", "stage": "tokens", "fraction": 0.4}
    {"id": 1, "type": "result", "joints": ["/tmp/x/1-0.npy", ...], "tokens": ["/tmp/x/1-0-tokens.npy", ...],
     "prompts": ["...", ...]}
    {"id": 1, "type": "error", "error": "ValueError", "message": "..."}
    {"id": 1, "type": "cancelled"}

Arrays travel as ``.npy`` files: the client writes a source (and its tokens) into a folder it owns and passes
the paths; the worker writes each result's joints ``(T, 22, 3)`` float32 as ``<id>-<k>.npy`` and its tokens
``(ceil(T / 4), Q)`` int64 as ``<id>-<k>-tokens.npy`` into ``out_dir``; the client reads and deletes them.
Requests run one at a time in order; a cancel takes effect at the next progress step. Anything printed by
libraries goes to stderr, which the client keeps as a log. torch and ONNX Runtime use half the CPU cores
(unless ``OMP_NUM_THREADS`` is set) so Blender stays responsive while the worker generates.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from pathlib import Path

OPS = ("generate", "edit", "extend", "plan")


class Cancelled(Exception):
    """Raised from the progress callback to stop a request."""


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
        from .generate import Generator
        from .runtime.ort_nets import load_runtime

        runtime = Path(str(spec.get("runtime") or ""))
        if not (runtime / "runtime.json").is_file():
            raise FileNotFoundError(f"no BAMM runtime in '{runtime}' (runtime.json not found)")
        device = {None: "auto", "": "auto", "mps": "coreml"}.get(spec.get("device"), spec.get("device"))
        return Generator(load_runtime(runtime, device=device, threads=half_the_cores()))
    if backend != "torch":
        raise ValueError(f"model spec backend must be 'onnx' or 'torch', got {backend!r}")
    if "random" in spec:
        import_torch()
        from .generate import BAMM

        options = dict(spec["random"])
        return BAMM.random(device=resolve_device(options.pop("device", "cpu")), **options)
    weights = Path(str(spec.get("weights") or ""))
    if not (weights / "bamm.json").is_file():
        raise FileNotFoundError(f"no BAMM weights in '{weights}' (bamm.json not found)")
    import_torch()
    from .generate import BAMM

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


def _array(value, dtype):
    import numpy as np

    return np.load(value) if isinstance(value, (str, Path)) else np.asarray(value, dtype=dtype)


def _source(args: dict):
    """joints (T, 22, 3), or a Motion carrying the client's tokens when ``source_tokens`` is given."""
    import numpy as np

    from .generate import Motion

    joints = _array(args["source"], np.float32)
    if args.get("source_tokens") is None:
        return joints
    tokens = _array(args["source_tokens"], np.int64)
    return Motion(joints=joints, features=np.zeros((0, 0), np.float32), tokens=tokens)


SETTINGS = ("refine", "rounds", "temperature", "top_k", "res_cfg")


def run(model, op: str, args: dict, progress=None) -> list:
    """One request on a loaded model -> list of ``Motion``. ``args`` as in the module docstring; a
    ``source`` (``source_tokens``) may be a .npy path or an array. ``n`` variations use seeds ``seed,
    seed + 1, ...`` for edits."""
    args = dict(args)
    n, seed = int(args.pop("n", 1)), int(args.pop("seed", 0))
    options = {"cfg": tuple(args.pop("cfg", (4.0, 3.0)))}
    options.update({k: args[k] for k in SETTINGS if k in args})
    if op in ("generate", "plan"):  # several actions in one prompt, or a plan: see compose.py
        from .compose import generate_plan, request_plan

        plan = request_plan(op, args, model.fps)
        if plan is not None:
            return [generate_plan(model, plan, seed=seed + k, progress=None if progress is None else
                                  (lambda s, f, k=k: progress(s, (k + f) / n)), **options)[0] for k in range(n)]
    if op == "generate":
        return model.generate(args["prompt"], frames=args.get("frames"), n=n, seed=seed, progress=progress,
                              **options)
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}: expected one of {OPS}")
    source = _source(args)
    motions = []
    for k in range(n):
        step = None if progress is None else (lambda s, f, k=k: progress(s, (k + f) / n))
        if op == "edit":
            motions.append(model.edit(source, tuple(int(v) for v in args["frames"]), args.get("prompt"),
                                      seed=seed + k, progress=step, **options))
        else:
            motions.append(model.extend(source, before_s=float(args.get("before_s", 0.0)),
                                        after_s=float(args.get("after_s", 0.0)), prompt=args.get("prompt"),
                                        seed=seed + k, progress=step, **options))
    return motions


class Worker:
    """Reads requests on one thread, runs them on another, writes replies under a lock."""

    def __init__(self, out):
        self.out, self.lock = out, threading.Lock()
        self.requests: queue.Queue = queue.Queue()
        self.cancelled: set = set()
        self.models = ModelCache()

    def send(self, **message) -> None:
        with self.lock:
            self.out.write(json.dumps(message) + "\n")
            self.out.flush()

    def serve(self, stdin) -> None:
        runner = threading.Thread(target=self._run_loop, daemon=True)
        runner.start()
        for line in stdin:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError as e:
                self.send(type="error", id=None, error="JSONDecodeError", message=f"bad request line: {e}")
                continue
            if message.get("op") == "cancel":
                self.cancelled.add(message.get("id"))
            elif message.get("op") == "shutdown":
                break
            else:
                self.requests.put(message)
        self.requests.put(None)
        runner.join()

    def _run_loop(self) -> None:
        import numpy as np

        while (message := self.requests.get()) is not None:
            rid = message.get("id")

            def progress(stage, fraction, rid=rid):
                if rid in self.cancelled:
                    raise Cancelled()
                self.send(id=rid, type="progress", stage=stage, fraction=float(fraction))

            try:
                if rid in self.cancelled:
                    raise Cancelled()
                model = self.models.get(message.get("model"))
                motions = run(model, message.get("op"), message.get("args") or {}, progress)
                out_dir = Path(message.get("out_dir") or ".")
                paths, token_paths = [], []
                for k, motion in enumerate(motions):
                    path, token_path = out_dir / f"{rid}-{k}.npy", out_dir / f"{rid}-{k}-tokens.npy"
                    np.save(path, np.asarray(motion.joints, dtype=np.float32))
                    np.save(token_path, np.asarray(motion.tokens, dtype=np.int64))
                    paths.append(str(path))
                    token_paths.append(str(token_path))
                self.send(id=rid, type="result", joints=paths, tokens=token_paths,
                          prompts=[m.prompt for m in motions])
            except Cancelled:
                self.send(id=rid, type="cancelled")
            except Exception as e:  # reported to the client, the worker keeps serving
                self.send(id=rid, type="error", error=type(e).__name__, message=str(e))
            finally:
                self.cancelled.discard(rid)


def main(argv: list[str] | None = None) -> int:
    # Keep stdout for the protocol: anything else printed (libraries, C code) goes to stderr.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    try:
        import numpy  # noqa: F401
    except ImportError as e:
        message = (f"the worker Python '{sys.executable}' cannot import {e.name or 'numpy'}: install the BAMM "
                   f"requirements (numpy, and onnxruntime + tokenizers or torch) for it, or pick another "
                   f"interpreter")
        protocol.write(json.dumps({"type": "fatal", "message": message}) + "\n")
        protocol.flush()
        return 3
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    versions = {}
    for name in ("torch", "onnxruntime"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    worker = Worker(protocol)
    worker.send(type="ready", pid=os.getpid(), **versions, model_core=__version__,
                path=str(Path(__file__).resolve().parent))
    worker.serve(sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
