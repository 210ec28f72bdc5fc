"""Where generation runs, without ever blocking Blender.

* ``RUNTIME`` (default): the bundled ONNX Runtime, in ``python -m model_core.serving.worker`` started with Blender's
  own interpreter (``sys.executable``) and ``PYTHONPATH`` = the extension folder + the folders Blender
  installed the extension's wheels into (onnxruntime, tokenizers); nothing to set up, numpy only in Blender.
* ``WORKER``: the same worker started with a Python the user picks (one with torch, e.g. CUDA torch for a
  GPU or paper-size weights).
* ``IN_PROCESS``: a background thread in Blender's own Python (needs torch there).

The worker's environment is set for the child only, never in Blender's ``sys.path``; JSON lines over pipes
(protocol: ``model_core/serving/worker.py``). A worker that dies is reported on the running job and started again on
the next request. Every back end returns a ``Job`` that the main thread polls; results are only read from it,
so nothing touches Blender data off the main thread.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core import EXTENSION_ROOT, MODEL_PACKAGE, model_module
from .errors import BammBackendError, BammCancelled, BammInputError

__all__ = ["EXTENSION_ROOT", "Generated", "Request", "Job", "InProcessBackend", "WorkerBackend", "get_backend"]

WHEEL_PACKAGES = ("onnxruntime", "tokenizers")  # bundled with the extension, imported by the runtime worker
SILENT_S = 60.0  # a worker that says nothing (no progress, no heartbeat) this long while busy is stopped


@dataclass
class Request:
    """One model call: ``op`` "generate" | "edit" | "extend", a MODEL spec, and the op's arguments (see
    ``model_core/serving/worker.py``; ``args["source"]`` is a joints array (T, 22, 3) here, and the optional
    ``args["source_tokens"]`` its tokens (ceil(T / 4), Q) int64 from an earlier result)."""

    op: str
    model: dict
    args: dict


@dataclass
class Generated:
    """One motion a job returned: ``joints`` (T, 22, 3) float32 metres, Y-up, 20 fps; ``prompt``; ``tokens``
    (ceil(T / 4), Q) int64, or None when the back end returned none."""

    joints: np.ndarray
    prompt: str | None
    tokens: np.ndarray | None = None


@dataclass
class Job:
    """A request in flight. ``state``: running, done, error, cancelled. ``result``: list of ``Generated``.
    ``error_kind``: "input" (the request was wrong: raised as BammInputError) or "failure"."""

    request: Request
    state: str = "running"
    stage: str = "starting"
    fraction: float = 0.0
    result: list = field(default_factory=list)
    error: str = ""
    error_kind: str = "failure"
    cancel_event: threading.Event = field(default_factory=threading.Event)
    on_cancel: object = None
    done_event: threading.Event = field(default_factory=threading.Event)

    def progress(self, stage: str, fraction: float) -> None:
        self.stage, self.fraction = stage, float(fraction)

    def finish(self, state: str, *, result=None, error: str = "", kind: str = "failure") -> None:
        if self.done_event.is_set():
            return
        self.state, self.result, self.error = state, result or [], error
        self.error_kind = "input" if kind == "input" else "failure"
        self.done_event.set()

    def cancel(self) -> None:
        """Stop waiting for the job; the backend stops it at its next progress step."""
        self.cancel_event.set()
        if callable(self.on_cancel):
            self.on_cancel()
        self.finish("cancelled")

    def poll(self) -> str:
        return self.state

    def wait(self, timeout: float | None = None) -> list:
        """Block until the job ends (tests, command line): the result, or the job's error raised."""
        if not self.done_event.wait(timeout):
            raise BammBackendError(f"generation did not finish within {timeout} s")
        if self.state == "cancelled":
            raise BammCancelled("Generation cancelled")
        if self.state == "error":
            raise (BammInputError if self.error_kind == "input" else BammBackendError)(self.error)
        return self.result


def torch_in_blender() -> bool:
    return importlib.util.find_spec("torch") is not None


def _tokens(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.int64)


