"""The generation worker: ``python -m model_core.serving.worker`` speaks JSON lines on stdin / stdout.

The Blender add-on starts it with Blender's own Python for the bundled ONNX Runtime back end (numpy,
onnxruntime and tokenizers; no torch), or with a Python that has torch (for example the project's virtual
environment, CUDA torch) for the torch back end. One JSON object per line, UTF-8.

Worker -> client, once at start::

    {"type": "ready", "pid": 123, "torch": "2.13.0" | null, "onnxruntime": "1.32.0" | null,
     "model_core": "0.1.0", "path": "<model_core folder>", "ops": [...], "heartbeat_s": 2.0,
     "limits": {"fps": 20.0, "frames_per_token": 4, "max_frames": 196, ...} | null}
    {"type": "fatal", "message": "..."}          (then exit code 3: numpy missing)

Client -> worker::

    {"id": 1, "op": "generate", "model": MODEL, "args": {"prompt": "...", "frames": null, "n": 1, "seed": 0,
                                                          "cfg": [2.0, 1.0]}, "out_dir": "/tmp/x"}
    {"id": 2, "op": "edit", "model": MODEL, "args": {"source": "/tmp/x/src.npy", "source_tokens": null,
                                                      "frames": [40, 80], "prompt": null, "seed": 0, "n": 1},
     "out_dir": "/tmp/x"}
    {"id": 3, "op": "extend", "model": MODEL, "args": {"source": "...", "source_tokens": "/tmp/x/src-tok.npy",
                                                        "before_s": 0, "after_s": 2.0, "prompt": null, "seed": 0,
                                                        "n": 1}, "out_dir": "..."}
    {"id": 4, "op": "plan", "model": MODEL, "args": {"plan": {"steps": [{"prompt": "a man walks", "seconds": 3.0,
                                                     "together": "a man waves"}, ...]}, "n": 1}, "out_dir": "..."}
    {"id": 5, "op": "limits", "model": MODEL}      (answered {"id": 5, "type": "limits", "limits": {...}})
    {"op": "cancel", "id": 2}
    {"op": "shutdown"}

Every line is checked (``protocol.py``): a JSON object, a known op, an ``id`` that is an integer >= 0 or a short
string of letters, digits, '_', '-', '.' (it names the result files), ``model`` and ``args`` objects,
``out_dir`` an existing folder. ``args`` are read into the request contract (``request.Request.from_args``)
and checked against the model's limits (``limits.Limits``: the runtime's ``runtime.json`` or the weights'
``bamm.json``) before the model is loaded. A bad line or request is answered with an error and the worker
keeps serving. A ``generate`` prompt naming several actions and a ``plan`` (a plan object, ``plan.check_plan``)
give one motion each (``decoding/compose.py``). Ready's ``limits``: the runtime's or weights' next to
this package, or null.

``args`` of every op may also set ``"refine"`` (``"every_other"``, ``"low_confidence"``, ``"suffix"``,
``"prefix"`` or null), ``"rounds"``, ``"temperature"``, ``"top_k"`` and ``"res_cfg"`` (see `Generator.generate`).
``source``: a ``.npy`` path of joints (T, 22, 3) float32. ``source_tokens`` (optional, null or absent): a
``.npy`` path of that motion's tokens (ceil(T / 4), Q) int64, as returned with an earlier result: when they
fit the joints, the kept part of the motion is taken from them as they are instead of encoding the joints
again (encoding decoded joints does not give the same codes back); tokens of another shape are ignored and
the joints encoded. ``source_prompt`` (optional): the prompt the source motion was made from. An edit or extend
whose ``prompt`` is that prompt (or null) regenerates with the source leading (inpainting); a new prompt leads
the range itself (``decoding/editing.py``).

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
    {"id": 1, "type": "error", "kind": "input" | "failure", "error": "InputError", "message": "..."}
    {"id": 1, "type": "cancelled"}
    {"type": "heartbeat"}                       (every ``heartbeat_s`` while a request runs)

``kind`` "input": the request or a file it names is wrong (the user's to fix); "failure": anything else.

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
import time
from pathlib import Path

from ..contract.limits import InputError, Limits, check_prompt
from ..contract.request import OPS, Request
from .model_spec import ModelCache, spec_limits
from .protocol import ProtocolError, error_kind, parse_line

HEARTBEAT_S = 2.0  # a line at least this often while a request runs: the client notices a silent worker


class Cancelled(Exception):
    """Raised from the progress callback to stop a request."""


def _array(value, dtype, what: str, shape_ok, limit: int):
    """A .npy path (read only after its header is checked) or an array -> ndarray of ``dtype``."""
    import numpy as np

    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file() or path.suffix != ".npy":
            raise InputError(f"{what} '{path}' is not a .npy file")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise InputError(f"{what} '{path}' is not a readable .npy array ({str(e)[:80]})") from None
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as e:
            raise InputError(f"{what} is not an array ({str(e)[:80]})") from None
    if not shape_ok(array.shape) or array.dtype.kind not in "fiu" or not 1 <= len(array) <= limit:
        raise InputError(f"{what} has shape {array.shape} {array.dtype}: not a motion of at most {limit} frames")
    return np.array(array, dtype=dtype)


def _source(args: dict, limits: Limits):
    """joints (T, 22, 3), or a Motion carrying the client's tokens and / or prompt when ``source_tokens`` /
    ``source_prompt`` is given."""
    import numpy as np

    from ..decoding.results import Motion

    if args.get("source") is None:
        raise InputError("edit and extend need a source motion (args.source)")
    joints = _array(args["source"], np.float32, "source", lambda s: len(s) == 3 and s[1:] == (22, 3),
                    limits.max_source_frames)
    if not np.isfinite(joints).all():
        raise InputError("the source joints hold NaN or infinite values")
    prompt = args.get("source_prompt")
    prompt = None if prompt is None else check_prompt(prompt, limits, required=False)
    if args.get("source_tokens") is None and prompt is None:
        return joints
    tokens = None if args.get("source_tokens") is None else \
        _array(args["source_tokens"], np.int64, "source_tokens", lambda s: len(s) == 2, limits.max_source_frames)
    return Motion(joints=joints, features=np.zeros((0, 0), np.float32), tokens=tokens, prompt=prompt)


def run(model, op: str, args: dict, progress=None) -> list:
    """One request on a loaded model -> list of ``Motion``. ``args`` as in the module docstring (read and
    checked by the request contract); a ``source`` (``source_tokens``) may be a .npy path or an array.
    ``n`` variations use seeds ``seed, seed + 1, ...`` for edits."""
    req, source = _read_request(op, args, model.limits)
    return run_request(model, req, source, progress)


def _read_request(op: str, args: dict, limits: Limits) -> tuple[Request, object]:
    """The `Request` of ``op`` / ``args`` (not checked yet) and its source motion read against ``limits``
    (None for generate and plan)."""
    return Request.from_args(op, args), None if op in ("generate", "plan") else _source(args, limits)


def _source_frames(source) -> int | None:
    return None if source is None else len(getattr(source, "joints", source))


def run_request(model, req: Request, source=None, progress=None) -> list:
    """A `Request` (checked here against the model's limits) on a loaded model -> list of ``Motion``."""
    req = req.check(model.limits, source_frames=_source_frames(source))
    options = req.settings()
    from ..decoding.compose import run_plan  # several actions in one prompt, or a plan
    if req.op in ("generate", "plan") and (motions := run_plan(model, req, progress)) is not None:
        return motions
    if req.op == "generate":
        return model.generate(req.prompt, frames=req.frames, n=req.n, seed=req.seed, progress=progress, **options)
    motions = []
    for k in range(req.n):
        step = None if progress is None else (lambda s, f, k=k: progress(s, (k + f) / req.n))
        if req.op == "edit":
            motions.append(model.edit(source, req.range, req.prompt, seed=req.seed + k, progress=step, **options))
        else:
            motions.append(model.extend(source, before_s=req.before_s, after_s=req.after_s, prompt=req.prompt,
                                        seed=req.seed + k, progress=step, **options))
    return motions


class Worker:
    """Reads requests on one thread, runs them on another, writes replies under a lock."""

    def __init__(self, out):
        self.out, self.lock = out, threading.Lock()
        self.requests: queue.Queue = queue.Queue()
        self.cancelled: set = set()
        self.models = ModelCache()
        self.busy = threading.Event()
        self.closed = False

    def send(self, **message) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                self.out.write(json.dumps(message) + "\n")
                self.out.flush()
            except (OSError, ValueError):  # the client is gone: nothing more to say
                self.closed = True

    def error(self, rid, e: BaseException) -> None:
        self.send(id=rid, type="error", kind=error_kind(e), error=type(e).__name__,
                  message=" ".join(str(e).split())[:2000] or type(e).__name__)

    def serve(self, stdin) -> None:
        runner = threading.Thread(target=self._run_loop, daemon=True)
        runner.start()
        threading.Thread(target=self._heartbeat, daemon=True).start()
        for line in stdin:
            if not line.strip():
                continue
            try:
                message = parse_line(line)
            except ProtocolError as e:
                self.error(e.rid, e)
                continue
            if message["op"] == "cancel":
                self.cancelled.add(message["id"])
            elif message["op"] == "shutdown":
                break
            else:
                self.requests.put(message)
        self.requests.put(None)
        runner.join()

    def _heartbeat(self) -> None:
        while not self.closed:
            time.sleep(HEARTBEAT_S)
            if self.busy.is_set():
                self.send(type="heartbeat")

    def _run_loop(self) -> None:
        while (message := self.requests.get()) is not None:
            rid = message["id"]
            self.busy.set()
            try:
                if rid in self.cancelled:
                    raise Cancelled()
                self._handle(message)
            except Cancelled:
                self.send(id=rid, type="cancelled")
            except Exception as e:  # reported to the client, the worker keeps serving
                self.error(rid, e)
            finally:
                self.busy.clear()
                self.cancelled.discard(rid)

    def _handle(self, message: dict) -> None:
        from . import outputs

        rid, op, spec = message["id"], message["op"], message["model"]

        def progress(stage, fraction):
            if rid in self.cancelled:
                raise Cancelled()
            self.send(id=rid, type="progress", stage=stage, fraction=float(fraction))

        limits = spec_limits(spec)
        if op == "limits":
            limits = limits or self.models.get(spec).limits
            self.send(id=rid, type="limits", limits=limits.to_json())
            return
        out_dir = Path(message["out_dir"])
        if not out_dir.is_dir():
            raise InputError(f"out_dir '{out_dir}' is not an existing folder")
        req, source = _read_request(op, message.get("args") or {}, limits or Limits())
        if limits is not None:  # checked before the model is loaded
            req = req.check(limits, source_frames=_source_frames(source))
        model = self.models.get(spec)
        motions = run_request(model, req, source, progress)
        paths, token_paths = [], []
        for k, motion in enumerate(motions):
            path, token_path = out_dir / f"{rid}-{k}.npy", out_dir / f"{rid}-{k}-tokens.npy"
            outputs.save_npy(path, motion.joints.astype("float32"))
            outputs.save_npy(token_path, motion.tokens.astype("int64"))
            paths.append(str(path))
            token_paths.append(str(token_path))
        self.send(id=rid, type="result", joints=paths, tokens=token_paths, prompts=[m.prompt for m in motions])


def shipped_limits() -> dict | None:
    """The limits of the runtime or weights next to this package (the extension's own), or None."""
    root = Path(__file__).resolve().parents[2]
    for folder in (root / "runtime", root / "weights"):
        try:
            return Limits.from_folder(folder).to_json()
        except InputError:
            continue
    return None


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

    from .. import __version__

    versions = {}
    for name in ("torch", "onnxruntime"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    worker = Worker(protocol)
    worker.send(type="ready", pid=os.getpid(), **versions, model_core=__version__,
                path=str(Path(__file__).resolve().parents[1]), ops=list(OPS), heartbeat_s=HEARTBEAT_S,
                limits=shipped_limits())
    worker.serve(sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
