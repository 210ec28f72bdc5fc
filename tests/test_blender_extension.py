"""The extension zips: validated and built by Blender's own tool (``bamm build-extension``, one zip per platform
with its own wheels, the size budget enforced), installed headless into an isolated user folder, enabled, and
used for a generation through the torch worker process. Stock Blender (no torch) is tests/test_blender_stock.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("bpy")  # only for blender_ext.py: this process never imports bpy here

from model_core.cli import blender as cli_blender  # noqa: E402
from model_core.cli import CLIError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

INSTALL_AND_GENERATE = textwrap.dedent('''
    import json, os, sys
    import bpy  # BLENDER_USER_RESOURCES is set by the parent: everything lands in its temporary folder

    zip_path, weights, out = sys.argv[1:4]
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                      enable_on_install=True)
    module = "bl_ext.user_default.bamm"
    report = {"install": sorted(result), "enabled": module in bpy.context.preferences.addons}
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.weights_dir, prefs.backend, prefs.python_path = weights, "WORKER", sys.executable
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.bamm.prompt, scene.bamm.length_mode, scene.bamm.seconds = "a person walks", "SECONDS", 2.0
    report["generate"] = sorted(bpy.ops.bamm.generate())
    obj = scene.bamm.target
    report["armature"] = obj.name
    report["action"] = obj.animation_data.action.name
    report["keys"] = len(obj.animation_data.action.layers[0].strips[0].channelbags[0].fcurves[0].keyframe_points)
    backend = sys.modules[module + ".bamm_blender.backend"]
    worker = next(iter(backend._BACKENDS.values()))
    report["worker_model_core"] = worker.ready.get("path")
    report["extension_dir"] = str(backend.EXTENSION_ROOT)
    report["exchange"] = str(worker.exchange)
    report["user_extensions"] = bpy.utils.user_resource("EXTENSIONS")
    bpy.ops.preferences.addon_disable(module=module)
    report["disabled"] = module not in bpy.context.preferences.addons
    report["worker_stopped"] = worker.process is None
    with open(out, "w") as f:
        json.dump(report, f)
''')


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    assert cli_blender.main("build-extension", ["--out", str(out)]) == 0
    (zip_path,) = out.glob("*.zip")
    return zip_path


def test_manifest_validates(capsys):
    assert cli_blender.main("build-extension", ["--validate-only"]) == 0
    assert "valid" in capsys.readouterr().out


def test_bad_manifest_is_reported(tmp_path, capsys):
    (tmp_path / "blender_manifest.toml").write_text('schema_version = "1.0.0"\nid = "bad__id"\n')
    assert cli_blender.main("build-extension", ["--validate-only", "--source", str(tmp_path)]) == 1
    assert "not valid" in capsys.readouterr().err


def test_bamm_export_writes_fbx_and_rejects_bad_input(hml_dir, tmp_path, capfd):
    import numpy as np

    joints = tmp_path / "clip.npy"
    np.save(joints, np.load(hml_dir / "new_joints" / "M010968.npy"))
    assert cli_blender.main("export", [str(joints), "--format", "fbx", "--out", str(tmp_path / "c.fbx")]) == 0
    assert (tmp_path / "c.fbx").stat().st_size > 10_000
    assert cli_blender.main("export", [str(tmp_path / "missing.npy"), "--format", "fbx",
                                       "--out", str(tmp_path / "m.fbx")]) == 2
    assert "does not exist" in capfd.readouterr().err
    assert not (tmp_path / "m.fbx").exists()


def test_zip_holds_the_extension_and_nothing_else(built):
    assert built.name.endswith("-linux_x64.zip")  # Blender's --split-platforms naming
    names = zipfile.ZipFile(built).namelist()
    for needed in ("blender_manifest.toml", "__init__.py", "bamm_blender/__init__.py", "bamm_blender/bake.py",
                   "model_core/__init__.py", "model_core/serving/worker.py", "model_core/motion/ik.py"):
        assert needed in names, needed
    wheels = sorted(n.split("/")[1] for n in names if n.startswith("wheels/"))
    assert [w.split("-")[0] for w in wheels] == ["onnxruntime", "onnxruntime", "tokenizers"]
    assert {w.split("-")[2] for w in wheels} == {"cp311", "cp313", "cp310"}  # tokenizers: one abi3 wheel
    assert all("linux" in w for w in wheels)
    manifest = tomllib.loads(zipfile.ZipFile(built).read("blender_manifest.toml").decode())
    assert manifest["build"]["generated"]["platforms"] == ["linux-x64"]
    assert sorted(w.rpartition("/")[2] for w in manifest["build"]["generated"]["wheels"]) == wheels
    for name in names:
        top = name.split("/")[0]
        assert top not in ("tests", "bench", "docs", ".venv", ".git", ".cache", "dist", "weights"), name
        assert "__pycache__" not in name and not name.endswith((".pyc", ".npy", ".safetensors")), name


def fake_wheels(cache: Path) -> None:
    """Empty files named like the real wheels of every platform, in the builder's cache layout."""
    tags = {"linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64.manylinux2014_x86_64"),
            "windows-x64": ("win_amd64", "win_amd64"), "macos-arm64": ("macosx_14_0_arm64", "macosx_11_0_arm64")}
    for platform, (ort_tag, tok_tag) in tags.items():
        for cp in ("cp311", "cp313"):
            folder = cache / platform / cp
            folder.mkdir(parents=True)
            (folder / f"onnxruntime-1.32.0-{cp}-{cp}-{ort_tag}.whl").write_bytes(b"")
            (folder / f"tokenizers-0.23.3-cp310-abi3-{tok_tag}.whl").write_bytes(b"")