class InProcessBackend:
    """Runs requests on a thread in this Python. ``model``: a loaded BAMM to use for every request (tests)."""

    def __init__(self, *, model=None):
        self.model = model
        self.cache = None
        self.lock = threading.Lock()  # one request at a time

    def submit(self, request: Request) -> Job:
        job = Job(request)
        threading.Thread(target=self._run, args=(job,), daemon=True, name="bamm-generate").start()
        return job

    def _run(self, job: Job) -> None:
        worker = model_module(".serving.worker")

        def progress(stage, fraction):
            if job.cancel_event.is_set():
                raise worker.Cancelled()
            job.progress(stage, fraction)

        try:
            with self.lock:
                if self.model is not None:
                    model = self.model
                else:
                    self.cache = self.cache or worker.ModelCache()
                    model = self.cache.get(job.request.model)
                motions = worker.run(model, job.request.op, job.request.args, progress)
            job.finish("done", result=[Generated(np.asarray(m.joints, np.float32), m.prompt,
                                                 _tokens(getattr(m, "tokens", None))) for m in motions])
        except worker.Cancelled:
            job.finish("cancelled")
        except Exception as e:  # shown to the user as a report
            kind = model_module(".serving.protocol").error_kind(e)
            job.finish("error", error=str(e) if kind == "input" else f"{type(e).__name__}: {e}", kind=kind)

    def shutdown(self) -> None:
        self.cache = None


def wheel_paths() -> list[str]:
    """Folders this Python imports the bundled wheels' packages from (``WHEEL_PACKAGES``), for the runtime
    worker's ``PYTHONPATH``. Blender installs an extension's wheels into a shared
    ``extensions/.local/lib/pythonX.Y/site-packages`` that it adds to its own ``sys.path`` only."""
    folders: list[str] = []
    for name in WHEEL_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        for location in locations[:1]:
            folder = str(Path(location).resolve().parent)
            if folder not in folders:
                folders.append(folder)
    return folders


class WorkerBackend:
    """Runs requests in ``python -m model_core.serving.worker`` started with ``python``; ``paths``: folders put on the
    worker's ``PYTHONPATH`` after the extension folder (the bundled wheels' folders)."""

    def __init__(self, python: str, *, exchange_dir: str | None = None, paths=(), silent_s: float = SILENT_S):
        self.python = python
        self.silent_s = float(silent_s)  # see SILENT_S
        self.heard = 0.0  # time.monotonic() of the worker's last line (or of a submit to an idle worker)
        self.stopped = ""  # why the client stopped the worker (a silent worker), for the jobs' error
        self.paths = [str(p) for p in paths]
        self.exchange = Path(exchange_dir or tempfile.mkdtemp(prefix="bamm-worker-"))
        self.process: subprocess.Popen | None = None
        self.jobs: dict[int, Job] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.fatal = ""
        self.ready: dict = {}  # the worker's "ready" line: pid, versions, model_core path

    # --- process ------------------------------------------------------------------------------------------
    def _start(self) -> None:
        if not self.python or not Path(self.python).is_file():
            raise BammBackendError(
                f"Worker Python '{self.python}' not found: set the interpreter (one with torch) in the BAMM "
                "add-on preferences, or choose the Bundled Runtime back end"
            )
        self.exchange.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(EXTENSION_ROOT), *self.paths]
                                            + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONHOME", None)  # the child finds its own standard library from its executable
        self.log_path = self.exchange / "worker.log"
        self.fatal = ""
        self.ready = {}
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                [self.python, "-m", f"{MODEL_PACKAGE.rpartition('.')[2]}.serving.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=str(self.exchange),
                text=True, encoding="utf-8", bufsize=1,
            )
        except OSError as e:
            raise BammBackendError(f"Could not start the worker Python '{self.python}': {e}") from e
        finally:
            log.close()
        self.stopped, self.heard = "", time.monotonic()
        threading.Thread(target=self._read, args=(self.process,), daemon=True, name="bamm-worker-reader").start()
        threading.Thread(target=self._watch, args=(self.process,), daemon=True, name="bamm-worker-watch").start()

    def _watch(self, process: subprocess.Popen) -> None:
        """Stop a worker that has said nothing for ``silent_s`` while a job waits on it: its jobs then end
        with an error saying so (instead of running forever), and the next request starts a new worker."""
        while process.poll() is None:
            time.sleep(min(1.0, self.silent_s / 4))
            silent = time.monotonic() - self.heard
            if self.jobs and silent > self.silent_s and process.poll() is None and self.process is process:
                self.stopped = (f"The BAMM worker process said nothing for {silent:.0f} s (hung or frozen): it was "
                                "stopped and will be restarted on the next request.")
                process.kill()
                return

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.heard = time.monotonic()
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if kind == "ready":
                self.ready = message
                continue
            if kind == "fatal":
                self.fatal = message.get("message", "")
                continue
            rid = message.get("id")
            job = self.jobs.get(rid)
            if job is None:
                continue
            if kind == "progress":
                job.progress(message.get("stage", ""), message.get("fraction", 0.0))
                continue
            self.jobs.pop(rid, None)
            for suffix in ("source", "source-tokens"):
                (self.exchange / f"{rid}-{suffix}.npy").unlink(missing_ok=True)
            if kind == "result":
                try:
                    job.finish("done", result=self._load(message))
                except (OSError, ValueError) as e:
                    job.finish("error", error=f"could not read the worker's result: {e}")
            elif kind == "error" and message.get("kind") == "input":
                job.finish("error", error=str(message.get("message")), kind="input")
            elif kind == "error":
                job.finish("error", error=f"{message.get('error')}: {message.get('message')}")
            elif kind == "cancelled":
                job.finish("cancelled")
        code = process.wait()
        reason = self.fatal or self.stopped or self._crash_message(code)
        for job in list(self.jobs.values()):
            job.finish("error", error=reason)
        self.jobs.clear()

    def _crash_message(self, code: int) -> str:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        tail = ""
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
            tail = f" Last log line: {lines[-1][:200]}" if lines else ""
        except OSError:
            pass
        return f"The BAMM worker process {how}; it will be restarted on the next request.{tail}"

    def _load(self, message: dict) -> list:
        """The result's motions; the worker's ``tokens`` paths are optional (one per motion, or null)."""
        joints = message.get("joints", [])
        prompts = message.get("prompts", [None] * len(joints))
        tokens = message.get("tokens") or [None] * len(joints)
        out = []
        for path, prompt, token_path in zip(joints, prompts, tokens):
            codes = None
            if token_path:
                codes = np.load(token_path).astype(np.int64)
                Path(token_path).unlink(missing_ok=True)
            out.append(Generated(np.load(path).astype(np.float32), prompt, codes))
            Path(path).unlink(missing_ok=True)
        return out

    # --- requests -----------------------------------------------------------------------------------------
    def submit(self, request: Request) -> Job:
        with self.lock:
            if not self.alive():
                self._start()
            rid = next(self.ids)
            args = dict(request.args)
            for key, suffix, dtype in (("source", "source", np.float32), ("source_tokens", "source-tokens", np.int64)):
                if args.get(key) is not None:
                    path = self.exchange / f"{rid}-{suffix}.npy"
                    np.save(path, np.asarray(args[key], dtype=dtype))
                    args[key] = str(path)
            job = Job(request)
            job.on_cancel = lambda: self._send({"op": "cancel", "id": rid})
            if not self.jobs:  # the silence counts from now, not from the last job
                self.heard = time.monotonic()
            self.jobs[rid] = job
            self._send({"id": rid, "op": request.op, "model": request.model, "args": args,
                        "out_dir": str(self.exchange)})
        return job

    def _send(self, message: dict) -> None:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError, AttributeError):
            pass  # the reader thread reports the dead worker

    def shutdown(self) -> None:
        if self.alive():
            self._send({"op": "shutdown"})
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        shutil.rmtree(self.exchange, ignore_errors=True)


