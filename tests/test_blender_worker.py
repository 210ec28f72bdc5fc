"""The worker process end to end: ``python -m model_core.serving.worker`` started with this test's interpreter,
talking JSON lines; a killed worker; a worker Python without torch; the Blender side through the worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from bamm_blender import backend  # noqa: E402
from bamm_blender.errors import BammBackendError, BammInputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = {"random": {"preset": "tiny", "text_encoder": "minilm", "seed": 0}}


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    runner = backend.WorkerBackend(sys.executable, exchange_dir=str(tmp_path_factory.mktemp("exchange")))
    yield runner
    runner.shutdown()


def wait_for_progress(job, timeout=120.0):
    end = time.monotonic() + timeout
    while job.stage == "starting" and job.state == "running":
        assert time.monotonic() < end, "no progress from the worker"
        time.sleep(0.005)


def test_generate_edit_extend(worker):
    job = worker.submit(backend.Request("generate", TINY, {"prompt": "a person waves", "n": 2, "seed": 0}))
    motions = job.wait(180)
    assert len(motions) == 2 and job.stage in ("decode", "residual") and job.fraction == 1.0
    joints, prompt, tokens = motions[0].joints, motions[0].prompt, motions[0].tokens
    assert joints.dtype == np.float32 and joints.ndim == 3 and joints.shape[1:] == (22, 3)
    assert prompt == "a person waves"
    assert tokens.dtype == np.int64 and tokens.shape[0] == -(-len(joints) // 4) and tokens.shape[1] > 1
    (edited,) = worker.submit(backend.Request("edit", TINY, {"source": joints, "frames": [8, 24]})).wait(60)
    assert edited.joints.shape == joints.shape
    np.testing.assert_array_equal(edited.joints[:8], joints[:8])  # outside the range: the source's own joints
    (longer,) = worker.submit(backend.Request("extend", TINY, {"source": joints, "after_s": 1.0})).wait(60)
    assert len(longer.joints) == len(joints) + 20 and len(longer.tokens) == len(tokens) + 5
    assert not list(Path(worker.exchange).glob("*.npy"))  # exchanged files are cleaned up


def test_tokens_travel_with_the_source(worker):
    """An edit given the source's tokens keeps them outside the regenerated span exactly; without them the
    worker encodes the joints again (other codes in general: decoding then encoding is not the identity)."""
    (motion,) = worker.submit(backend.Request("generate", TINY, {"prompt": "a person jumps", "frames": 48})).wait(120)
    args = {"source": motion.joints, "source_tokens": motion.tokens, "frames": [16, 32]}
    (edited,) = worker.submit(backend.Request("edit", TINY, args)).wait(60)
    np.testing.assert_array_equal(edited.tokens[:4], motion.tokens[:4])
    np.testing.assert_array_equal(edited.tokens[8:], motion.tokens[8:])
    (encoded,) = worker.submit(backend.Request("edit", TINY, {**args, "source_tokens": None})).wait(60)
    kept = np.r_[0:4, 8:12]
    assert not np.array_equal(encoded.tokens[kept], motion.tokens[kept])
    assert not list(Path(worker.exchange).glob("*.npy"))


def test_model_errors_are_reported_and_the_worker_keeps_serving(worker):
    job = worker.submit(backend.Request("generate", TINY, {"prompt": "walk", "frames": 4000}))
    with pytest.raises(BammInputError, match=r"frames must be an integer in \[4, 64\], got 4000"):
        job.wait(60)
    missing = {"weights": str(ROOT / "no-such-weights"), "text_encoder": None, "device": "cpu"}
    with pytest.raises(BammInputError, match="no BAMM weights"):
        worker.submit(backend.Request("generate", missing, {"prompt": "walk"})).wait(60)
    assert worker.alive()
    assert len(worker.submit(backend.Request("generate", TINY, {"prompt": "walk", "frames": 16})).wait(60)) == 1


def test_killed_worker_is_reported_then_restarted(worker):
    job = worker.submit(backend.Request("generate", TINY, {"prompt": "a person runs", "seed": 3}))
    wait_for_progress(job)
    pid = worker.process.pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(BammBackendError, match="worker process was killed by signal 9.*restarted"):
        job.wait(60)
    assert not worker.alive()
    again = worker.submit(backend.Request("generate", TINY, {"prompt": "a person runs", "seed": 3}))
    assert len(again.wait(180)) == 1
    assert worker.process.pid != pid


def test_cancel(worker):
    job = worker.submit(backend.Request("generate", TINY, {"prompt": "a person jumps", "n": 4}))
    job.cancel()
    assert job.poll() == "cancelled"
    # the worker drops the request and serves the next one
    assert len(worker.submit(backend.Request("generate", TINY, {"prompt": "jump", "frames": 8})).wait(60)) == 1


def test_worker_python_without_torch(tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    runner = backend.WorkerBackend(str(python), exchange_dir=str(tmp_path / "exchange"))
    job = runner.submit(backend.Request("generate", TINY, {"prompt": "walk"}))
    with pytest.raises(BammBackendError, match=r"cannot import (numpy|torch).*install"):
        job.wait(60)
    runner.shutdown()


def test_missing_interpreter(tmp_path):
    runner = backend.WorkerBackend(str(tmp_path / "no-python"))
    with pytest.raises(BammBackendError, match="not found"):
        runner.submit(backend.Request("generate", TINY, {"prompt": "walk"}))


def test_protocol_by_hand(tmp_path):
    """The documented JSON lines, spoken directly to ``python -m model_core.serving.worker``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "model_core.serving.worker"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    request = {"id": 7, "op": "generate", "model": TINY, "args": {"prompt": "walk", "frames": 8},
               "out_dir": str(tmp_path)}
    out, _ = process.communicate(json.dumps(request) + "\n" + json.dumps({"op": "shutdown"}) + "\n", timeout=180)
    lines = [json.loads(line) for line in out.splitlines() if '"heartbeat"' not in line]
    assert lines[0]["type"] == "ready" and lines[0]["torch"]
    assert {m["type"] for m in lines[1:-1]} == {"progress"}
    assert lines[-1]["type"] == "result" and lines[-1]["id"] == 7
    assert np.load(lines[-1]["joints"][0]).shape == (8, 22, 3)
    assert process.returncode == 0


