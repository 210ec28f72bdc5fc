"""The official architecture through the ONNX Runtime back end: an imported folder (random checkpoints in the
published layout) exports with `bamm export-runtime --no-text`, and the official profile gives the same tokens
and features through both back ends (the bundled runtime has no CLIP text encoder yet; embeddings come from
the caller)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from model_core.decoding.generate import BAMM, Generator  # noqa: E402
from model_core.official.importer import import_official  # noqa: E402
from model_core.runtime.ort_nets import load_runtime  # noqa: E402
from support.official_ckpt import FixedText, random_clip_file, write_official  # noqa: E402


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from model_core.runtime.export import export_runtime

    root = tmp_path_factory.mktemp("official-runtime")
    paths = write_official(root / "ckpt", seed=0, end_bias=1.0)
    import_official(t2m=paths["t2m"], res=paths["res"], vq=paths["vq"], out=root / "w")
    export_runtime(root / "w", root / "rt", text=False)
    torch_gen = BAMM.from_pretrained(root / "w", text_encoder=FixedText())
    ort_gen = Generator(load_runtime(root / "rt", "cpu", threads=1, text_encoder=FixedText(numpy=True)))
    return torch_gen, ort_gen


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_official_profile_is_token_identical_on_onnx_runtime(both, temperature):
    torch_gen, ort_gen = both
    a = torch_gen.generate(["a", "b"], temperature=temperature, seed=3, profile="official")
    b = ort_gen.generate(["a", "b"], temperature=temperature, seed=3, profile="official")
    for x, y in zip(a, b):
        assert np.array_equal(x.tokens, y.tokens)
        assert np.abs(x.features - y.features).max() < 1e-3


def test_imported_folder_with_clip_exports_a_complete_runtime(tmp_path):
    """With --clip the folder's runtime carries the CLIP text tower: prompts in, motions out, no torch
    encoder needed; its embeddings equal the torch encoder's."""
    from model_core.runtime.export import export_runtime

    paths = write_official(tmp_path / "ckpt", seed=0, end_bias=1.0)
    clip = random_clip_file(tmp_path / "ViT-B-32.pt")
    import_official(t2m=paths["t2m"], res=paths["res"], vq=paths["vq"], clip=clip, out=tmp_path / "w")
    export_runtime(tmp_path / "w", tmp_path / "rt")
    ort_gen = Generator(load_runtime(tmp_path / "rt", "cpu", threads=1))
    torch_gen = BAMM.from_pretrained(tmp_path / "w")
    prompts = ["a person walks forward", "someone  Jumps twice"]
    assert np.abs(ort_gen.encode_text(prompts) - torch_gen.encode_text(prompts)).max() < 1e-4
    motion = ort_gen.generate(prompts[0], seed=2, profile="official")[0]
    assert motion.frames == 4 * len(motion.tokens) and np.isfinite(motion.joints).all()

