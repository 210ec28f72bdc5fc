"""Data-parallel training: two CPU processes on the gloo backend, launched by torchrun, end in lockstep."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from model_core.models.vq import VQ_PRESETS, RVQVAE
from support.tiny_dataset import write_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "support" / "ddp_worker.py"


def torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("ddp") / "data")


def test_two_gloo_ranks_train_the_tokenizer_in_lockstep(data_dir, tmp_path):
    result = torchrun("vq", str(data_dir), str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    different = [k for k in ranks[0] if not torch.equal(ranks[0][k], ranks[1][k])]
    assert not different, f"ranks diverged in {different[:5]}"

    torch.manual_seed(3407)  # the trainer's seed: the weights the run started from
    start = RVQVAE(VQ_PRESETS["tiny"]).state_dict()
    assert not torch.equal(start["encoder.0.weight"], ranks[0]["encoder.0.weight"]), "no training happened"
    for r in (0, 1):
        with safe_open(str(tmp_path / f"rank{r}.safetensors"), "pt") as f:
            assert f.metadata()["bpy_imported"] == "False"

    run = tmp_path / "run"
    with (run / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [5, 6]  # one writer: no duplicated rows
    assert (run / "vq.safetensors").is_file() and (run / "checkpoints" / "latest.json").is_file()