def test_blender_side_through_the_worker(worker):
    bpy = pytest.importorskip("bpy")
    import bamm_blender
    from bamm_blender import bake, headless, results

    bamm_blender.register()
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        engine = headless.Engine(worker, TINY)
        (action,) = headless.generate(bpy.context, prompt="a person walks", seconds=2.0, timeout=180, engine=engine)
        obj = bpy.context.scene.bamm.target
        first, last = bake.key_range(obj, action)
        assert last - first + 1 == int(np.floor(39 * bake.scene_fps(bpy.context.scene) / 20 + 1e-6)) + 1
        stored = results.source(obj, action, bpy.context.scene, model=headless.model_key(TINY))
        assert stored.tokens is not None and stored.tokens.shape[0] == 10  # 40 frames / 4
        (edited,) = headless.regenerate_range(bpy.context, target=obj, first=10, last=30, timeout=180, engine=engine)
        assert results.source(obj, edited, bpy.context.scene, model=headless.model_key(TINY)).tokens is not None
    finally:
        bamm_blender.unregister()


# ------------------------------------------------------------------------ the bundled runtime (ONNX Runtime)
@pytest.fixture(scope="module")
def runtime():
    """The runtime folder exported from the shipped weights (cached by the extension builder)."""
    if not (ROOT / "model_core" / "runtime" / "export.py").is_file():
        pytest.skip("model_core/runtime is not in this checkout")
    pytest.importorskip("onnxruntime")
    from model_core.cli import blender as cli_blender

    return cli_blender.export_runtime(ROOT, ROOT / "weights", cli_blender.CACHE)


def test_runtime_worker_generates_and_keeps_tokens(runtime, tmp_path):
    """The default back end's process: this Python (Blender's own, in Blender) with the wheels' folders."""
    runner = backend.WorkerBackend(sys.executable, exchange_dir=str(tmp_path), paths=backend.wheel_paths())
    spec = {"backend": "onnx", "runtime": str(runtime), "device": "auto"}
    try:
        (motion,) = runner.submit(backend.Request("generate", spec, {"prompt": "a person walks forward",
                                                                      "frames": 40})).wait(300)
        assert runner.ready["onnxruntime"] and motion.joints.shape == (40, 22, 3)
        assert motion.tokens.shape == (10, 6) and motion.tokens.dtype == np.int64
        args = {"source": motion.joints, "source_tokens": motion.tokens, "frames": [16, 28], "prompt": "jump"}
        (edited,) = runner.submit(backend.Request("edit", spec, args)).wait(300)
        kept = np.r_[0:4, 7:10]  # tokens outside frames 16-28: the source's own
        np.testing.assert_array_equal(edited.tokens[kept], motion.tokens[kept])
        missing = dict(spec, runtime=str(tmp_path / "none"))
        with pytest.raises(BammInputError, match="no BAMM weights or runtime"):
            runner.submit(backend.Request("generate", missing, {"prompt": "walk"})).wait(60)
    finally:
        runner.shutdown()


def test_generate_button_with_untouched_preferences(runtime, monkeypatch):
    """Install-and-press: default preferences, the bundled runtime, Generate then Regenerate Range, whose
    request carries the generated motion's tokens."""
    bpy = pytest.importorskip("bpy")
    import bamm_blender
    from bamm_blender import bake, headless, models, results

    monkeypatch.setattr(models, "RUNTIME_DIR", runtime)
    monkeypatch.setattr(backend, "_BACKENDS", {})
    bamm_blender.register()
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        settings = bpy.context.scene.bamm
        settings.prompt, settings.length_mode, settings.seconds = "a person waves", "SECONDS", 2.0
        assert bpy.ops.bamm.generate() == {"FINISHED"}
        obj = settings.target
        (runner,) = backend._BACKENDS.values()
        assert runner.python == sys.executable and runner.ready["onnxruntime"]
        spec = headless.model_spec(bpy.context)
        stored = results.source(obj, obj.animation_data.action, bpy.context.scene, model=headless.model_key(spec))
        assert stored.tokens.shape == (10, 6)
        sent = []
        monkeypatch.setattr(runner, "submit", lambda request, submit=runner.submit: sent.append(request)
                            or submit(request))
        settings.range_source, settings.range_start, settings.range_end = "MANUAL", 10, 30
        assert bpy.ops.bamm.regenerate_range() == {"FINISHED"}
        np.testing.assert_array_equal(sent[0].args["source_tokens"], stored.tokens)
        assert bake.key_range(obj, obj.animation_data.action) == (stored.first, stored.last)
        assert len(settings.results) == 2 and not bpy.context.window_manager.bamm_error
    finally:
        bamm_blender.unregister()
    assert not runner.alive()  # unregister stops the worker
