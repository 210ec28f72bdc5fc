"""The bad-input table: each case gets a one-line message and an exit code (2: bad input), and nothing is
written, overwritten or deleted. Cases that the request contract refuses are refused before a model loads."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from model_core.cli import main as bamm
from model_core.contract.limits import InputError
from model_core.decoding import generate as generate_module

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights"


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: a file's content hash, a link's target."""
    out = {}
    for p in sorted(folder.rglob("*")):
        key = p.relative_to(folder).as_posix()
        out[key] = ("link:" + os.readlink(p)) if p.is_symlink() else \
            hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"bamm {command}: "), err
    return err


@pytest.fixture
def no_model_load(monkeypatch):
    """Fails the test if a model is loaded: these inputs must be refused before."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")
    monkeypatch.setattr(generate_module.BAMM, "from_pretrained", classmethod(refuse))


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("weights")
    generate_module.BAMM.random(preset="tiny", text_encoder="minilm", seed=0).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------- bamm generate / edit

def _cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


GENERATE_CASES = [
    (["--seconds", "inf"], "seconds must be a finite number > 0, got inf"),
    (["--seconds", "nan"], "seconds must be a finite number > 0, got nan"),
    (["--seconds", "-1"], "seconds must be a finite number > 0"),
    (["--seconds", "9.9"], "9.9 s is over the model's limit of 9.8 s (196 frames)"),
    (["--frames", "2"], "frames must be an integer in [4, 196], got 2"),
    (["--n", "0"], "n must be an integer in [1, 32], got 0"),
    (["--n", "1000"], "n must be an integer in [1, 32], got 1000"),
    (["--seed", str(2**64)], "seed must be an integer in [0, 4294967295], got 18446744073709551616"),
    (["--seed", "-1"], "seed must be an integer in [0, "),
    (["--rounds", "0"], "rounds must be an integer in [1, 8], got 0"),
    (["--cfg", "nan", "3"], "cfg (guidance) must be a finite number"),
    (["--device", "foo"], "--device must be cpu, cuda, cuda:N or mps, got 'foo'"),
    pytest.param(["--device", "cuda"], "CUDA device", marks=pytest.mark.skipif(
        _cuda_available(), reason="this machine has CUDA")),
    (["--int8", "--device", "mps"], "--int8 runs on the CPU only"),
    (["--weights", "/nonexistent/weights"], "no weights in /nonexistent/weights"),
]


@pytest.mark.parametrize("extra, message", GENERATE_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_generate_bad_input(extra, message, tmp_path, capsys, no_model_load):
    out = tmp_path / "out"
    argv = ["generate", "a person walks", "--out", str(out), "--no-fbx"]
    if "--weights" not in extra:
        argv += ["--weights", str(SHIPPED)]
    assert bamm(argv + extra) == 2
    assert message in one_line_error(capsys, "generate")
    assert not out.exists()  # nothing written, not even the folder


@pytest.mark.parametrize("prompt, message", [
    ("   ", "the prompt is empty"),
    ("walk " * 300, "the prompt has 1499 characters; at most 1000 are allowed"),
    ("walk\x00then run", "control characters"),
])
def test_generate_bad_prompt(prompt, message, tmp_path, capsys, no_model_load):
    assert bamm(["generate", prompt, "--weights", str(SHIPPED), "--out", str(tmp_path / "o"), "--no-fbx"]) == 2
    assert message in one_line_error(capsys, "generate")
    assert not (tmp_path / "o").exists()


def _steps(n: int, seconds=2.0, prompt="a person walks") -> str:
    return json.dumps({"steps": [{"prompt": prompt, "seconds": seconds}] * n})


PLAN_CASES = [  # (plan file text, message): refused by the request contract before a model loads
    ("{not json", "the plan is not valid JSON"),
    ('{"steps": [{"prompt": "a person walks"}]', "the plan is not valid JSON"),
    ("[1, 2]", "the plan must be a JSON object with a non-empty 'steps' list"),
    ('{"steps": []}', "the plan must be a JSON object with a non-empty 'steps' list"),
    ('{"steps": [{"prompt": "a person walks", "secs": 2}]}', "plan step 1 has unknown key(s) secs"),
    ('{"steps": [{"prompt": "a person walks"}], "extra": 1}', "the plan has unknown key(s) extra"),
    (_steps(17), "the plan has 17 steps; at most 16 are allowed"),
    (_steps(2, seconds=12.0), "plan step 1: 'seconds' must be a finite number in [0.2, 9.8], got 12.0"),
    (_steps(1, seconds=0.05), "plan step 1: 'seconds' must be a finite number in [0.2, 9.8], got 0.05"),
    (_steps(1, seconds="3"), "plan step 1: 'seconds' must be a finite number in [0.2, 9.8], got '3'"),
    (_steps(1, prompt="walk " * 300), "plan step 1: the prompt has 1499 characters; at most 1000 are allowed"),
    ('{"steps": [{"prompt": "a person walks", "together": "waves\\u0000"}]}', "plan step 1: the prompt contains "
                                                                              "control characters"),
]


@pytest.mark.parametrize("text, message", PLAN_CASES)
def test_generate_bad_plan_file(text, message, tmp_path, capsys, no_model_load):
    plan = tmp_path / "plan.json"
    plan.write_text(text, encoding="utf-8")
    before = snapshot(tmp_path)
    assert bamm(["generate", "--plan", str(plan), "--weights", str(SHIPPED), "--out", str(tmp_path / "o"),
                 "--no-fbx"]) == 2
    err = one_line_error(capsys, "generate")
    assert err.startswith(f"bamm generate: {plan}: ") and message in err, err
    assert snapshot(tmp_path) == before  # nothing written, not even the folder


@pytest.mark.skipif(sys.platform != "linux", reason="/proc is Linux's")
def test_unwritable_or_file_out_is_refused_before_generation(tmp_path, capsys, no_model_load):
    existing = tmp_path / "taken.txt"
    existing.write_text("mine")
    before = snapshot(tmp_path)
    for out, message in ((existing, "is an existing file"), (Path("/proc/bamm-out"), "cannot write into")):
        assert bamm(["generate", "walk", "--weights", str(SHIPPED), "--out", str(out), "--no-fbx"]) == 2
        assert message in one_line_error(capsys, "generate")
    assert snapshot(tmp_path) == before


def test_edit_bad_motion_inputs(tmp_path, capsys, no_model_load):
    np.savez(tmp_path / "motion.npz", joints=np.zeros((40, 22, 3), np.float32))
    (tmp_path / "folder.npy").mkdir()
    np.save(tmp_path / "nan.npy", np.full((40, 22, 3), np.nan, np.float32))
    np.save(tmp_path / "feats.npy", np.zeros((40, 263), np.float32))
    (tmp_path / "text.npy").write_text("not an array")
    np.save(tmp_path / "ok.npy", np.zeros((40, 22, 3), np.float32))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases = [("motion.npz", "0:8", "is not a .npy joints file"), ("folder.npy", "0:8", "is not a .npy joints file"),
             ("nan.npy", "0:8", "holds NaN"), ("feats.npy", "0:8", "is not a (T, 22, 3) float joint array"),
             ("text.npy", "0:8", "is not a readable .npy array"),
             ("objects.npy", "0:8", "is not a readable .npy array"),
             ("missing.npy", "0:8", "motion file not found"),
             ("ok.npy", "30:10", "is empty or reversed"), ("ok.npy", "0:80", "lies outside the clip"),
             ("ok.npy", "10:12", "shorter than one token"), ("ok.npy", "a:b", "--range must look like")]
    before = snapshot(tmp_path)
    for name, rng, message in cases:
        argv = ["edit", str(tmp_path / name), "--range", rng, "--weights", str(SHIPPED), "--out", str(tmp_path),
                "--no-fbx"]
        assert bamm(argv) == 2, name
        assert message in one_line_error(capsys, "edit"), name
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("argv, message", [
    (["generate"], "give a prompt or --plan FILE (see 'bamm generate --help')"),
    (["generate", "walk", "--seconds", "abc"], "argument --seconds: invalid float value: 'abc'"),
    (["generate", "walk", "--seconds", "1", "--frames", "8"], "not allowed with argument --seconds"),
    (["edit", "m.npy"], "the following arguments are required: --range"),
])
def test_usage_errors_are_one_line(argv, message, capsys):
    assert bamm(argv) == 2
    assert message in one_line_error(capsys, argv[0])


def test_debug_prints_the_traceback(tmp_path, capsys, no_model_load):
    assert bamm(["generate", "walk", "--seconds", "inf", "--weights", str(SHIPPED), "--debug",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("bamm generate: seconds must be")


# ---------------------------------------------------------------------------------------- safe outputs

def _generate(weights, out, prompt="a person walks", *extra):
    return bamm(["generate", prompt, "--frames", "16", "--weights", str(weights), "--out", str(out), "--no-fbx",
                 "--no-preview", *extra])


def test_runs_into_one_folder_keep_every_result(tiny_weights, tmp_path, capsys):
    for seed in range(4):
        assert _generate(tiny_weights, tmp_path, "a person walks", "--seed", str(seed)) == 0
    names = sorted(p.name for p in tmp_path.glob("*.npy"))
    assert names == ["a_person_walks-2.npy", "a_person_walks-3.npy", "a_person_walks-4.npy", "a_person_walks.npy"]
    assert len({hashlib.sha1(p.read_bytes()).hexdigest() for p in tmp_path.glob("*.npy")}) == 4
    assert "numbered: a_person_walks exists; --overwrite replaces it" in capsys.readouterr().out
    first = (tmp_path / "a_person_walks.npy").read_bytes()
    assert _generate(tiny_weights, tmp_path, "a person walks", "--seed", "9", "--overwrite") == 0
    assert (tmp_path / "a_person_walks.npy").read_bytes() != first and len(list(tmp_path.glob("*.npy"))) == 4
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_non_latin_prompts_do_not_overwrite_each_other(tiny_weights, tmp_path):
    for prompt in ("一个人向前走", "一个人跳起来", "человек бежит"):
        assert _generate(tiny_weights, tmp_path, prompt) == 0
    assert len(list(tmp_path.glob("*.npy"))) == 3 and len(list(tmp_path.glob("*.bvh"))) == 3


def test_outputs_never_follow_symlinks(tiny_weights, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "walk.npy").symlink_to(victim)
    assert _generate(tiny_weights, out, "walk") == 0
    assert victim.read_text() == "keep me" and (out / "walk-2.npy").is_file()
    assert _generate(tiny_weights, out, "walk", "--overwrite") == 0
    assert victim.read_text() == "keep me"
    assert not (out / "walk.npy").is_symlink() and np.load(out / "walk.npy").shape == (16, 22, 3)


def test_nan_statistics_write_nothing(tiny_weights, tmp_path, capsys):
    import shutil

    import torch
    from safetensors.torch import save_file

    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    save_file({"mean": torch.full((263,), float("nan")), "std": torch.ones(263)}, str(weights / "stats.safetensors"))
    out = tmp_path / "out"
    assert _generate(weights, out) == 2
    assert "tensor 'mean' must be a finite vector" in one_line_error(capsys, "generate")
    assert not out.exists() or not list(out.iterdir())


def test_config_with_a_string_for_an_integer_or_a_huge_layer(tiny_weights, tmp_path, capsys):
    import shutil

    for key, value, message in (("n_layers", "4", "config 'n_layers' must be int, got '4'"),
                                ("ff_dim", 10**7, "parameter 'blocks.0.ff.0.weight' has shape")):
        weights = tmp_path / key
        shutil.copytree(tiny_weights, weights)
        meta = json.loads((weights / "t2m.json").read_text())
        meta["config"][key] = value
        (weights / "t2m.json").write_text(json.dumps(meta))
        assert _generate(weights, tmp_path / "out") == 2
        err = one_line_error(capsys, "generate")
        assert "t2m" in err and (message in err or key == "ff_dim" and "t2m.safetensors" in err), err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------------------- Python API bounds

def test_extend_length_is_bounded_before_allocating(tiny_weights):
    model = generate_module.BAMM.from_pretrained(tiny_weights)
    source = np.zeros((40, 22, 3), np.float32)
    with pytest.raises(InputError, match=r"after_s \(seconds added after\) must be a finite number in \[0, 3.2\]"):
        model.extend(source, after_s=1e9)
    with pytest.raises(InputError, match="source joints must have shape"):
        model.edit(np.zeros((10**5, 22, 3), np.float32), (0, 8))


# ---------------------------------------------------------------------------------------- dataset builder

def _bvh_folder(folder: Path, n: int = 4) -> Path:
    from model_core.motion.bvh import write_bvh
    from model_core.motion.smpl_bvh import joints_to_bvh_clip
    from support.tiny_dataset import synthetic_joints

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["file,caption"]
    for i in range(n):
        write_bvh(folder / f"clip{i}.bvh", joints_to_bvh_clip(synthetic_joints(rng, 60 + 10 * i), fps=20.0))
        rows.append(f"clip{i}.bvh,a person walks in a curve.")
    (folder.parent / "captions.csv").write_text("\n".join(rows) + "\n")
    return folder.parent / "captions.csv"


def test_build_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    captions = _bvh_folder(tmp_path / "in")
    theirs = tmp_path / "HumanML3D"
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (theirs / sub).mkdir(parents=True)
    np.save(theirs / "new_joint_vecs" / "000001.npy", np.zeros((40, 263), np.float32))
    (theirs / "texts" / "000001.txt").write_text("a person walks.#a/DET#0.0#0.0\n")
    (theirs / "train.txt").write_text("000001\n")
    np.save(theirs / "Mean.npy", np.zeros(263, np.float32))
    before = snapshot(theirs)
    assert bamm(["data", "build", "bvh", str(tmp_path / "in"), "--captions", str(captions), "--out", str(theirs),
                 "--workers", "1", "--quiet"]) == 2
    assert "holds files that bamm data build did not write" in one_line_error(capsys, "data")
    assert snapshot(theirs) == before


def test_rebuild_prunes_only_its_own_windows(tmp_path):
    from model_core.data.build_bvh import build_bvh_folder

    captions = _bvh_folder(tmp_path / "in")
    out = tmp_path / "out"
    build_bvh_folder(tmp_path / "in", captions, out, workers=1)
    mine = out / "new_joints" / "my_own_file.npy"
    np.save(mine, np.ones((3, 22, 3), np.float32))
    (tmp_path / "in" / "clip3.bvh").unlink()  # one clip fewer: its windows go, the user's file stays
    report = build_bvh_folder(tmp_path / "in", captions, out, workers=1)
    assert report["clips"] == 3 and mine.is_file()
    assert not list(out.rglob("clip3*")) and json.loads((out / "bamm_build.json").read_text())["ids"]


def test_deeply_nested_bvh_is_skipped_with_a_message(tmp_path):
    from model_core.data.build_bvh import build_bvh_folder
    from model_core.motion.bvh import BvhError, parse_bvh

    captions = _bvh_folder(tmp_path / "in")
    deep = "HIERARCHY\nROOT r\n{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition Zposition\n"
    deep += "JOINT j\n{\nOFFSET 0 1 0\nCHANNELS 3 Zrotation Xrotation Yrotation\n" * 1000
    deep += "}\n" * 1001 + "MOTION\nFrames: 1\nFrame Time: 0.05\n" + "0 " * 3003 + "\n"
    with pytest.raises(BvhError, match="is nested 256 levels deep; at most 256 are supported"):
        parse_bvh(deep, "deep.bvh")
    (tmp_path / "in" / "deep.bvh").write_text(deep)
    captions.write_text(captions.read_text() + "deep.bvh,a person walks.\n")
    report = build_bvh_folder(tmp_path / "in", captions, tmp_path / "out", workers=1)
    reasons = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    assert report["clips"] == 4 and "nested 256 levels deep" in reasons["deep.bvh"]


# ---------------------------------------------------------------------------------------- bamm export

def test_export_garbage_target_is_one_line(tmp_path, capfd):
    pytest.importorskip("bpy")
    from model_core.cli import blender as cli_blender

    joints = tmp_path / "j.npy"
    np.save(joints, np.zeros((20, 22, 3), np.float32))
    target = tmp_path / "rig.fbx"
    target.write_bytes(os.urandom(4096))
    before = snapshot(tmp_path)
    assert cli_blender.main("export", [str(joints), "--out", str(tmp_path / "o.bvh"), "--target", str(target)]) == 2
    err = capfd.readouterr().err.strip()
    assert "Traceback" not in err and err.splitlines()[-1] == \
        f"bamm export: error: Target {target} is not a FBX file (its header does not match)"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("seconds, message", [
    (float("nan"), "seconds must be a finite number > 0, got nan"),
    (float("inf"), "seconds must be a finite number > 0, got inf"),
    (10.0, "10 s is over the model's limit of 9.8 s"),
    (0.0, "seconds must be a finite number > 0"),
])
def test_headless_length_goes_through_the_contract(seconds, message):
    bpy = pytest.importorskip("bpy")
    from bamm_blender import headless
    from bamm_blender.errors import BammInputError

    class NoBackend:
        def submit(self, request):
            raise AssertionError("a bad request reached the backend")

    engine = headless.Engine(NoBackend(), {"weights": str(SHIPPED)})
    with pytest.raises(BammInputError) as caught:
        headless.start_generate(bpy.context, prompt="a person walks", seconds=seconds, engine=engine)
    assert message in str(caught.value)
