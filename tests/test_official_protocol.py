"""`bamm eval --official` with imported official weights follows the published protocol by itself: the
official decoding profile and the model's own lengths (random weights; the numbers are not under test)."""

from __future__ import annotations

import pytest

from model_core.eval.cli import main as eval_main
from model_core.official.importer import import_official
from support.official_ckpt import random_clip_file, write_official
from support.tiny_dataset import write_tiny_dataset
from test_official_eval import write_fake_official


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("protocol")
    paths = write_official(root / "ckpt", seed=0, end_bias=1.0)
    clip = random_clip_file(root / "ViT-B-32.pt")
    import_official(t2m=paths["t2m"], res=paths["res"], vq=paths["vq"], clip=clip, out=root / "w")
    data = write_tiny_dataset(root / "data", n_train=4, n_val=1, n_test=32, min_frames=40, max_frames=64)
    return root / "w", data, write_fake_official(root / "evaluator")


@pytest.mark.parametrize("extra,want", [([], "decoding profile: official, length: predicted"),
                                        (["--profile", "bamm"], "decoding profile: bamm, length: gt")])
def test_eval_official_uses_the_official_profile_for_official_weights(setup, capsys, extra, want):
    weights, data, evaluator = setup
    code = eval_main("eval", ["--data", str(data), "--weights", str(weights), "--official", str(evaluator),
                              "--repeats", "1", "--mm-prompts", "0", *extra])
    out = capsys.readouterr().out
    assert code in (0, None) and want in out and "FID" in out
