"""The torch-free import of the published checkpoints (`runtime/published.py`) through graph templates
(`runtime/templates.py`), on small templates (2-layer transformers, 2-deep RVQ-VAE, a 1-layer CLIP 64 wide) and
random checkpoints of the same sizes: what it writes, what it refuses (one line, nothing left behind), both
precisions, the command line, and removal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from model_core.decoding.generate import BAMM, Generator  # noqa: E402
from model_core.official.importer import import_official  # noqa: E402
from model_core.runtime.ort_nets import load_runtime  # noqa: E402
from model_core.runtime.published import import_published, quantize_columns, remove_model  # noqa: E402
from support.official_ckpt import write_official  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def templates(small_templates):
    return small_templates


@pytest.fixture(scope="module")
def files(small_checkpoints):
    return small_checkpoints


def _import(files, templates, out, **kw):
    args = dict(t2m=files["t2m"], res=files["res"], vq=files["vq"], clip=files["clip"], out=out,
                templates=templates)
    return import_published(**{**args, **kw})


@pytest.fixture(scope="module")
def exact(files, templates, tmp_path_factory):
    return _import(files, templates, tmp_path_factory.mktemp("rt") / "exact", precision="float32").parent


def test_templates_carry_no_weights(templates):
    info = json.loads((templates / "templates.json").read_text())
    graphs = sum((templates / f).stat().st_size for f in templates.iterdir() if f.suffix == ".onnx")
    weights = sum(w["bytes"] for w in info["weights"].values())
    assert graphs < 0.1 * weights
    assert not any(f.suffix == ".weights" for f in templates.iterdir())
    for precision, variant in info["variants"].items():
        assert set(variant["graphs"]) == {"prefill", "step", "residual", "vq_encode", "vq_decode"}
    # the BAMM transformer's two graphs read one weight file
    assert info["variants"]["float32"]["weights"].count("t2m.weights") == 1


def test_exact_import_equals_the_torch_route(files, exact, tmp_path):
    import_official(t2m=files["t2m"], res=files["res"], vq=files["vq"], clip=files["clip"], out=tmp_path / "w")
    torch_gen = BAMM.from_pretrained(tmp_path / "w")
    ort_gen = Generator(load_runtime(exact, "cpu", threads=1))
    prompts = ["a person sits down", "someone cartwheels"]
    assert np.abs(ort_gen.encode_text(prompts) - torch_gen.encode_text(prompts)).max() < 1e-4
    for temperature, seed in ((0.0, 0), (1.0, 3)):
        for profile in ("official", "bamm"):
            a = torch_gen.generate(prompts, temperature=temperature, seed=seed, profile=profile)
            b = ort_gen.generate(prompts, temperature=temperature, seed=seed, profile=profile)
            for x, y in zip(a, b):
                assert np.array_equal(x.tokens, y.tokens), (temperature, profile)
                # float16 tokenizer weights (random ones: the joints integrate large random root velocities)
                assert np.abs(x.features - y.features).max() < 1e-2 * np.abs(x.features).max()
    features = np.random.default_rng(0).normal(size=(1, 32, 263)).astype(np.float32)
    agree = ort_gen.nets.vq_encode(features) == torch_gen.nets.vq_encode(features)
    assert agree.mean() > 0.95  # a float16 encoder: a neighbouring code where two are nearly as close


def test_int8_import_is_smaller_and_generates(files, templates, exact, tmp_path):
    fast = _import(files, templates, tmp_path / "fast").parent
    size = lambda folder: sum(f.stat().st_size for f in folder.iterdir())  # noqa: E731
    assert size(fast) < size(exact)
    info = json.loads((fast / "runtime.json").read_text())
    assert info["about"]["precision"] == "int8" and all(".int8." in info["graphs"][g]
                                                        for g in ("prefill", "step", "residual"))
    motion = Generator(load_runtime(fast, "cpu", threads=1)).generate("a person waves", seed=1)[0]
    assert motion.frames == 4 * len(motion.tokens) and np.isfinite(motion.joints).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_quantize_columns_bounds_the_error(seed):
    w = np.random.default_rng(seed).normal(size=(64, 48)).astype(np.float32)
    w[:, 3] = 0.0
    q, scale = quantize_columns(w)
    assert q.dtype == np.int8 and scale.shape == (48,) and np.abs(q).max() <= 127
    assert (np.abs(q * scale - w) <= scale / 2 + 1e-7).all() and scale[3] == 1.0


def _clip_with(path, change):
    state = torch.load(path, weights_only=True)
    change(state)
    out = path.with_name("changed-" + path.name)
    torch.save(state, out)
    return out


CASES = {
    "missing file": (lambda f, tmp: {"res": tmp / "nowhere.tar"}, r"res checkpoint not found"),
    "another model's size": (lambda f, tmp: {"t2m": write_official(tmp / "big", layers=3)["t2m"]},
                             r"not the published HumanML3D model's size: n_layers 3 \(expected 2\)"),
    "entry missing": (lambda f, tmp: {"t2m": f["res"]}, r"no 't2m_transformer' entry"),
    "clip key missing": (lambda f, tmp: {"clip": _clip_with(f["clip"], lambda s: s.pop("ln_final.bias"))},
                         r"not OpenAI's CLIP ViT-B/32: tensor 'ln_final.bias' is missing"),
    "clip shape": (lambda f, tmp: {"clip": _clip_with(f["clip"], lambda s: s.update(
        text_projection=torch.zeros(64, 256)))}, r"'text_projection' has shape \(64, 256\), expected \(64, 512\)"),
    "float16 range": (lambda f, tmp: {"clip": _clip_with(f["clip"], lambda s: s.update(
        {"token_embedding.weight": s["token_embedding.weight"].float().index_fill(1, torch.tensor([0]), 1e6)}))},
        r"'clip.token_embedding.weight': values outside float16's range"),
    "meta missing": (lambda f, tmp: {"meta": tmp}, r"mean.npy not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(files, templates, tmp_path, case):
    make, pattern = CASES[case]
    override = make(files, tmp_path)
    out = tmp_path / "models" / "m"
    out.parent.mkdir()
    with pytest.raises((ValueError, OSError), match=pattern) as error:
        _import(files, templates, out, **override)
    assert "\n" not in str(error.value).strip()
    assert list(out.parent.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(files, templates, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="nothing overwritten"):
        _import(files, templates, tmp_path / "m")
    assert (tmp_path / "m" / "mine.txt").read_text() == "keep"


def test_heads_other_than_the_published_models_are_refused(files, templates, tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    shutil.copy(files["t2m"], run / "model" / "latest.tar")
    (run / "opt.txt").write_text("n_heads: 8\n")
    with pytest.raises(ValueError, match="8 attention heads"):
        _import(files, templates, tmp_path / "m", t2m=run / "model" / "latest.tar")


def test_remove_deletes_only_what_the_import_wrote(files, templates, tmp_path):
    folder = _import(files, templates, tmp_path / "m").parent
    (folder / "notes.txt").write_text("mine")
    assert remove_model(folder) == ["notes.txt"]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    (folder / "notes.txt").unlink()
    folder2 = _import(files, templates, tmp_path / "m2").parent
    assert remove_model(folder2) == [] and not folder2.exists()


def test_command_line_import_and_generate(files, templates, tmp_path):
    bamm = [sys.executable, "-m", "model_core.cli"]
    done = subprocess.run([*bamm, "import-official", "--t2m", str(files["t2m"]), "--res", str(files["res"]),
                           "--vq", str(files["vq"]), "--clip", str(files["clip"]), "--runtime", "--templates",
                           str(templates), "--out", str(tmp_path / "rt")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "rt" / "runtime.json").is_file()
    done = subprocess.run([*bamm, "generate", "a person walks", "--weights", str(tmp_path / "rt"), "--seed", "1",
                           "--no-fbx", "--no-preview", "--out", str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").glob("*.npy"))) == 1
    done = subprocess.run([*bamm, "generate", "a person walks", "--weights", str(tmp_path / "rt"), "--int8",
                           "--out", str(tmp_path / "out2")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "runtime folder" in done.stderr and len(done.stderr.strip().splitlines()) == 1
