"""The worker keeps serving whatever a client sends: every bad line or request is answered with an error
(kind "input"), nothing is written outside ``out_dir``, and a silent worker is noticed by the client."""

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

from model_core.serving.protocol import ProtocolError, check_id, parse_line

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = {"weights": str(ROOT / "weights"), "text_encoder": None, "device": "cpu"}


@pytest.mark.parametrize("value", [0, 7, 2**53 - 1, "a", "job-1.2", "A_b"])
def test_safe_ids(value):
    assert check_id(value) == value


@pytest.mark.parametrize("value", [[1], {"a": 1}, None, True, -1, 2**53, 1.5, "../../x", "a/b", "..", "",
                                   "x" * 65, "a b", "é"])
def test_unsafe_ids(value):
    with pytest.raises(ProtocolError, match="id must be"):
        check_id(value)


def bad_lines(out_dir: str) -> list[tuple[str, str]]:
    """(line, message) pairs: each must be answered with this input error, the worker serving on."""
    req = lambda **kw: json.dumps({"op": "generate", "model": WEIGHTS, "args": {"prompt": "walk"},  # noqa: E731
                                   "out_dir": out_dir, **kw})
    plan = lambda rid, value, **kw: json.dumps({"op": "plan", "id": rid, "model": WEIGHTS,  # noqa: E731
                                                "args": {"plan": value, **kw}, "out_dir": out_dir})
    return [
        ("[1,2,3]", "expected a JSON object, got list"),
        ('"text"', "expected a JSON object, got str"),
        ("{not json", "not JSON"),
        ('{"op": "cancel", "id": [1]}', "id must be"),
        ('{"op": "cancel", "id": {"a": 1}}', "id must be"),
        (req(id=[1]), "id must be"),
        (req(id="../../x"), "id must be"),
        ('{"op": "frobnicate", "id": 1}', "op must be one of"),
        (json.dumps({"op": "generate", "id": 2, "model": "weights", "out_dir": out_dir}), "model must be an object"),
        (json.dumps({"op": "generate", "id": 3, "model": WEIGHTS, "args": [1], "out_dir": out_dir}),
         "args must be an object"),
        (json.dumps({"op": "generate", "id": 4, "model": WEIGHTS, "args": {}}), "out_dir must be"),
        (req(id=5, args={"prompt": "walk", "seconds": float("nan")}), "seconds must be a finite number"),
        (req(id=6, args={"prompt": "walk", "frames": 200}), r"frames must be an integer in [4, 196], got 200"),
        (req(id=7, args={"prompt": "walk", "n": 0}), "n must be an integer in [1, 32], got 0"),
        (req(id=8, args={"prompt": "walk", "seed": 2**64}), "seed must be an integer"),
        (req(id=9, args={"prompt": "   "}), "the prompt is empty"),
        (req(id=10, args={"prompt": "walk", "colour": "red"}), "unknown argument(s) colour"),
        (json.dumps({"op": "edit", "id": 11, "model": WEIGHTS, "out_dir": out_dir,
                     "args": {"source": "SRC", "frames": [0, 8], "n": 0}}), "n must be an integer in [1, 32], got 0"),
        (json.dumps({"op": "extend", "id": 12, "model": WEIGHTS, "out_dir": out_dir,
                     "args": {"source": "SRC", "after_s": 1e9}}), "after_s (seconds added after) must be"),
        (json.dumps({"op": "edit", "id": 13, "model": WEIGHTS, "out_dir": out_dir,
                     "args": {"source": "SRC", "frames": [0, 400]}}), "lies outside the clip"),
        (json.dumps({"op": "generate", "id": 14, "model": dict(WEIGHTS, weights=out_dir + "/none"),
                     "args": {"prompt": "walk"}, "out_dir": out_dir}), "no BAMM weights or runtime"),
        (plan(15, "a plan"), "the plan must be a JSON object with a non-empty 'steps' list"),
        (plan(16, {"steps": [{"prompt": "walk", "seconds": 2.0}] * 17}), "the plan has 17 steps; at most 16"),
        (plan(17, {"steps": [{"prompt": "walk", "seconds": 10.0}]}), "plan step 1: 'seconds' must be a finite number "
                                                                     "in [0.2, 9.8], got 10.0"),
        (plan(18, {"steps": [{"prompt": " "}]}), "plan step 1 needs a non-empty 'prompt' string"),
        (plan(19, {"steps": [{"prompt": "walk"}]}, prompt="walk"), "plan takes no prompt"),
        (plan(20, {"steps": [{"prompt": "walk"}]}, frames=40), "plan takes no frames"),
    ]


