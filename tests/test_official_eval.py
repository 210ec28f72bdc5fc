"""HumanML3D's official evaluator: file layout, loading, tokens, motion inputs and the protocol end to end.

The official weights are not redistributable, so a folder of the official layout is built with randomly
initialised networks of the official shapes, saved the way the released ``finest.tar`` is (a dict of state
dicts plus epoch/iter), tiny GloVe files and random statistics.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from model_core.data.humanml3d import Caption
from model_core.data.pos_tags import tokens_string
from model_core.eval import official as off
from model_core.eval.cli import main as eval_main
from model_core.eval.official import OfficialEvaluator, OfficialEvaluatorError
from support.tiny_dataset import write_tiny_dataset

WORDS = ["unk", "sos", "eos", "a", "the", "person", "man", "walk", "run", "wave", "left", "hand", "slowly",
         "forward", "and", "then", "turn", "around", "jump", "kick"]

# Every parameter of the released networks (HumanML3D, 263-d features), as read from the reference code.
OFFICIAL_SHAPES = {
    "movement_encoder": {"main.0.weight": (512, 259, 4), "main.0.bias": (512,), "main.3.weight": (512, 512, 4),
                         "main.3.bias": (512,), "out_net.weight": (512, 512), "out_net.bias": (512,)},
    "motion_encoder": {"input_emb.weight": (1024, 512), "input_emb.bias": (1024,),
                       **{f"gru.{k}_l0{s}": (3072, 1024) for k in ("weight_ih", "weight_hh") for s in ("", "_reverse")},
                       **{f"gru.{k}_l0{s}": (3072,) for k in ("bias_ih", "bias_hh") for s in ("", "_reverse")},
                       "output_net.0.weight": (1024, 2048), "output_net.0.bias": (1024,),
                       "output_net.1.weight": (1024,), "output_net.1.bias": (1024,),
                       "output_net.3.weight": (512, 1024), "output_net.3.bias": (512,), "hidden": (2, 1, 1024)},
    "text_encoder": {"pos_emb.weight": (300, 15), "pos_emb.bias": (300,), "input_emb.weight": (512, 300),
                     "input_emb.bias": (512,),
                     **{f"gru.{k}_l0{s}": (1536, 512) for k in ("weight_ih", "weight_hh") for s in ("", "_reverse")},
                     **{f"gru.{k}_l0{s}": (1536,) for k in ("bias_ih", "bias_hh") for s in ("", "_reverse")},
                     "output_net.0.weight": (512, 1024), "output_net.0.bias": (512,),
                     "output_net.1.weight": (512,), "output_net.1.bias": (512,),
                     "output_net.3.weight": (512, 512), "output_net.3.bias": (512,), "hidden": (2, 1, 512)},
}


def write_glove(folder, words=WORDS, seed=0):
    (folder / "glove").mkdir(parents=True, exist_ok=True)
    np.save(folder / off.VECTORS, np.random.default_rng(seed).normal(size=(len(words), 300)))
    np.save(folder / off.WORDS, np.array(words))


def write_fake_official(folder, *, dim_pose=263, seed=0):
    torch.manual_seed(seed)
    nets = {"text_encoder": off.TextEncoderBiGRUCo(),
            "movement_encoder": off.MovementConvEncoder(input_size=dim_pose - 4),
            "motion_encoder": off.MotionEncoderBiGRUCo()}
    (folder / off.CHECKPOINT).parent.mkdir(parents=True)
    torch.save({**{k: n.state_dict() for k, n in nets.items()}, "epoch": 7, "iter": 1234}, folder / off.CHECKPOINT)
    (folder / off.MEAN).parent.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    np.save(folder / off.MEAN, rng.normal(size=dim_pose).astype(np.float32))
    np.save(folder / off.STD, rng.uniform(0.5, 1.5, dim_pose).astype(np.float32))
    write_glove(folder, seed=seed)
    return folder


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory):
    return write_fake_official(tmp_path_factory.mktemp("t2m"))


@pytest.fixture(scope="module")
def judge(official_dir):
    return OfficialEvaluator.load(official_dir)


def caption(tokens: str) -> Caption:
    return Caption(text=" ".join(t.split("/")[0] for t in tokens.split()), start_frame=0, end_frame=40, tokens=tokens)


def motion(frames, seed=0):
    return np.random.default_rng(seed).normal(size=(frames, 263)).astype(np.float32)


@pytest.mark.parametrize("part", sorted(OFFICIAL_SHAPES))
def test_networks_have_the_official_parameter_names_and_shapes(judge, part):
    state = getattr(judge, part).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == OFFICIAL_SHAPES[part]


def test_loads_and_embeds_to_512(judge):
    assert len(judge.words) == len(WORDS) and judge.dim_pose == 263
    assert not judge.motion_encoder.training and not judge.text_encoder.training
    m = judge.embed_motion([motion(40), motion(64, seed=1), motion(196, seed=2)])
    t = judge.embed_text([caption("a/DET person/NOUN walk/VERB"), "a man runs forward"])
    assert m.shape == (3, 512) and t.shape == (2, 512)
    assert np.isfinite(m).all() and np.isfinite(t).all()
    assert np.abs(t[0] - t[1]).max() > 1e-3  # different sentences, different embeddings


def test_unknown_words_map_to_unk_with_pos_other(judge):
    vec, pos = judge.words.lookup("zebra/NOUN")
    assert np.array_equal(vec, judge.words.vectors[WORDS.index("unk")])
    assert off.POS_CATEGORIES[pos] == "OTHER"
    a, b = judge.embed_text([caption("a/DET zebra/NOUN walk/VERB"), caption("a/DET giraffe/NOUN walk/VERB")])
    np.testing.assert_allclose(a, b, atol=1e-6)
    c = judge.embed_text([caption("a/DET man/NOUN walk/VERB")])[0]
    assert np.abs(a - c).max() > 1e-3


@pytest.mark.parametrize("token, category", [("left/ADJ", "Loc_VIP"), ("hand/NOUN", "Body_VIP"),
                                             ("walk/NOUN", "Act_VIP"), ("slowly/ADV", "Desc_VIP"),
                                             ("person/NOUN", "NOUN"), ("and/CCONJ", "OTHER"), ("man", "OTHER")])
def test_part_of_speech_categories(judge, token, category):
    _, pos = judge.words.lookup(token)
    assert off.POS_CATEGORIES[pos] == category


def test_sentences_are_wrapped_in_sos_eos_and_cut_to_20_tokens(judge):
    vecs, onehot, length = judge.words.encode(["a/DET", "man/NOUN"])
    assert vecs.shape == (22, 300) and onehot.shape == (22, 15) and length == 4
    assert np.array_equal(vecs[0], judge.words.vectors[WORDS.index("sos")])
    assert np.array_equal(vecs[3], judge.words.vectors[WORDS.index("eos")])
    assert np.array_equal(vecs[4:], np.repeat(judge.words.vectors[WORDS.index("unk")][None], 18, 0))
    words = [f"{w}/NOUN" for w in WORDS[3:]] * 2  # 34 tokens
    assert judge.words.encode(words)[2] == 22
    long_, first20, first19 = judge.embed_text([caption(" ".join(words)), caption(" ".join(words[:20])),
                                                caption(" ".join(words[:19]))])
    np.testing.assert_allclose(long_, first20, atol=1e-6)
    assert np.abs(first20 - first19).max() > 1e-3


def test_plain_string_captions_are_tagged_with_our_tagger(judge):
    text = "a man walks forward slowly"
    a, b = judge.embed_text([text, Caption(text=text, start_frame=0, end_frame=1, tokens=tokens_string(text))])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_foot_contact_dims_are_dropped(judge):
    x = motion(60)
    changed_contacts, changed_root = x.copy(), x.copy()
    changed_contacts[:, -4:] += 3.0
    changed_root[:, 0] += 3.0
    base, contacts, root = judge.embed_motion([x, changed_contacts, changed_root])
    np.testing.assert_allclose(base, contacts, atol=1e-5)
    assert np.abs(base - root).max() > 1e-3


def test_motion_is_normalised_with_the_evaluators_statistics(judge):
    z = motion(48)
    raw = z * judge.std + judge.mean
    x = torch.zeros(1, off.MAX_MOTION_FRAMES, 263)
    x[0, :48] = torch.from_numpy(z)
    expected = judge.encode_motion(x, torch.tensor([48])).numpy()
    np.testing.assert_allclose(judge.embed_motion([raw]), expected, atol=1e-5)


def test_lengths_are_cut_to_multiples_of_4_and_batches_do_not_matter(judge):
    a, b, long_ = motion(50), motion(72, seed=1), motion(220, seed=2)
    alone = judge.embed_motion([a])[0]
    np.testing.assert_allclose(judge.embed_motion([a[:48]])[0], alone, atol=1e-5)  # 50 frames -> 48
    batched = judge.embed_motion([b, a, long_])
    np.testing.assert_allclose(batched[1], alone, atol=1e-5)
    np.testing.assert_allclose(batched[2], judge.embed_motion([long_])[0], atol=1e-5)
    assert np.abs(judge.embed_motion([a[:44]])[0] - alone).max() > 1e-3


@pytest.mark.parametrize("missing", off.REQUIRED_FILES)
def test_missing_file_is_named(tmp_path, missing):
    for name in off.REQUIRED_FILES:
        if name != missing:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b"")
    with pytest.raises(OfficialEvaluatorError, match=f"lacks: {re.escape(missing)}$"):
        OfficialEvaluator.load(tmp_path)


def test_pickled_words_file_gives_a_clear_error(tmp_path):
    write_glove(tmp_path)
    np.save(tmp_path / off.WORDS, np.array(WORDS + [None], dtype=object), allow_pickle=True)
    with pytest.raises(OfficialEvaluatorError, match="our_vab_words.npy: the word list is stored as pickled"):
        off.load_word_vectors(tmp_path)


def test_released_pickle_words_file_is_not_read_but_explained(tmp_path):
    write_glove(tmp_path)
    (tmp_path / off.WORDS).rename(tmp_path / "glove" / "our_vab_words.pkl")
    with pytest.raises(OfficialEvaluatorError, match=r"lacks: .*glove/our_vab_words.npy; .*pkl is a pickle"):
        off.check_folder(tmp_path)


@pytest.mark.parametrize("words, message", [(["xyz"] + WORDS[1:], "no 'unk' word"), (WORDS[:5], "5 words but vectors")])
def test_bad_vocabulary_is_reported(tmp_path, words, message):
    write_glove(tmp_path)
    np.save(tmp_path / off.WORDS, np.array(words))
    with pytest.raises(OfficialEvaluatorError, match=message):
        off.load_word_vectors(tmp_path)


def test_checkpoint_of_other_feature_size_is_reported(official_dir, tmp_path):
    (tmp_path / off.CHECKPOINT).parent.mkdir(parents=True)
    (tmp_path / off.CHECKPOINT).symlink_to(official_dir / off.CHECKPOINT)
    (tmp_path / off.MEAN).parent.mkdir(parents=True)
    np.save(tmp_path / off.MEAN, np.zeros(251, np.float32))  # KIT-ML statistics with the HumanML3D networks
    np.save(tmp_path / off.STD, np.ones(251, np.float32))
    write_glove(tmp_path)
    with pytest.raises(OfficialEvaluatorError, match="'movement_encoder' does not fit .* 251-d"):
        OfficialEvaluator.load(tmp_path)


def test_cli_names_missing_official_files(tmp_path):
    for name in ("data", "w", "t2m"):
        (tmp_path / name).mkdir()
    with pytest.raises(SystemExit, match="lacks: text_mot_match/model/finest.tar, Comp_v6_KLD01/meta/mean.npy"):
        eval_main("eval", ["--data", str(tmp_path / "data"), "--weights", str(tmp_path / "w"),
                           "--official", str(tmp_path / "t2m")])


def test_official_samples_and_crops():
    from model_core.data.humanml3d import Clip

    whole = Caption(text="a man walks", start_frame=0, end_frame=120)
    part = Caption(text="a man turns", start_frame=20, end_frame=70)
    short = Caption(text="a man jumps", start_frame=0, end_frame=30)
    clips = [Clip(id="a", features=motion(120), captions=[whole, part, short]),
             Clip(id="b", features=motion(30), captions=[Caption(text="x", start_frame=0, end_frame=30)]),
             Clip(id="c", features=motion(250), captions=[Caption(text="y", start_frame=0, end_frame=250)])]
    samples = off.official_samples(clips)
    assert [(s.id, len(s.features), [c.text for c in s.captions]) for s in samples] == [
        ("a@20", 50, ["a man turns"]), ("a", 120, ["a man walks"])]
    rng = np.random.default_rng(0)
    lengths = {len(off.crop_for_eval(motion(50), rng)) for _ in range(60)}
    assert lengths == {44, 48}


@pytest.fixture(scope="module")
def hml_like_data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data"), n_train=8, n_val=1, n_test=36, min_frames=40,
                              max_frames=64)


def write_random_classifier(folder, contents, styles):
    """Our evaluator folder with untrained networks (the accuracy numbers are not under test here)."""
    import json

    from model_core.eval.evaluator import EvaluatorConfig, MatchingEvaluator, MotionClassifier
    from model_core.models.checkpoint import save_tensors

    config = EvaluatorConfig(n_contents=len(contents), n_styles=len(styles))
    for name, cls in (("evaluator", MatchingEvaluator), ("classifier", MotionClassifier)):
        save_tensors(folder / f"{name}.safetensors", cls(config).state_dict())
        (folder / f"{name}.json").write_text(json.dumps(config.to_dict()))
    (folder / "labels.json").write_text(json.dumps({"contents": contents, "styles": styles}))
    return folder


def test_protocol_end_to_end_with_the_official_evaluator(hml_like_data, judge, official_dir, tmp_path):
    from model_core.decoding.generate import BAMM
    from model_core.eval.protocol import evaluate, format_table

    bamm = BAMM.random(preset="tiny", text_encoder="minilm", seed=0)
    logs = []
    results = evaluate(bamm, hml_like_data, None, official=judge, repeats=1, mm_prompts=2, mm_samples=2,
                       log=logs.append)
    for name in ["FID", "R-precision top-1", "R-precision top-3 (real)", "MM-Dist", "MM-Dist (real)", "Diversity",
                 "Diversity (real)", "Multimodality"]:
        assert len(results[name]) == 1 and np.isfinite(results[name]).all(), name
    top = [results[f"R-precision top-{k} (real)"][0] for k in (1, 2, 3)]
    assert 0.0 <= top[0] <= top[1] <= top[2] <= 1.0
    assert results["MM-Dist (real)"][0] > 0 and results["Diversity (real)"][0] > 0
    assert "Action accuracy" not in results and any("accuracy skipped" in m for m in logs)
    assert "official evaluator" in logs[-1]
    # with our evaluator folder the action/style classifier still runs; a folder path loads the official one
    ours = write_random_classifier(tmp_path, ["walks", "runs", "jumps", "waves"], ["slowly", "quickly", "happily"])
    results = evaluate(bamm, hml_like_data, ours, official=official_dir, repeats=1, mm_prompts=0, log=lambda m: None)
    for name in ["Action accuracy", "Action accuracy (real)", "Style accuracy", "Style accuracy (real)"]:
        assert 0.0 <= results[name][0] <= 1.0, name
    assert "Multimodality" not in results
    assert "R-precision top-1" in format_table(results)
