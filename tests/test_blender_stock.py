"""The extension as a user gets it: stock Blender's Python (a virtual environment holding only the ``bpy`` wheel:
numpy, no torch, no scipy), the Linux zip installed with Blender's own installer into an isolated user folder,
enabled, and the add-on's operators pressed with default preferences: Generate, Regenerate Range, Extend,
Retarget onto a Mixamo-named rig, Export FBX (re-imported), then Regenerate Range and Extend on that character.

One scenario per bpy version (``$BAMM_STOCK_BPY``, comma-separated; default 5.0.1 on Python 3.11 and 5.2.3 on
Python 3.13; ``make blender-min`` runs 4.2.23) in a subprocess (``tests/support/stock_scenario.py``); each test
reads one part of its report. Environments are made on first use under ``.cache/bpy-venvs`` (about a minute
each); a bpy version whose Python is not installed is skipped with the reason.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

pytest.importorskip("bpy")  # the build runs Blender's blender_ext.py from the development environment's bpy
pytest.importorskip("onnx")  # writes the probe graph

from support import stock_blender  # noqa: E402

VERSIONS = [v.strip() for v in os.environ.get("BAMM_STOCK_BPY", ",".join(stock_blender.DEFAULT_VERSIONS)).split(",")
            if v.strip()]
SECONDS, EXTEND_SECONDS, MODEL_FPS = 2.0, 1.0, 20.0  # stock_scenario.py's defaults


@pytest.fixture(scope="module", params=VERSIONS)
def report(request, linux_zip, tmp_path_factory):
    try:
        python = stock_blender.stock_python(request.param)
    except stock_blender.StockUnavailable as e:
        pytest.skip(str(e))
    result = stock_blender.run_scenario(python, linux_zip, tmp_path_factory.mktemp(f"stock-{request.param}"))
    assert result["returncode"] == 0 and result["steps"], result["output"]
    result["version"] = request.param
    return result


def ok(report, step: str) -> dict:
    out = report["steps"][step]
    assert out["ok"], f"{step}: {out.get('error') or out.get('skipped')}\n{report['output'][-2000:]}"
    return out


def span(first: float, model_frames: int, fps: float) -> float:
    """Last scene frame of ``model_frames`` 20-fps frames baked from scene frame ``first``."""
    return first + math.floor((model_frames - 1) * fps / MODEL_FPS + 1e-6)


def test_environment_is_stock_blender(report):
    assert report["findable"] == []  # neither torch nor scipy can be imported there at all
    assert report["blender"].split()[0] == report["version"]


def test_zip_installs_and_enables_in_the_user_folder(report):
    install = ok(report, "install")
    assert install["result"] == ["FINISHED"] and install["enabled"]
    assert all(install["operators"])
    assert Path(install["extension_dir"]) == Path(report["user"]) / "extensions" / "user_default" / "bamm"
    expected = {"__init__.py", "blender_manifest.toml", "bamm_blender", "model_core", "runtime", "wheels"}
    assert expected <= set(install["extension_files"])
    assert "weights" not in install["extension_files"]  # the runtime carries the model
    assert Path(install["site_packages"]).is_relative_to(report["user"])
    installed = {n for n in install["site_files"] if n != "__pycache__"}
    assert installed == {"onnxruntime", "onnxruntime-1.32.0.dist-info", "tokenizers", "tokenizers-0.23.3.dist-info"}


def test_bundled_wheels_run_without_their_declared_dependencies(report):
    probe = ok(report, "probe")
    assert (probe["onnxruntime"], probe["tokenizers"]) == ("1.32.0", "0.23.3")
    assert Path(probe["onnxruntime_file"]).is_relative_to(ok(report, "install")["site_packages"])
    assert probe["graph"] == [[9.0, 12.0]]  # [1, 1, 1] @ [[1, 2], [3, 4], [5, 6]]
    assert probe["tokens"] == [1, 2, 0]
    assert probe["declared_dependencies_imported"] == []


def test_generate_regenerate_extend_key_the_armature_in_range(report):
    generate = ok(report, "generate")
    keys, fps, start = generate["keys"], generate["fps"], generate["frame_start"]
    frames = int(round(SECONDS * MODEL_FPS))
    assert generate["result"] == ["FINISHED"] and keys["object"] == "BAMM Skeleton"
    assert keys["bones"] == 22 and keys["finite"]
    assert (keys["first"], keys["last"]) == (start, span(start, frames, fps))
    assert keys["keys_per_curve"] == [int(keys["last"] - keys["first"]) + 1]
    regenerate = ok(report, "regenerate")
    assert regenerate["result"] == ["FINISHED"] and regenerate["keys"]["action"] != keys["action"]
    assert (regenerate["keys"]["first"], regenerate["keys"]["last"]) == (keys["first"], keys["last"])
    assert regenerate["keys"]["finite"] and regenerate["keys"]["bones"] == 22
    extend = ok(report, "extend")
    added = int(round(EXTEND_SECONDS * MODEL_FPS / 4)) * 4  # whole tokens of 4 frames
    assert extend["result"] == ["FINISHED"] and extend["keys"]["finite"]
    assert (extend["keys"]["first"], extend["keys"]["last"]) == (start, span(start, frames + added, fps))


def test_retarget_onto_mixamo_rig_and_fbx_round_trip(report):
    retarget = ok(report, "retarget")
    source, rig = retarget["source"], retarget["keys"]
    assert retarget["result"] == ["FINISHED"] and rig["object"] == "Character"
    assert (rig["first"], rig["last"]) == (source["first"], source["last"])
    assert rig["bones"] >= 20 and rig["finite"]
    export = ok(report, "export")
    assert export["result"] == ["FINISHED"] and export["bytes"] > 10_000
    back = ok(report, "reimport")
    assert back["result"] == ["FINISHED"] and len(back["armatures"]) == 1
    assert {"mixamorig:Hips", "mixamorig:LeftUpLeg", "mixamorig:RightHand"} <= set(back["bone_names"])
    assert (back["keys"]["first"], back["keys"]["last"]) == (rig["first"], rig["last"]) and back["keys"]["finite"]


def test_regenerate_and_extend_on_a_mixamo_character(report):
    """The animator's own character (Mixamo names): Regenerate Range and Extend edit its action in place, every
    key outside the range (extension: of the old span) bit-identical."""
    regenerate = ok(report, "rig_regenerate")
    assert regenerate["result"] == ["FINISHED"] and regenerate["keys"]["object"] == "Character"
    assert regenerate["keys"]["action"] != regenerate["before"]["action"] and regenerate["keys"]["finite"]
    assert (regenerate["keys"]["first"], regenerate["keys"]["last"]) == (regenerate["before"]["first"],
                                                                         regenerate["before"]["last"])
    assert regenerate["outside_after"] == regenerate["outside_before"] and regenerate["inside_changed"]
    extend = ok(report, "rig_extend")
    added = int(round(EXTEND_SECONDS * MODEL_FPS / 4)) * 4
    before = extend["before"]
    assert extend["result"] == ["FINISHED"] and extend["keys"]["finite"]
    assert extend["keys"]["first"] == before["first"] and extend["keys"]["last"] > before["last"]
    assert extend["keys"]["last"] <= before["last"] + math.ceil(added * extend["fps"] / MODEL_FPS)
    assert extend["old_after"] == extend["old_before"]


def test_torch_and_scipy_never_imported(report):
    assert "install" in report["steps"] and "generate" in report["steps"]
    assert not {"torch", "scipy"} & set(report["imported"])