def test_bad_lines_are_answered_and_the_worker_keeps_serving(tmp_path):
    out_dir = tmp_path / "exchange"
    out_dir.mkdir()
    source = out_dir / "src.npy"
    np.save(source, np.zeros((40, 22, 3), np.float32))
    cases = [(line.replace("SRC", str(source)), message) for line, message in bad_lines(str(out_dir))]
    limits = json.dumps({"op": "limits", "id": "last", "model": WEIGHTS})
    text = "\n".join([line for line, _ in cases] + [limits, json.dumps({"op": "shutdown"})]) + "\n"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "model_core.serving.worker"], input=text, capture_output=True,
                          text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    replies = [r for r in replies if r["type"] not in ("heartbeat", "progress")]
    assert replies[0]["type"] == "ready" and replies[0]["limits"]["max_frames"] == 196
    errors, last = replies[1:-1], replies[-1]
    assert len(errors) == len(cases)
    for (line, message), reply in zip(cases, errors):
        assert reply["type"] == "error" and reply["kind"] == "input", (line, reply)
        assert message in reply["message"], (line, reply["message"])
        assert "Traceback" not in reply["message"] and "\n" not in reply["message"]
    assert last == {"id": "last", "type": "limits", "limits": replies[0]["limits"]}  # still serving
    assert sorted(p.name for p in out_dir.iterdir()) == ["src.npy"]  # nothing written
    assert not (tmp_path.parent / "x-0.npy").exists()


def test_parse_line_keeps_a_readable_id_with_its_error():
    with pytest.raises(ProtocolError) as caught:
        parse_line(json.dumps({"op": "generate", "id": 9, "model": "x"}))
    assert caught.value.rid == 9


def test_a_silent_worker_is_reported_within_the_bound(tmp_path):
    pytest.importorskip("torch")
    from bamm_blender import backend
    from bamm_blender.errors import BammBackendError

    runner = backend.WorkerBackend(sys.executable, exchange_dir=str(tmp_path), silent_s=3.0)
    try:
        job = runner.submit(backend.Request("generate", {"random": {"preset": "tiny", "text_encoder": "minilm"}},
                                            {"prompt": "walk", "frames": 8}))
        while not runner.ready:  # started: now freeze it (a hung worker: no line, no exit)
            time.sleep(0.05)
        os.kill(runner.process.pid, signal.SIGSTOP)
        start = time.monotonic()
        with pytest.raises(BammBackendError, match=r"said nothing for \d+ s .*stopped and will be restarted"):
            job.wait(60)
        assert time.monotonic() - start < 3.0 + 5.0
        assert not runner.alive()
    finally:
        runner.shutdown()


def test_twenty_requests_in_a_row_leave_nothing_behind(tmp_path):
    pytest.importorskip("torch")
    import threading

    from bamm_blender import backend
    from bamm_blender.errors import BammInputError
    from support.tiny_dataset import synthetic_joints

    tiny = {"random": {"preset": "tiny", "text_encoder": "minilm"}}
    runner = backend.WorkerBackend(sys.executable, exchange_dir=str(tmp_path))
    try:
        runner.submit(backend.Request("generate", tiny, {"prompt": "walk", "frames": 8})).wait(180)
        pid, threads = runner.process.pid, threading.active_count()
        for k in range(20):
            if k % 5 == 4:  # bad requests among them: answered, nothing kept
                with pytest.raises(BammInputError, match="frames must be an integer"):
                    runner.submit(backend.Request("generate", tiny, {"prompt": "walk", "frames": 2})).wait(60)
                continue
            source = synthetic_joints(np.random.default_rng(k), 16).astype(np.float32)
            op, args = ("generate", {"prompt": "walk", "frames": 8, "seed": k}) if k % 2 else \
                ("edit", {"source": source, "frames": [4, 12], "seed": k})
            (motion,) = runner.submit(backend.Request(op, tiny, args)).wait(60)
            assert motion.joints.shape[1:] == (22, 3)
        assert runner.process.pid == pid and not runner.jobs and threading.active_count() == threads
        assert sorted(p.name for p in tmp_path.iterdir()) == ["worker.log"]
    finally:
        runner.shutdown()
