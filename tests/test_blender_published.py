"""Open vocabulary in stock Blender: the published checkpoints imported by the add-on's Import Published Model
inside a Python holding only the ``bpy`` wheel (no torch), as a user with the four downloaded files does.

Random checkpoints in the published layout at the published sizes (8-layer transformers 384 wide, the 3-deep
RVQ-VAE, 512-d codes) and a random CLIP with ViT-B/32's text-tower shapes stored as float16 (as OpenAI's file
is) are made here with torch; `support/published_scenario.py` installs the built Linux zip into each bpy-only
environment and drives the operators. The exact import's tokens must equal the torch route's
(``bamm import-official`` + the official profile) on the same prompts, greedy and seeded.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bpy")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")  # the torch route's CLIP encoder

from support import stock_blender  # noqa: E402
from support.official_ckpt import random_clip_file, write_official  # noqa: E402

VERSIONS = [v.strip() for v in os.environ.get("BAMM_STOCK_BPY", ",".join(stock_blender.DEFAULT_VERSIONS)).split(",")
            if v.strip()]
SCENARIO = Path(__file__).with_name("support") / "published_scenario.py"
PROMPTS = ["a person sits down on a chair", "someone jumps over a box"]
MB = 1e6


class _Touch:
    """Pickled as a call of os.system: what a checkpoint carrying code looks like."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    paths = write_official(root / "ckpt", seed=11, end_bias=1.0, layers=8, vq_depth=3)
    paths["clip"] = random_clip_file(root / "ViT-B-32.pt", width=512, layers=12, half=True)
    marker = root / "marker"
    bad = {"code": root / "bad" / "code.tar", "text": root / "bad" / "notes.tar",
           "truncated": root / "bad" / "truncated.tar"}
    bad["code"].parent.mkdir()
    torch.save({"t2m_transformer": {"w": torch.ones(2), "deep": [_Touch(marker)]}}, bad["code"])
    bad["text"].write_text("not a checkpoint\n")
    data = Path(paths["t2m"]).read_bytes()
    bad["truncated"].write_bytes(data[:len(data) // 2])
    return {"paths": paths, "bad": bad, "marker": marker}


@pytest.fixture(scope="module", params=VERSIONS)
def report(request, linux_zip, published, tmp_path_factory):
    try:
        python = stock_blender.stock_python(request.param)
    except stock_blender.StockUnavailable as e:
        pytest.skip(str(e))
    p = published["paths"]
    config = {"zip": str(linux_zip), "marker": str(published["marker"]), "prompts": PROMPTS,
              "checkpoints": {k: str(p[k]) for k in ("t2m", "res", "vq", "clip")},
              "bad": {k: str(v) for k, v in published["bad"].items()}}
    result = stock_blender.run_script(python, SCENARIO, config, tmp_path_factory.mktemp(f"pub-{request.param}"),
                                      timeout=900)
    assert result["returncode"] == 0 and result.get("steps"), result["output"]
    return result


@pytest.fixture(scope="session")
def torch_route(published, tmp_path_factory):
    """Tokens of the torch route: ``bamm import-official`` then the official profile."""
    from model_core.decoding.generate import BAMM
    from model_core.official.importer import import_official

    p = published["paths"]
    out = tmp_path_factory.mktemp("torch-route") / "w"
    import_official(t2m=p["t2m"], res=p["res"], vq=p["vq"], clip=p["clip"], out=out)
    model = BAMM.from_pretrained(out)
    return {"greedy": [m.tokens for m in model.generate(PROMPTS, temperature=0.0, seed=0, profile="official")],
            "seeded": [m.tokens for m in model.generate(PROMPTS, temperature=1.0, seed=3, profile="official")],
            "embedding": model.encode_text(PROMPTS)}


def ok(report, step: str) -> dict:
    out = report["steps"].get(step, {"ok": False, "error": "not run"})
    assert out["ok"], f"{step}: {out.get('error')}\n{report['output'][-2000:]}"
    return out


def test_torch_is_never_imported(report):
    assert report["imported"] == []
    assert ok(report, "tokens")["torch_imported"] is False


@pytest.mark.parametrize("kind", ["code", "text", "truncated"])
def test_bad_files_are_refused_with_one_line_and_leave_nothing(report, published, kind):
    refused = ok(report, "refuse")
    error = refused[kind]["error"]
    assert error and "\n" not in error.strip() and published["bad"][kind].name in error
    if kind == "code":
        assert "refusing to load the global" in error and "system" in error
    assert refused[kind]["models_dir"] == []  # no folder or file left behind
    assert refused["marker_exists"] is False and refused["models"] == []


@pytest.mark.parametrize("step", ["import_exact", "import_fast"])
def test_import_writes_a_model_under_the_user_folder_and_activates_it(report, step):
    out = ok(report, step)
    assert out["result"] == ["FINISHED"] and out["active"] and out["written"] and out["under_user_folder"]
    assert out["active_name"] == ("HumanML3D exact" if step == "import_exact" else "HumanML3D")
    assert "HumanML3D" in out["source"] and "non-commercial" in out["licence"]
    assert {"runtime.json", "text.onnx", "tokenizer.json", "stats.npz"} <= set(out["files"])
    assert abs(out["size_mb"] - out["bytes"] / MB) < 1.0


def test_the_fast_import_fits_the_size_budget(report):
    assert ok(report, "import_fast")["bytes"] <= 250 * MB
    assert ok(report, "import_fast")["bytes"] < ok(report, "import_exact")["bytes"] - 50 * MB


def test_exact_import_gives_the_torch_routes_tokens(report, torch_route):
    got = ok(report, "tokens")
    assert np.abs(np.array(got["embedding"]) - torch_route["embedding"]).max() < 1e-4
    for kind in ("greedy", "seeded"):
        for ours, theirs in zip(got[kind], torch_route[kind]):
            assert np.array_equal(np.array(ours), theirs), kind


@pytest.mark.parametrize("step", ["generate", "regenerate", "extend", "generate_fast"])
def test_operators_run_on_the_imported_model(report, step):
    out = ok(report, step)
    assert out["result"] == ["FINISHED"]
    assert out["keys"]["finite"] and out["keys"]["bones"] >= 22
    if step == "extend":
        assert out["keys"]["last"] > out["before"]["last"]
    if step == "regenerate":
        assert (out["keys"]["first"], out["keys"]["last"]) == (out["before"]["first"], out["before"]["last"])


def test_a_second_model_of_the_same_name_is_refused(report):
    error = ok(report, "duplicate")["error"]
    assert error and "exists already" in error


def test_removing_a_model_deletes_only_its_files(report):
    out = ok(report, "remove")
    assert out["result"] == ["FINISHED"] and not out["folder_exists"]
    assert out["models"] == ["HumanML3D"] and out["active_name"] == "HumanML3D"


def test_pickle_payload_is_real(published, tmp_path):
    """The refused file really carries code: an unrestricted unpickler would run it."""
    marker = Path(published["marker"])
    payload = pickle.dumps(_Touch(tmp_path / "ran"))
    pickle.loads(payload)
    assert (tmp_path / "ran").exists() and not marker.exists()