@pytest.fixture
def fake_source(tmp_path):
    """A source checkout with junk beside the extension's parts, cached fake wheels and a fake runtime."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "blender_manifest.toml", source)
    shutil.copy(ROOT / "__init__.py", source)
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("bamm_blender", "model_core"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    junk = ["weights/t2m.safetensors", "weights/runs/t2m/last.pt", "tests/test_x.py", "bench/b.py", "docs/d.md",
            ".venv/bin/python", "data/x.npy", "model_core/__pycache__/x.pyc", ".pytest_cache/v", "dist/old.zip",
            "pyproject.toml", ".cache/wheels/x.whl"]
    for name in junk:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x")
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "runtime.json").write_text("{}")
    (runtime / "t2m_step.onnx").write_bytes(b"graph")
    fake_wheels(tmp_path / "wheels")
    return source, runtime, tmp_path / "wheels", junk


def test_split_platforms_carry_their_own_wheels(fake_source, tmp_path, capsys):
    source, runtime, wheels, junk = fake_source
    made = cli_blender.build_extension(source, tmp_path / "out", platforms=list(cli_blender.PLATFORMS),
                                       wheel_cache=wheels, runtime=runtime)
    assert sorted(p.name for p in made) == ["bamm-0.1.0-linux_x64.zip", "bamm-0.1.0-macos_arm64.zip",
                                            "bamm-0.1.0-windows_x64.zip"]
    printed = capsys.readouterr().out
    for path in made:
        platform = path.stem.rpartition("-")[2].replace("_", "-")
        names = set(zipfile.ZipFile(path).namelist())
        assert {"runtime/runtime.json", "runtime/t2m_step.onnx", "bamm_blender/__init__.py"} <= names
        assert not names & set(junk)
        wheels_in = sorted(n for n in names if n.startswith("wheels/"))
        assert len(wheels_in) == 3
        word = {"linux-x64": "linux", "windows-x64": "win_amd64", "macos-arm64": "macosx"}[platform]
        assert all(word in w for w in wheels_in), (platform, wheels_in)
        generated = tomllib.loads(zipfile.ZipFile(path).read("blender_manifest.toml").decode())["build"]["generated"]
        assert generated["platforms"] == [platform]
        assert sorted("wheels/" + w.rpartition("/")[2] for w in generated["wheels"]) == wheels_in
        assert f"{path.name}: " in printed and "wheels " in printed and "runtime " in printed


def test_over_budget_fails_and_leaves_no_zip(fake_source, tmp_path):
    source, runtime, wheels, _ = fake_source
    with pytest.raises(CLIError, match="over the 0.01 MB budget"):
        cli_blender.build_extension(source, tmp_path / "out", platforms=["windows-x64"], wheel_cache=wheels,
                                    runtime=runtime, budget_mb=0.01)
    assert not list((tmp_path / "out").glob("*.zip"))


@pytest.mark.parametrize("platforms, message", [(["amiga-m68k"], "unknown platform"),
                                                (["linux-x64", "beos"], "unknown platform")])
def test_unknown_platform_is_refused(fake_source, tmp_path, platforms, message):
    source, runtime, wheels, _ = fake_source
    with pytest.raises(CLIError, match=message):
        cli_blender.build_extension(source, tmp_path / "out", platforms=platforms, wheel_cache=wheels, runtime=runtime)


@pytest.mark.parametrize("argv, message", [(["--all", "--platform", "linux-x64"], "not both"),
                                           (["--budget-mb", "0"], "must be positive")])
def test_bad_build_options_are_one_line_errors(argv, message, capsys):
    assert cli_blender.main("build-extension", argv) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_manifest_must_not_set_what_the_builder_writes(fake_source, tmp_path):
    source, runtime, wheels, _ = fake_source
    text = (source / "blender_manifest.toml").read_text()
    text = text.replace('type = "add-on"', 'type = "add-on"\nplatforms = ["linux-x64"]')
    (source / "blender_manifest.toml").write_text(text)
    with pytest.raises(CLIError, match="sets 'platforms'"):
        cli_blender.build_extension(source, tmp_path / "out", platforms=["linux-x64"], wheel_cache=wheels,
                                    runtime=runtime)


def test_install_enable_generate_disable(built, tmp_path):
    from model_core.decoding.generate import BAMM

    weights = tmp_path / "weights"
    BAMM.random(preset="tiny", text_encoder="minilm", seed=0).save_pretrained(weights, text_encoder_spec="minilm")
    script, out = tmp_path / "install.py", tmp_path / "report.json"
    script.write_text(INSTALL_AND_GENERATE)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, str(script), str(built), str(weights), str(out)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["install"] == ["FINISHED"] and report["enabled"]
    assert report["generate"] == ["FINISHED"]
    assert report["armature"] == "BAMM Skeleton" and report["action"].startswith("BAMM generate")
    assert report["keys"] == int(39 * 24 / 20) + 1  # 2 s at 20 fps, baked at the scene's 24 fps
    user = Path(report["user_extensions"])
    assert user.is_relative_to(tmp_path / "user")
    installed = Path(report["extension_dir"])
    assert installed == user / "user_default" / "bamm"
    assert Path(report["worker_model_core"]) == installed / "model_core"  # PYTHONPATH = the extension folder
    assert Path(report["exchange"]).is_relative_to(tmp_path / "user")  # extension_path_user
    assert report["disabled"] and report["worker_stopped"]


def test_runtime_cache_key_follows_weights_code_and_text_storage(fake_source, tmp_path):
    source = fake_source[0]
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "bamm.json").write_text('{"text_encoder": "minilm"}')
    (weights / "t2m.safetensors").write_bytes(b"1234")
    key = cli_blender.runtime_key(source, weights, "float16")
    assert key == cli_blender.runtime_key(source, weights, "float16")
    assert key != cli_blender.runtime_key(source, weights, "float32")
    (weights / "MODEL_CARD.md").write_text("notes")  # not read by the export
    assert key == cli_blender.runtime_key(source, weights, "float16")
    (weights / "t2m.safetensors").write_bytes(b"1235")
    changed = cli_blender.runtime_key(source, weights, "float16")
    assert changed != key
    (source / "model_core" / "runtime" / "export.py").write_text("# edited\n")
    assert cli_blender.runtime_key(source, weights, "float16") != changed


def test_checkout_without_exporter_builds_without_runtime(fake_source, tmp_path, capsys):
    source, _, wheels, _ = fake_source
    (source / "model_core" / "runtime" / "export.py").unlink()
    (made,) = cli_blender.build_extension(source, tmp_path / "out", platforms=["linux-x64"], wheel_cache=wheels)
    assert "carries no runtime/" in capsys.readouterr().out
    assert not any(n.startswith("runtime/") for n in zipfile.ZipFile(made).namelist())
