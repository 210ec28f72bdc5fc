"""`OrtNets`: the `nets.Nets` interface over a runtime folder (`runtime/export.py`), run by ONNX Runtime.

numpy + onnxruntime only (plus tokenizers for the text encoder): this is what the Blender extension runs.

    from model_core.decoding.generate import Generator
    from model_core.runtime.ort_nets import load_runtime
    motions = Generator(load_runtime("runtime")).generate("a person walks forward")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..decoding.nets import Nets, NetsConfig

RUNTIME_FORMAT = 1
DEVICES = ("auto", "cpu", "gpu", "cuda", "directml", "coreml")
GPU_PROVIDERS = {"cuda": "CUDAExecutionProvider", "directml": "DmlExecutionProvider",
                 "coreml": "CoreMLExecutionProvider"}


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for `device`: auto / gpu take the first available of CUDA, DirectML, CoreML, then
    the CPU; cpu the CPU only; cuda / directml / coreml that provider (an error if absent) then the CPU."""
    device = str(device).lower()
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device in GPU_PROVIDERS:
        if GPU_PROVIDERS[device] not in available:
            raise ValueError(f"device {device!r} needs ONNX Runtime's {GPU_PROVIDERS[device]}, which this "
                             f"onnxruntime build lacks (it has {available})")
        return [GPU_PROVIDERS[device], "CPUExecutionProvider"]
    gpus = [p for p in GPU_PROVIDERS.values() if p in available] if device in ("auto", "gpu") else []
    return gpus[:1] + ["CPUExecutionProvider"]


def read_runtime_info(folder: Path) -> dict:
    path = folder / "runtime.json"
    if not path.is_file():
        raise FileNotFoundError(f"no BAMM runtime in '{folder}' (runtime.json not found)")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(info, dict) or info.get("format_version") != RUNTIME_FORMAT:
        raise ValueError(f"{path}: expected runtime format {RUNTIME_FORMAT}, got "
                         f"{info.get('format_version') if isinstance(info, dict) else info!r}")
    return info


class OrtNets(Nets):
    """The exported graphs in ONNX Runtime sessions. text_encoder: None = the folder's own (OrtTextEncoder),
    or any object with ``encode(list[str]) -> (B, D)``."""

    def __init__(self, folder, *, device: str = "auto", threads: int | None = None, text_encoder=None):
        import onnxruntime as ort

        self.folder = Path(folder)
        info = read_runtime_info(self.folder)
        self.info = info
        self.config = NetsConfig.from_json(info.get("nets"), where=str(self.folder / "runtime.json"))
        self.providers = choose_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.sessions = {}
        for name, file in info["graphs"].items():
            path = self.folder / file
            if not path.is_file():
                raise FileNotFoundError(f"runtime folder '{self.folder}' lacks {file}")
            self.sessions[name] = ort.InferenceSession(str(path), options, providers=self.providers)
        self.step_rows = "keys_0" in {i.name for i in self.sessions["step"].get_inputs()}
        with np.load(self.folder / "stats.npz") as stats:
            self.mean, self.std = stats["mean"].astype(np.float32), stats["std"].astype(np.float32)
        self.text_name = str(info.get("text_encoder"))
        self.text_encoder = text_encoder
        if text_encoder is None and info.get("text_files"):
            from .text_ort import OrtTextEncoder

            self.text_encoder = OrtTextEncoder(self.folder, providers=self.providers)
        if self.text_encoder is not None and getattr(self.text_encoder, "dim", self.config.text_dim) != \
                self.config.text_dim:
            raise ValueError(f"the text encoder gives {self.text_encoder.dim}-d embeddings; the runtime in "
                             f"'{self.folder}' reads {self.config.text_dim}-d ones")

    def _run(self, name: str, feeds: dict) -> list[np.ndarray]:
        return self.sessions[name].run(None, feeds)

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        if self.text_encoder is None:
            raise ValueError(f"the runtime in '{self.folder}' has no text encoder: pass one, or embeddings")
        return np.asarray(self.text_encoder.encode(list(prompts)), np.float32)

    def prefill(self, ids, text_emb, drop, allowed):
        logits, keys, values = self._run("prefill", {
            "ids": np.ascontiguousarray(ids, np.int64), "text_emb": np.ascontiguousarray(text_emb, np.float32),
            "drop": np.ascontiguousarray(drop, bool), "allowed": np.ascontiguousarray(allowed, bool)})
        return logits, (keys, values)

    def step(self, ids, pos, allowed, state):
        feeds = {"ids": np.ascontiguousarray(ids, np.int64), "pos": np.array(pos, np.int64),
                 "allowed": np.ascontiguousarray(allowed, bool)}
        keys, values = state
        if not self.step_rows:  # a graph of an earlier export: the whole cache in and out
            logits, keys, values = self._run("step", {**feeds, "keys": keys, "values": values})
            return logits, (keys, values)
        feeds.update({f"keys_{i}": keys[i] for i in range(len(keys))})
        feeds.update({f"values_{i}": values[i] for i in range(len(values))})
        logits, new_keys, new_values = self._run("step", feeds)
        keys, values = (a if a.flags.writeable else a.copy() for a in (keys, values))
        keys[:, :, :, pos:pos + ids.shape[1]] = new_keys
        values[:, :, :, pos:pos + ids.shape[1]] = new_values
        return logits, (keys, values)

    def residual_logits(self, codes, layer, text_emb, drop, valid):
        codes = np.ascontiguousarray(codes, np.int64)
        return self._run("residual", {
            "codes": codes, "layer": np.full(len(codes), layer, np.int64),
            "text_emb": np.ascontiguousarray(text_emb, np.float32), "drop": np.ascontiguousarray(drop, bool),
            "valid": np.ascontiguousarray(valid, bool)})[0]

    def vq_encode(self, features):
        if "vq_encode" not in self.sessions:
            raise ValueError(f"the model in '{self.folder}' has no motion encoder (its runtime.json lists no "
                             f"vq_encode graph): it can regenerate and extend only motions it made itself")
        return self._run("vq_encode", {"features": np.ascontiguousarray(features, np.float32)})[0].astype(np.int64)

    def vq_decode(self, codes):
        return self._run("vq_decode", {"codes": np.ascontiguousarray(codes, np.int64)})[0]


def load_runtime(folder, device: str = "auto", *, threads: int | None = None, text_encoder=None) -> OrtNets:
    """The nets of a runtime folder written by ``bamm export-runtime``. device: auto / gpu (CUDA, DirectML or
    CoreML when this onnxruntime has one, else the CPU), cpu, or a provider (cuda, directml, coreml);
    threads: ONNX Runtime's intra-op threads (None: its default)."""
    return OrtNets(folder, device=device, threads=threads, text_encoder=text_encoder)