_BACKENDS: dict[tuple, object] = {}
KINDS = ("RUNTIME", "IN_PROCESS", "WORKER")


def get_backend(kind: str = "RUNTIME", *, python: str = "", exchange_dir: str | None = None, paths=None):
    """The shared backend of a kind (see the module docstring). ``python``: the WORKER's interpreter;
    ``paths``: the RUNTIME worker's wheel folders (None: ``wheel_paths()``). Backends live until
    ``shutdown_all`` (add-on unregister)."""
    if kind not in KINDS:
        raise BammBackendError(f"backend must be one of {KINDS}, got {kind!r}")
    if kind == "IN_PROCESS":
        if not torch_in_blender():
            raise BammBackendError(
                "torch is not installed in Blender's Python: choose the Bundled Runtime back end, or your own "
                "Python with torch, in the BAMM add-on preferences"
            )
        key = ("IN_PROCESS",)
        if key not in _BACKENDS:
            _BACKENDS[key] = InProcessBackend()
        return _BACKENDS[key]
    if kind == "RUNTIME":
        python, extra = sys.executable, wheel_paths() if paths is None else list(paths)
    else:
        extra = []
        if not python:
            raise BammBackendError(
                "No worker Python is set: pick a Python with torch (e.g. a virtual environment's python) in "
                "the BAMM add-on preferences, or choose the Bundled Runtime back end"
            )
    key = (kind, python, tuple(extra))
    if key not in _BACKENDS:  # each worker its own exchange folder: result file names count from 1 in each
        folder = None if exchange_dir is None else str(Path(exchange_dir) / f"{kind.lower()}-{len(_BACKENDS)}")
        _BACKENDS[key] = WorkerBackend(python, exchange_dir=folder, paths=extra)
    return _BACKENDS[key]


def shutdown_all() -> None:
    for backend in _BACKENDS.values():
        backend.shutdown()
    _BACKENDS.clear()
