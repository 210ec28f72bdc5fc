"""`bamm vocab` and the vocabulary line of `bamm generate` (one generation on the shipped weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_core import vocabulary
from model_core.cli import main as bamm

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
LINE = ("not in this model's vocabulary: 'sits', 'chair'; closest: 'bow', 'walk'; "
        "for everyday motions import the published HumanML3D model, see README")


@pytest.mark.parametrize("prompt, expected", [
    ("a person sits down on a chair", {"in_vocabulary": False, "unrecognised": ["sits", "chair"],
                                       "closest": ["bow", "walk"]}),
    ("a person does a cartwheel", {"in_vocabulary": False, "unrecognised": ["cartwheel"]}),
    ("an old man walks forward and waves", {"in_vocabulary": True, "unrecognised": [], "closest": []}),
])
def test_vocab_json(prompt, expected, capsys):
    assert bamm(["vocab", prompt, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {k: found[k] for k in expected} == expected
    assert set(found) >= {"in_vocabulary", "unrecognised", "closest"}


def test_vocab_text_list_and_bad_input(tmp_path, capsys):
    assert bamm(["vocab", "a person sits down on a chair"]) == 0
    assert capsys.readouterr().out.strip() == LINE
    assert bamm(["vocab", "a person walks"]) == 0
    assert capsys.readouterr().out.strip() == "in this model's vocabulary: 'walks'"
    assert bamm(["vocab", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "actions: bow, bye, byebye" in listed and "not known motion: sit" in listed
    assert bamm(["vocab"]) == 2
    assert "give a prompt" in capsys.readouterr().err
    assert bamm(["vocab", "sits", "--weights", str(tmp_path)]) == 2
    assert "no weights in" in capsys.readouterr().err
    (tmp_path / "bamm.json").write_text(json.dumps({"text_encoder": "minilm"}))
    (tmp_path / "vocab.json").write_text('{"format_version": 1, "actions": ["walk"]}')
    assert bamm(["vocab", "sits", "--weights", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a readable vocabulary ('actions' must map names to lists of words)" in err
    assert len(err.strip().splitlines()) == 1


def test_vocab_of_an_imported_published_model_and_write(tmp_path, capsys):
    published = tmp_path / "published"
    published.mkdir()
    (published / "bamm.json").write_text(json.dumps({"text_encoder": "clip"}))
    assert bamm(["vocab", "a person sits down on a chair", "--weights", str(published), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"in_vocabulary": True, "unrecognised": [], "closest": [],
                                                   "recognised": [], "note": vocabulary.OPEN_NOTE}
    assert bamm(["vocab", "--write", "--weights", str(published)]) == 2
    assert "give --data" in capsys.readouterr().err
    older = tmp_path / "older"
    older.mkdir()
    shutil.copy(WEIGHTS / "bamm.json", older / "bamm.json")
    assert bamm(["vocab", "--write", "--weights", str(older)]) == 0
    assert (older / "vocab.json").read_bytes() == (WEIGHTS / "vocab.json").read_bytes()


def test_generate_warns_and_still_generates_unless_strict(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["generate", "a person sits down on a chair", "--seconds", "1", "--out", str(out), "--no-fbx",
            "--no-preview"]
    assert bamm(argv + ["--strict"]) == 2  # before a model is loaded
    err = capsys.readouterr().err.strip()
    assert err == f"bamm generate: {LINE} (--strict)" and not out.exists()
    assert bamm(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == f"warning: {LINE}"
    joints = np.load(out / "a_person_sits_down_on_a_chair.npy")
    assert joints.shape == (20, 22, 3) and np.isfinite(joints).all()
    assert bamm(["generate", "a person walks forward, then bows", "--show-plan", "--strict"]) == 0
    assert capsys.readouterr().err == ""
