"""`bamm generate` with several actions: the plan printed, --show-plan, --plan <file>, one-line errors."""

import json

import numpy as np
import pytest

from model_core.cli import main as bamm


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from model_core.decoding.generate import BAMM

    folder = tmp_path_factory.mktemp("weights")
    BAMM.random(preset="tiny", text_encoder="minilm", seed=0).save_pretrained(folder)
    return folder


def test_show_plan_writes_editable_json(capsys):
    assert bamm(["generate", "an old man walks forward while waving, then bows", "--show-plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["person"] == "an old man"
    assert [(s["prompt"], s["together"]) for s in plan["steps"]] == [
        ("an old man walks forward", "an old man waves"), ("an old man bows", None)]


def test_plan_file_sets_each_steps_length(weights, tmp_path, capsys):
    plan = {"steps": [{"prompt": "a man walks forward", "seconds": 2.0, "together": "a man raises both hands"},
                      {"prompt": "a man bows", "seconds": 1.2}]}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    rc = bamm(["generate", "--plan", str(path), "--weights", str(weights), "--out", str(tmp_path), "--no-fbx",
               "--no-preview"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "1. a man walks forward  [locomotion, 2 s]" in printed and "+ at once: a man raises both hands" in printed
    assert "64 frames = 3.20 s (steps start at 2.00 s)" in printed
    joints = np.load(tmp_path / "a_man_walks_forward_a_man_bows.npy")
    assert joints.shape == (64, 22, 3) and np.isfinite(joints).all()


def test_a_prompt_naming_two_actions_prints_its_plan(weights, tmp_path, capsys):
    rc = bamm(["generate", "a person waves, then runs off", "--weights", str(weights), "--out", str(tmp_path),
               "--no-fbx", "--no-preview", "--n", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "plan: 2 step(s)" in out and "1. a person waves" in out and "2. a person runs off" in out
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["a_person_waves_then_runs_off_0.npy",
                                                              "a_person_waves_then_runs_off_1.npy"]


def test_seconds_of_a_one_step_plan(weights, tmp_path, capsys):
    rc = bamm(["generate", "a man jogs with both hands up", "--seconds", "2.4", "--weights", str(weights), "--out",
               str(tmp_path), "--no-fbx", "--no-preview"])
    assert rc == 0 and "48 frames = 2.40 s" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--plan", "missing.json"], "plan file not found"),
    (["--plan", "{bad}"], "not valid JSON"),
    (["a man walks, then bows", "--seconds", "3"], "give each step's seconds in a plan file"),
    (["a man walks while waving", "--seconds", "30"], "30 s is over the model's limit of 3.2 s (64 frames)"),
    (["a man walks, then bows", "--profile", "official"], "a plan (several actions) uses the bamm profile"),
])
def test_bad_plan_input_is_one_line(weights, tmp_path, capsys, extra, message):
    if "{bad}" in extra:
        (tmp_path / "bad.json").write_text("{bad")
        extra = ["--plan", str(tmp_path / "bad.json")]
    rc = bamm(["generate", *extra, "--weights", str(weights), "--out", str(tmp_path), "--no-fbx", "--no-preview"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.npy"))
