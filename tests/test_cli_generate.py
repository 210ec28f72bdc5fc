"""`bamm generate` / `bamm edit` end to end on a tiny random model saved as a weights folder."""

import numpy as np
import pytest
from PIL import Image

from model_core.cli import CLIError
from model_core.cli import main as bamm
from model_core.cli.generate import parse_range
from model_core.motion.bvh import forward_kinematics, read_bvh
from model_core.motion.skeleton import JOINT_NAMES


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from model_core.decoding.generate import BAMM

    folder = tmp_path_factory.mktemp("weights")
    BAMM.random(preset="tiny", text_encoder="minilm", seed=0).save_pretrained(folder)
    return folder


def test_generate_writes_joints_bvh_and_previews(weights, tmp_path, capsys):
    out = tmp_path / "out"
    rc = bamm(["generate", "a person walks forward", "--seconds", "2", "--weights", str(weights),
               "--out", str(out), "--no-fbx"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "40 frames = 2.00 s (requested)" in printed
    joints = np.load(out / "a_person_walks_forward.npy")
    assert joints.shape == (40, 22, 3) and np.isfinite(joints).all()
    clip = read_bvh(out / "a_person_walks_forward.bvh")
    assert clip.n_frames == 40 and clip.fps == pytest.approx(20.0)
    assert sorted(clip.skeleton.names) == sorted(JOINT_NAMES)
    # an untrained model's bone lengths wobble, which a BVH cannot hold: the root path must still be exact
    # (real clips round-trip joint for joint: tests/test_smpl_bvh.py)
    pelvis = forward_kinematics(clip)[:, clip.skeleton.names.index("pelvis")]
    np.testing.assert_allclose(pelvis, joints[:, 0], atol=1e-5)
    gif = Image.open(out / "a_person_walks_forward.gif")
    assert gif.n_frames == 40
    assert Image.open(out / "a_person_walks_forward_filmstrip.png").size[0] > 240


def test_generate_variations_and_model_chosen_length(weights, tmp_path, capsys):
    rc = bamm(["generate", "someone waves", "--n", "2", "--weights", str(weights), "--out", str(tmp_path),
               "--no-fbx", "--no-preview"])
    assert rc == 0
    assert "chosen by the model" in capsys.readouterr().out
    a, b = np.load(tmp_path / "someone_waves_0.npy"), np.load(tmp_path / "someone_waves_1.npy")
    assert a.shape[1:] == (22, 3) and b.shape[1:] == (22, 3)


def test_edit_keeps_frames_outside_the_range(weights, tmp_path):
    src = tmp_path / "src.npy"
    bamm(["generate", "a person jumps", "--frames", "48", "--weights", str(weights), "--out", str(tmp_path),
          "--no-fbx", "--no-preview"])
    np.save(src, np.load(tmp_path / "a_person_jumps.npy"))
    rc = bamm(["edit", str(src), "a person kicks", "--range", "16:32", "--weights", str(weights),
               "--out", str(tmp_path), "--no-fbx", "--no-preview"])
    assert rc == 0
    before, after = np.load(src), np.load(tmp_path / "src_edit_16_32.npy")
    assert after.shape == before.shape
    np.testing.assert_array_equal(after[:16], before[:16])
    np.testing.assert_array_equal(after[32:], before[32:])


def test_edit_says_when_a_range_must_slide(weights, tmp_path, capsys):
    """A source walking 1.5 m/s through the range and a bow asked for there: one note on stderr."""
    src = tmp_path / "src.npy"
    joints = np.zeros((48, 22, 3), np.float32) + np.linspace(0, 1, 22, dtype=np.float32)[None, :, None]
    joints[..., 0] += np.arange(48, dtype=np.float32)[:, None] * 0.075
    np.save(src, joints)
    common = ["--range", "16:32", "--weights", str(weights), "--out", str(tmp_path), "--no-fbx", "--no-preview"]
    assert bamm(["edit", str(src), "a person bows", *common]) == 0
    err = capsys.readouterr().err
    assert err.count("note: the animation travels") == 1 and "slides" in err
    assert bamm(["edit", str(src), "a person waves", *common, "--overwrite"]) == 0
    assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["generate", "   "], "prompt is empty"),
    (["generate", "walk", "--n", "0"], "n must be an integer in [1, 32]"),
    (["generate", "walk", "--frames", "2"], "frames must be an integer in [4, "),
    (["generate", "walk", "--frames", "4000"], "frames"),
    (["generate", "walk", "--weights", "/nonexistent/weights"], "no weights"),
    (["generate", "walk", "--int8", "--device", "cuda"], "--int8 runs on the CPU only"),
    (["generate", "walk", "--profile", "paper"], "profile must be one of bamm, official, got 'paper'"),
])
def test_generate_bad_input_is_a_clear_error(weights, tmp_path, capsys, argv, message):
    if "--weights" not in argv:
        argv = argv + ["--weights", str(weights)]
    assert bamm(argv + ["--out", str(tmp_path), "--no-fbx"]) == 2
    assert message in capsys.readouterr().err


