"""The worker (what the add-on's "Own Python (torch)" back end runs) serves an imported official weights
folder: generate, then regenerate a range of the result, through the documented JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_core.official.importer import import_official
from support.official_ckpt import random_clip_file, write_official

ROOT = Path(__file__).resolve().parents[1]


def test_worker_generates_and_edits_with_official_weights(tmp_path):
    pytest.importorskip("transformers")
    paths = write_official(tmp_path / "ckpt", seed=0, end_bias=1.0)
    clip = random_clip_file(tmp_path / "ViT-B-32.pt")
    import_official(t2m=paths["t2m"], res=paths["res"], vq=paths["vq"], clip=clip, out=tmp_path / "w")
    model = {"backend": "torch", "weights": str(tmp_path / "w"), "text_encoder": None, "device": "cpu"}
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "model_core.serving.worker"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)

    def ask(request):
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        while True:
            line = json.loads(process.stdout.readline())
            if line.get("type") in ("result", "error"):
                return line

    try:
        assert json.loads(process.stdout.readline())["type"] == "ready"
        first = ask({"id": 1, "op": "generate", "model": model, "out_dir": str(out),
                     "args": {"prompt": "a person walks forward", "frames": 80, "seed": 0}})
        assert first["type"] == "result", first
        joints = np.load(first["joints"][0])
        assert joints.shape == (80, 22, 3) and np.isfinite(joints).all()
        edit = ask({"id": 2, "op": "edit", "model": model, "out_dir": str(out),
                    "args": {"source": first["joints"][0], "source_tokens": first["tokens"][0], "frames": [20, 52],
                             "prompt": "a person jumps", "seed": 1, "n": 1}})
        assert edit["type"] == "result", edit
        edited = np.load(edit["joints"][0])
        assert edited.shape == (80, 22, 3)
        tokens, before = np.load(edit["tokens"][0]), np.load(first["tokens"][0])
        assert np.array_equal(tokens[:5], before[:5]) and np.array_equal(tokens[13:], before[13:])  # kept
        assert not np.array_equal(tokens[5:13], before[5:13])  # frames 20..51 regenerated
        process.stdin.write(json.dumps({"op": "shutdown"}) + "\n")
        process.stdin.flush()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
