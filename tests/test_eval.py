"""Evaluator training and the evaluation protocol end to end on a tiny labelled dataset."""

import json
from collections import defaultdict

import numpy as np
import pytest

from model_core.eval.cli import main as eval_main
from model_core.data.captions import evaluation_captions, training_caption_pool
from model_core.eval import protocol
from model_core.eval.protocol import PHRASINGS, evaluate, format_table, pick_captions
from model_core.eval.train_evaluator import load_evaluator, train_evaluator
from model_core.motion.features import recover_from_ric
from support.tiny_dataset import write_tiny_dataset

CONTENTS = ["walk", "run", "wave-left-hand", "raise-up-both-hands"]
STYLES = ["normal", "elderly"]


@pytest.fixture(scope="module")
def labelled_data(tmp_path_factory):
    root = write_tiny_dataset(tmp_path_factory.mktemp("data"), n_train=24, n_val=2, n_test=32,
                              min_frames=40, max_frames=64)
    rows = [json.loads(line) for line in (root / "meta.jsonl").read_text().splitlines()]
    for k, row in enumerate(rows):  # labels the caption generator knows
        row["content"], row["style"] = CONTENTS[k % 4], STYLES[(k // 4) % 2]
    (root / "meta.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def evaluator_dir(labelled_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluator")
    train_evaluator(labelled_data, out, steps=30, batch_size=16, log_every=1000)
    return out


def test_evaluator_files_are_safetensors_and_json_and_load(evaluator_dir):
    names = sorted(p.name for p in evaluator_dir.iterdir())
    assert names == ["classifier.json", "classifier.safetensors", "evaluator.json", "evaluator.safetensors",
                     "labels.json"]
    matcher, classifier, labels = load_evaluator(evaluator_dir)
    assert labels["contents"] == sorted(CONTENTS)
    assert labels["styles"] == sorted(STYLES)
    assert not matcher.training and not classifier.training


def test_evaluator_training_separates_actions(labelled_data, tmp_path):
    """After training, the classifier beats chance on its own training clips (real learning happened)."""
    from model_core.data.humanml3d import load_split, load_stats
    from model_core.eval.protocol import classify

    train_evaluator(labelled_data, tmp_path, steps=60, batch_size=24, log_every=1000)
    _, classifier, labels = load_evaluator(tmp_path)
    mean, std = load_stats(labelled_data)
    clips = load_split(labelled_data, "train")
    feats = [((c.features - mean) / std).astype(np.float32) for c in clips]
    content, _ = classify(classifier, feats)
    truth = np.array([labels["contents"].index(c.meta["content"]) for c in clips])
    assert (content == truth).mean() > 0.5  # 4 classes: chance is 0.25


def test_protocol_reports_every_metric_with_real_references(labelled_data, evaluator_dir, minilm_bamm):
    results = evaluate(minilm_bamm, labelled_data, evaluator_dir, repeats=2, mm_prompts=2, mm_samples=2,
                       log=lambda m: None)
    for name in ["FID", "FID real-vs-real (halves)", "R-precision top-1", "R-precision top-3 (real)", "MM-Dist",
                 "Diversity", "Multimodality", "Action accuracy", "Style accuracy (real)"]:
        assert len(results[name]) == 2 and np.isfinite(results[name]).all(), name
    top = [np.mean(results[f"R-precision top-{k}"]) for k in (1, 2, 3)]
    assert top[0] <= top[1] <= top[2] <= 1.0
    table = format_table(results, title="tiny")
    assert "R-precision top-1" in table and "± 95% CI" in table


def test_protocol_predicted_length_reports_length_error(labelled_data, evaluator_dir, minilm_bamm):
    results = evaluate(minilm_bamm, labelled_data, evaluator_dir, repeats=1, length="predicted",
                       mm_prompts=0, log=lambda m: None)
    assert results["Length MAE (frames)"][0] >= 0
    assert any(k.startswith("Length MAE walk") for k in results)


@pytest.mark.parametrize("phrasings", PHRASINGS)
def test_captions_come_from_the_asked_wording(phrasings):
    clips = [protocol.TestClip(f"c{k}", np.zeros((8, 263), np.float32), CONTENTS[k % 4], STYLES[k % 2]) for k in range(12)]
    for repeat in range(3):
        caps = pick_captions(clips, repeat, phrasings)
        for clip, cap in zip(clips, caps):
            held_out = cap in evaluation_captions(clip.content, clip.style)
            seen = cap in training_caption_pool(clip.content, clip.style)
            assert (held_out, seen) == ((True, False) if phrasings == "held-out" else (False, True)), cap
    assert pick_captions(clips, 0, phrasings) != pick_captions(clips, 1, phrasings)


def test_protocol_with_training_phrasings_and_bad_phrasings(labelled_data, evaluator_dir, minilm_bamm):
    results = evaluate(minilm_bamm, labelled_data, evaluator_dir, repeats=1, mm_prompts=0, phrasings="training",
                       log=lambda m: None)
    assert 0.0 <= results["Action accuracy"][0] <= 1.0
    with pytest.raises(ValueError, match="phrasings must be one of"):
        evaluate(minilm_bamm, labelled_data, evaluator_dir, repeats=1, phrasings="seen")


def test_protocol_decodes_with_the_asked_guidance(labelled_data, evaluator_dir, minilm_bamm, monkeypatch):
    seen = []
    generate = minilm_bamm.generate

    def recording(*args, **kwargs):
        seen.append((kwargs.get("cfg"), kwargs.get("res_cfg")))
        return generate(*args, **kwargs)

    monkeypatch.setattr(minilm_bamm, "generate", recording)
    evaluate(minilm_bamm, labelled_data, evaluator_dir, repeats=1, mm_prompts=1, mm_samples=2,
             decoding={"cfg": (2.0, 1.0), "res_cfg": 0.5}, log=lambda m: None)
    assert len(seen) >= 2 and set(seen) == {((2.0, 1.0), 0.5)}  # the clips and the multimodality samples
    seen.clear()
    evaluate(minilm_bamm, labelled_data, evaluator_dir, repeats=1, mm_prompts=0, log=lambda m: None)
    assert set(seen) == {(None, None)}  # nothing asked: the generator's own defaults


@pytest.mark.parametrize("argv, message", [
    (["--cfg", "-1", "3"], "cfg (guidance) must be"),
    (["--cfg", "4", "nan"], "cfg (refine guidance) must be"),
    (["--res-cfg", "1e9"], "res_cfg must be"),
])
def test_eval_cli_rejects_bad_guidance_in_one_line(labelled_data, evaluator_dir, minilm_bamm, tmp_path, argv,
                                                    message):
    import shutil

    weights = tmp_path / "weights"
    minilm_bamm.save_pretrained(weights)
    shutil.copytree(evaluator_dir, weights / "evaluator")
    with pytest.raises(SystemExit) as exc:
        eval_main("eval", ["--data", str(labelled_data), "--weights", str(weights), *argv])
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_eval_cli_errors_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit, match="dataset folder not found"):
        eval_main("eval", ["--data", str(tmp_path / "missing"), "--weights", str(tmp_path)])
    (tmp_path / "data").mkdir()
    with pytest.raises(SystemExit, match="no evaluator"):
        eval_main("eval", ["--data", str(tmp_path / "data"), "--weights", str(tmp_path)])


@pytest.fixture(scope="module")
def minilm_bamm():
    from model_core.decoding.generate import BAMM

    return BAMM.random(preset="tiny", text_encoder="minilm", seed=0)


def test_protocol_embeds_captions_with_the_evaluators_encoder(labelled_data, evaluator_dir):
    """A model reading another text encoder (768-d) is judged by the 384-d MiniLM matcher it was not built for:
    the captions reach the matcher through the evaluator's own encoder, named in its labels.json."""
    from model_core.decoding.generate import BAMM

    assert load_evaluator(evaluator_dir)[2]["text_encoder"] == "minilm"
    lexical = BAMM.random(preset="tiny", text_encoder="minilm-lexical", seed=0)
    assert lexical.text_encoder.dim == 768
    results = evaluate(lexical, labelled_data, evaluator_dir, repeats=1, mm_prompts=0, log=lambda m: None)
    assert np.isfinite(results["MM-Dist"][0]) and 0.0 <= results["R-precision top-1"][0] <= 1.0


def test_protocol_reports_dynamics_of_real_reconstructed_and_generated(labelled_data, evaluator_dir, minilm_bamm):
    from model_core.data.humanml3d import load_split
    from model_core.eval import dynamics

    results = evaluate(minilm_bamm, labelled_data, evaluator_dir, repeats=2, mm_prompts=0, log=lambda m: None)
    real_joints = [recover_from_ric(c.features) for c in load_split(labelled_data, "test")]
    real = dynamics.set_dynamics(real_joints)
    for name, _ in dynamics.METRICS:
        assert results[f"Dynamics {name} (real)"] == pytest.approx([real[name]] * 2, rel=1e-4), name
        gen, rec = results[f"Dynamics {name} (generated)"], results[f"Dynamics {name} (reconstruction)"]
        assert np.isfinite(gen).all() and np.isfinite(rec).all()
        assert results[f"Dynamics {name} (generated/real)"] == pytest.approx(np.array(gen) / real[name]), name
    assert results["Dynamics acceleration (generated)"][0] != results["Dynamics acceleration (generated)"][1]
    # walk and run clips are directed locomotion: the real share is that of the real clips
    contents = [c.meta["content"] for c in load_split(labelled_data, "test")]
    assert results["Direction match (real)"][0] == pytest.approx(dynamics.direction_matches(real_joints, contents)[0])
    assert 0.0 <= results["Direction match"][0] <= 1.0
    table = format_table(results)
    assert "dynamics (median over clips" in table and "mean joint acceleration (m/s²)" in table
    assert "Dynamics acceleration (real)" not in table


@pytest.mark.parametrize("frames", [40, 43])
def test_reconstruction_keeps_each_clip_length(minilm_bamm, frames):
    feats = np.random.default_rng(frames).normal(size=(frames, 263)).astype(np.float32)
    (joints,) = protocol.reconstruct_joints(minilm_bamm, [feats], np.zeros(263, np.float32), np.ones(263, np.float32))
    assert joints.shape == (frames, 22, 3) and np.isfinite(joints).all()


@pytest.mark.parametrize("predicted, verdict", [
    ([0, 0, 0, 1, 1, 1], "separates"),      # walk clips -> walk, walk-back clips -> walk-back
    ([0, 0, 0, 0, 0, 1], "does not separate"),  # two walk-back clips taken for walks
    ([0, 0, 0, -1, -1, -1], "never swaps"),  # walk-back clips taken for runs
])
def test_walk_confusion_rows_and_verdict(predicted, verdict):
    contents = ["run", "walk", "walk-back"]
    truth = np.array([1, 1, 1, 2, 2, 2])
    pred = np.array(predicted) + 1
    results, lines = defaultdict(list), []
    protocol.walk_confusion(results, pred, truth, contents, lines.append)
    back_right = float((pred[3:] == 2).mean())
    assert results["Classifier walk-back -> walk-back (real)"] == [pytest.approx(back_right)]
    assert results["Classifier walk-back -> walk (real)"] == [pytest.approx(float((pred[3:] == 1).mean()))]
    assert results["Classifier walk -> walk (real)"] == [1.0]
    assert verdict in lines[-1] and ("WARNING" in lines[-1]) is (verdict != "separates")
    if verdict == "never swaps":
        assert "3 -> run" in lines[-2]


def test_walk_confusion_is_skipped_without_both_labels():
    results, lines = defaultdict(list), []
    protocol.walk_confusion(results, np.array([0, 1]), np.array([0, 1]), ["run", "walk"], lines.append)
    assert not results and "skipped" in lines[0]
    protocol.walk_confusion(results, np.array([1, 1]), np.array([1, 1]), ["run", "walk", "walk-back"], lines.append)
    assert not results and "no real walk-back clip" in lines[-1]


def test_confusion_matrix_counts_and_errors():
    from model_core.eval.metrics import confusion_matrix

    table = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, -1]), 3)
    assert table.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match="class ids"):
        confusion_matrix(np.array([3]), np.array([0]), 3)


def test_eval_cli_prints_the_dynamics_table(labelled_data, evaluator_dir, minilm_bamm, tmp_path, capsys):
    import shutil

    weights = tmp_path / "weights"
    minilm_bamm.save_pretrained(weights)
    shutil.copytree(evaluator_dir, weights / "evaluator")
    out_json = tmp_path / "all.json"
    assert eval_main("eval", ["--data", str(labelled_data), "--weights", str(weights), "--repeats", "1",
                              "--mm-prompts", "0", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "FID" in out and "dynamics (median over clips" in out and "Direction match (real)" in out
    saved = json.loads(out_json.read_text())["rounds=2, length=gt"]
    assert len(saved["Dynamics foot_skate (generated/real)"]) == 1