def test_generate_profile_official(weights, tmp_path, capsys, monkeypatch):
    """--profile official decodes as `Generator.generate(profile="official")`; a bad profile is refused before
    the model loads."""
    from model_core.cli import generate as cli_generate
    from model_core.decoding.generate import BAMM

    argv = ["generate", "a person jumps", "--frames", "40", "--seed", "3", "--weights", str(weights), "--no-fbx",
            "--no-preview"]
    assert bamm(argv + ["--profile", "official", "--out", str(tmp_path / "official")]) == 0
    assert bamm(argv + ["--out", str(tmp_path / "bamm")]) == 0
    official = np.load(tmp_path / "official" / "a_person_jumps.npy")
    (want,) = BAMM.from_pretrained(weights).generate("a person jumps", frames=40, seed=3, profile="official")
    np.testing.assert_array_equal(official, want.joints)
    assert not np.array_equal(official, np.load(tmp_path / "bamm" / "a_person_jumps.npy"))
    capsys.readouterr()

    def no_load(_args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli_generate, "load_model", no_load)
    assert bamm(argv + ["--profile", "Official", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "profile must be one of bamm, official, got 'Official'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_edit_bad_input(weights, tmp_path, capsys):
    src = tmp_path / "m.npy"
    np.save(src, np.zeros((40, 22, 3), np.float32))
    for rng, message in [("30:10", "empty or reversed"), ("0:80", "outside the clip"), ("10:12", "at least 4"),
                         ("a:b", "must look like")]:
        assert bamm(["edit", str(src), "--range", rng, "--weights", str(weights), "--no-fbx"]) == 2
        assert message in capsys.readouterr().err
    assert bamm(["edit", str(tmp_path / "missing.npy"), "--range", "0:8", "--weights", str(weights)]) == 2
    assert "not found" in capsys.readouterr().err


def test_parse_range_seconds_and_frames():
    assert parse_range("1.0s:2.5s") == (20, 50)
    assert parse_range("4:40") == (4, 40)
    assert parse_range("2s:1s") == (40, 20)  # reversed: the request contract refuses it
    for text in ("2s-1s", "inf:4", "-4:8", "1e9:2"):
        with pytest.raises(CLIError):
            parse_range(text)


@pytest.mark.parametrize("prompt, stem", [
    ("A person walks forward!", "a_person_walks_forward"),
    ("an elderly person walks forward and waves with the right hand", "an_elderly_person_walks_forward_and_waves_with"),
])
def test_output_names_follow_the_prompt_and_end_on_a_word(prompt, stem):
    from model_core.cli.common import slugify

    assert slugify(prompt) == stem


def test_prompts_without_latin_words_get_distinct_names():
    from model_core.cli.common import slugify

    names = {slugify(p) for p in ("一个人向前走", "一个人跳起来", "человек бежит", "???")}
    assert len(names) == 4 and all(n.startswith("motion_") for n in names)
