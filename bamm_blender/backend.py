"""Where generation runs, without ever blocking Blender.

* ``InProcessBackend``: a background thread in Blender's own Python (needs torch there).
* ``WorkerBackend``: ``python -m model_core.worker`` started with a configured interpreter (for example the
  project's virtual environment), ``PYTHONPATH`` = the extension folder (set in the child's environment, never
  in ``sys.path``), JSON lines over pipes (protocol: ``model_core/worker.py``). A worker that dies is
  reported on the running job and started again on the next request.

Both return a ``Job`` that the main thread polls; results are only read from it, so nothing touches Blender
data off the main thread.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core import MODEL_PACKAGE, model_module
from .errors import BammBackendError, BammCancelled

EXTENSION_ROOT = Path(__file__).resolve().parents[1]  # holds model_core/ (the worker's PYTHONPATH)


@dataclass
class Request:
    """One model call: ``op`` "generate" | "edit" | "extend", a MODEL spec, and the op's arguments (see
    ``model_core/worker.py``; ``args["source"]`` is a joints array here)."""

    op: str
    model: dict
    args: dict


@dataclass
class Job:
    """A request in flight. ``state``: running, done, error, cancelled. ``result``: list of (joints, prompt)."""

    request: Request
    state: str = "running"
    stage: str = "starting"
    fraction: float = 0.0
    result: list = field(default_factory=list)
    error: str = ""
    cancel_event: threading.Event = field(default_factory=threading.Event)
    on_cancel: object = None
    done_event: threading.Event = field(default_factory=threading.Event)

    def progress(self, stage: str, fraction: float) -> None:
        self.stage, self.fraction = stage, float(fraction)

    def finish(self, state: str, *, result=None, error: str = "") -> None:
        if self.done_event.is_set():
            return
        self.state, self.result, self.error = state, result or [], error
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
            raise BammBackendError(self.error)
        return self.result


def torch_in_blender() -> bool:
    return importlib.util.find_spec("torch") is not None


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
        worker = model_module(".worker")

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
            job.finish("done", result=[(np.asarray(m.joints, np.float32), m.prompt) for m in motions])
        except worker.Cancelled:
            job.finish("cancelled")
        except Exception as e:  # shown to the user as a report
            job.finish("error", error=f"{type(e).__name__}: {e}")

    def shutdown(self) -> None:
        self.cache = None


class WorkerBackend:
    """Runs requests in ``python -m model_core.worker`` started with ``python``."""

    def __init__(self, python: str, *, exchange_dir: str | None = None):
        self.python = python
        self.exchange = Path(exchange_dir or tempfile.mkdtemp(prefix="bamm-worker-"))
        self.process: subprocess.Popen | None = None
        self.jobs: dict[int, Job] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.fatal = ""
        self.ready: dict = {}  # the worker's "ready" line: pid, torch and model_core versions, model_core path

    # --- process ------------------------------------------------------------------------------------------
    def _start(self) -> None:
        if not self.python or not Path(self.python).is_file():
            raise BammBackendError(
                f"Worker Python '{self.python}' not found: set the interpreter (one with torch) in the BAMM "
                "add-on preferences"
            )
        self.exchange.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(EXTENSION_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path = self.exchange / "worker.log"
        self.fatal = ""
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                [self.python, "-m", f"{MODEL_PACKAGE.rpartition('.')[2]}.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=str(self.exchange),
                text=True, encoding="utf-8", bufsize=1,
            )
        except OSError as e:
            raise BammBackendError(f"Could not start the worker Python '{self.python}': {e}") from e
        finally:
            log.close()
        threading.Thread(target=self._read, args=(self.process,), daemon=True, name="bamm-worker-reader").start()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
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
            (self.exchange / f"{rid}-source.npy").unlink(missing_ok=True)
            if kind == "result":
                job.finish("done", result=self._load(message))
            elif kind == "error":
                job.finish("error", error=f"{message.get('error')}: {message.get('message')}")
            elif kind == "cancelled":
                job.finish("cancelled")
        code = process.wait()
        reason = self.fatal or self._crash_message(code)
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
        out = []
        for path, prompt in zip(message.get("joints", []), message.get("prompts", [])):
            out.append((np.load(path).astype(np.float32), prompt))
            Path(path).unlink(missing_ok=True)
        return out

    # --- requests -----------------------------------------------------------------------------------------
    def submit(self, request: Request) -> Job:
        with self.lock:
            if not self.alive():
                self._start()
            rid = next(self.ids)
            args = dict(request.args)
            if "source" in args:
                path = self.exchange / f"{rid}-source.npy"
                np.save(path, np.asarray(args["source"], dtype=np.float32))
                args["source"] = str(path)
            job = Job(request)
            job.on_cancel = lambda: self._send({"op": "cancel", "id": rid})
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
KINDS = ("AUTO", "IN_PROCESS", "WORKER")


def get_backend(kind: str = "AUTO", *, python: str = "", exchange_dir: str | None = None):
    """The shared backend for the preferences: AUTO = in-process when torch imports in Blender's Python,
    else the worker. Backends live until ``shutdown_all`` (add-on unregister)."""
    if kind not in KINDS:
        raise BammBackendError(f"backend must be one of {KINDS}, got {kind!r}")
    if kind == "AUTO":
        kind = "IN_PROCESS" if torch_in_blender() else "WORKER"
    if kind == "IN_PROCESS":
        if not torch_in_blender():
            raise BammBackendError(
                "torch is not installed in Blender's Python: choose the worker backend and its Python "
                "interpreter in the BAMM add-on preferences"
            )
        key = ("IN_PROCESS",)
        if key not in _BACKENDS:
            _BACKENDS[key] = InProcessBackend()
        return _BACKENDS[key]
    if not python:
        raise BammBackendError(
            "torch is not available in Blender's Python and no worker Python is set: set one (a Python with "
            "torch, e.g. the project's .venv/bin/python) in the BAMM add-on preferences"
        )
    key = ("WORKER", python)
    if key not in _BACKENDS:
        _BACKENDS[key] = WorkerBackend(python, exchange_dir=exchange_dir)
    return _BACKENDS[key]


def shutdown_all() -> None:
    for backend in _BACKENDS.values():
        backend.shutdown()
    _BACKENDS.clear()
