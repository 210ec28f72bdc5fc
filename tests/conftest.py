"""Shared fixtures. Data-bound tests skip (with a reason) where the shared data folder is absent."""

from __future__ import annotations

import os
from pathlib import Path

# one BLAS thread: the 2-core machines this runs on lose far more to thread contention than they gain
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BAMM_SHARED_DATA", ROOT.parent / "shared" / "data"))
HML_DIR = SHARED_DATA / "humanml3d-format"
BANDAI_DIR = SHARED_DATA / "bandai-namco"

try:  # keep the 2-core machine responsive when several suites run
    import torch

    torch.set_num_threads(1)  # the test models are tiny: threads cost more than they give
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="session")
def hml_dir() -> Path:
    if not (HML_DIR / "Mean.npy").exists():
        pytest.skip(f"HumanML3D golden files not found at {HML_DIR} (set BAMM_SHARED_DATA)")
    return HML_DIR


@pytest.fixture(scope="session")
def bandai_dir() -> Path:
    if not (BANDAI_DIR / "dataset-1.tar.xz").exists():
        pytest.skip(f"Bandai-Namco archives not found at {BANDAI_DIR} (set BAMM_SHARED_DATA)")
    return BANDAI_DIR


@pytest.fixture(scope="session")
def built_bandai(bandai_dir, tmp_path_factory) -> Path:
    """The whole Bandai-Namco training set as `make data` builds it: `data_cache/bandai` when it is there, else
    built once per test session from the shared archives (about half a minute on 2 cores)."""
    made = ROOT / "data_cache" / "bandai"
    if (made / "meta.jsonl").exists():
        return made
    from model_core.data.build_bandai import build_bandai

    out = tmp_path_factory.mktemp("bandai-full")
    build_bandai(bandai_dir, out, workers=2)
    return out


@pytest.fixture(scope="session")
def linux_zip(tmp_path_factory) -> Path:
    """The Linux extension zip, built once per test session as ``bamm build-extension --platform linux-x64``."""
    pytest.importorskip("bpy")  # the build runs Blender's blender_ext.py from the development environment's bpy
    from support import stock_blender

    return stock_blender.build_linux_zip(tmp_path_factory.mktemp("stock-dist"))


@pytest.fixture(scope="session")
def small_templates(tmp_path_factory) -> Path:
    """Graph templates of the published architecture with 2-layer transformers, a 2-deep RVQ-VAE and a 1-layer
    CLIP 64 wide (`runtime/templates.py`; about 20 s), matching `support.official_ckpt`'s checkpoints."""
    pytest.importorskip("onnx")
    from model_core.runtime.templates import CLIP_PAPER, PAPER, build_templates

    sizes = {**PAPER, "t2m_layers": 2, "res_layers": 2, "vq_depth": 2}
    return build_templates(tmp_path_factory.mktemp("templates"), sizes=sizes,
                           clip_sizes={**CLIP_PAPER, "layers": 1, "width": 64}).parent


@pytest.fixture(scope="session")
def small_checkpoints(tmp_path_factory) -> dict:
    """Random checkpoints in the published layout at `small_templates`' sizes, CLIP stored as float16."""
    pytest.importorskip("torch")
    from support.official_ckpt import random_clip_file, write_official

    root = tmp_path_factory.mktemp("ckpt")
    paths = write_official(root, seed=5, end_bias=1.0)
    paths["clip"] = random_clip_file(root / "ViT-B-32.pt", half=True)
    return paths
