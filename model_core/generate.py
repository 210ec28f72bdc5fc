"""The decoding API: prompt(s) -> motions, with numpy at the boundary and torch inside.

``BAMM`` bundles the text encoder, the RVQ-VAE tokenizer, the BAMM transformer (base token layer), the
residual transformer (layers 1..Q-1) and the dataset Mean/Std. Cascaded decoding (paper Sec. 3.3):

1. a unidirectional pass samples base tokens until [END] (the model picks the length), or, when ``frames``
   is given, a bidirectional pass with only the text and an [END] at that length visible;
2. ``rounds - 1`` bidirectional refinement passes re-predict part of the tokens with the rest visible;
3. the residual transformer fills layers 1..Q-1, the tokenizer decodes, features are de-normalised and turned
   into joints.

Guidance everywhere is ``(1 + s) * cond - s * uncond``. Editing (``edit``, ``extend``, ``generate_long``)
lives in ``editing.py``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .models.checkpoint import load_model, load_tensors, read_json_object, save_model, save_tensors
from .models.int8 import quantize_int8
from .models.residual import RES_PRESETS, ResidualConfig, ResidualTransformer
from .models.transformer import T2M_PRESETS, BAMMConfig, BAMMTransformer
from .models.vq import VQ_PRESETS, RVQVAE, RVQVAEConfig
from .motion import features as F

REFINE_MODES = ("every_other", "low_confidence", "suffix", "prefix")
FORMAT_VERSION = 1


@dataclass
class Motion:
    """One motion. joints (T, 22, 3) metres Y-up; features (T, 263) de-normalised; tokens (ceil(T/4), Q)."""

    joints: np.ndarray
    features: np.ndarray
    tokens: np.ndarray
    prompt: str | None = None
    fps: float = 20.0

    @property
    def frames(self) -> int:
        return len(self.joints)

    @property
    def seconds(self) -> float:
        return len(self.joints) / self.fps


class Progress:
    """Maps (stage, fraction of the stage) onto one overall fraction for the caller's callback."""

    def __init__(self, callback, weights: dict[str, float]):
        self.callback, self.start, total, acc = callback, {}, sum(weights.values()), 0.0
        self.weights = {k: w / total for k, w in weights.items()}
        for k, w in self.weights.items():
            self.start[k], acc = acc, acc + w

    def __call__(self, stage: str, fraction: float = 1.0) -> None:
        if self.callback is not None:
            self.callback(stage, min(1.0, self.start[stage] + self.weights[stage] * fraction))

    def stage(self, stage: str):
        return None if self.callback is None else (lambda f: self(stage, f))


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


def check_cfg(cfg) -> tuple[float, float]:
    if not isinstance(cfg, (tuple, list)) or len(cfg) != 2 or not all(is_number(s) for s in cfg):
        raise ValueError(f"cfg must be a pair of finite guidance scales (first pass, refinement), got {cfg!r}")
    return float(cfg[0]), float(cfg[1])


def check_sampling(temperature, top_k, res_cfg) -> None:
    if not is_number(res_cfg):
        raise ValueError(f"res_cfg must be a finite guidance scale, got {res_cfg!r}")
    if not is_number(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = most likely token), got {temperature!r}")
    if top_k is not None:
        check_positive_int(top_k, "top_k")


def refine_keep(mode: str, round_: int, lengths: torch.Tensor, conf: torch.Tensor | None, n: int) -> torch.Tensor:
    """(B, n) bool: tokens kept (visible) in refinement round `round_` (1 = the first refinement).
    conf (B, n): probability of each token when sampled (only "low_confidence" uses it)."""
    slot = torch.arange(n, device=lengths.device)[None]
    valid = slot < lengths[:, None]
    half = torch.div(lengths + 1, 2, rounding_mode="floor")[:, None]  # re-predicted tokens, at least 1
    if mode == "every_other":  # even tokens first (the official static mask), odd ones next round
        redo = (slot % 2) == ((round_ - 1) % 2)
    elif mode == "low_confidence":
        rank = conf.masked_fill(~valid, float("inf")).argsort(1).argsort(1)
        redo = rank < half
    elif mode == "suffix":
        redo = slot >= lengths[:, None] - half
    else:  # "prefix": the first half, what the official code's tied-score ranking ends up masking
        redo = slot < half
    return ~(redo & valid)


class BAMM:
    """Text encoder + tokenizer + BAMM transformer + residual transformer + Mean/Std, on one device."""

    def __init__(self, *, text_encoder, vq: RVQVAE, t2m: BAMMTransformer, res: ResidualTransformer,
                 mean, std, fps: float = 20.0, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.text_encoder = text_encoder.to(self.device)
        self.vq, self.t2m, self.res = (m.to(self.device).eval() for m in (vq, t2m, res))
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(np.asarray(std), dtype=torch.float32, device=self.device)
        self.fps = float(fps)
        self.int8 = False
        q = vq.config.num_quantizers
        for what, got, want in [("BAMM transformer code_num", t2m.config.code_num, vq.config.code_num),
                                ("residual code_num", res.config.code_num, vq.config.code_num),
                                ("residual num_quantizers", res.config.num_quantizers, q),
                                ("BAMM transformer text_dim", t2m.config.text_dim, text_encoder.dim),
                                ("residual text_dim", res.config.text_dim, text_encoder.dim),
                                ("mean size", self.mean.numel(), vq.config.input_dim),
                                ("std size", self.std.numel(), vq.config.input_dim)]:
            if got != want:
                raise ValueError(f"{what} is {got}, expected {want} (the models do not belong together)")
        if res.config.max_tokens < t2m.config.max_tokens - 1:
            raise ValueError(f"residual max_tokens {res.config.max_tokens} is shorter than the BAMM transformer's "
                             f"{t2m.config.max_tokens - 1} motion tokens")

    # ------------------------------------------------------------------------------------ construction

    @property
    def max_tokens(self) -> int:
        """Most motion tokens in one pass (the BAMM transformer's context less [END])."""
        return self.t2m.config.max_tokens - 1

    @property
    def max_frames(self) -> int:
        return self.max_tokens * self.vq.config.frames_per_token

    def quantize_int8(self) -> "BAMM":
        """Switch both token transformers to int8 linear layers (CPU only, in place; see models/int8.py).

        Decoding of the paper-size model gets about 1.8x faster on a CPU; tokens then differ from float32 ones
        as with any change of arithmetic (same seed -> same output still holds). Not reversible: load again
        for float32."""
        if not self.int8:
            quantize_int8(self.t2m)
            quantize_int8(self.res)
            self.int8 = True
        return self

    @classmethod
    def from_pretrained(cls, weights_dir, *, text_encoder=None, device: str = "cpu", int8: bool = False) -> "BAMM":
        """Load a weights folder: bamm.json, vq/t2m/res .safetensors + .json, stats.safetensors.

        text_encoder: None = the spec in bamm.json, a spec string ("minilm", "minilm-lexical", "clip:/path"), or
        an encoder giving embeddings of the size the weights were trained on.
        int8: decode with int8 token transformers (CPU; `quantize_int8`)."""
        from .models.text import load_text_encoder

        root = Path(weights_dir)
        meta_path = root / "bamm.json"
        meta = read_json_object(meta_path, what=f"weights folder {root}: bamm.json")
        if not isinstance(meta.get("text_encoder"), str):
            raise ValueError(f"{meta_path}: expected an object with a 'text_encoder' string")
        if text_encoder is None or isinstance(text_encoder, str):
            text_encoder = load_text_encoder(text_encoder or meta["text_encoder"], device=device)
        stats = load_tensors(root / "stats.safetensors")
        if set(stats) != {"mean", "std"}:
            raise ValueError(f"{root / 'stats.safetensors'}: expected tensors 'mean' and 'std', got {sorted(stats)}")
        t2m = load_model(BAMMTransformer, BAMMConfig, root, "t2m")
        if t2m.config.text_dim != text_encoder.dim:
            raise ValueError(f"{root} was trained with the text encoder '{meta['text_encoder']}' "
                             f"({t2m.config.text_dim}-d); '{text_encoder.name}' gives {text_encoder.dim}-d "
                             "embeddings: leave the text encoder override empty to use the weights' own")
        model = cls(text_encoder=text_encoder, vq=load_model(RVQVAE, RVQVAEConfig, root, "vq"), t2m=t2m,
                    res=load_model(ResidualTransformer, ResidualConfig, root, "res"),
                    mean=stats["mean"], std=stats["std"], fps=float(meta.get("fps", 20.0)), device=device)
        return model.quantize_int8() if int8 else model

    def save_pretrained(self, weights_dir, *, text_encoder_spec: str | None = None) -> Path:
        """Write the weights folder read by `from_pretrained`. Returns its bamm.json path."""
        if self.int8:
            raise ValueError("int8 models are inference-only copies; save the float32 model instead")
        root = Path(weights_dir)
        root.mkdir(parents=True, exist_ok=True)
        for name, model in (("vq", self.vq), ("t2m", self.t2m), ("res", self.res)):
            save_model(model, model.config, root, name)
        save_tensors(root / "stats.safetensors", {"mean": self.mean, "std": self.std})
        meta = {"format_version": FORMAT_VERSION, "text_encoder": text_encoder_spec or self.text_encoder.name,
                "fps": self.fps, "frames_per_token": self.vq.config.frames_per_token,
                "max_frames": self.max_frames}
        (root / "bamm.json").write_text(json.dumps(meta, indent=2) + "\n")
        return root / "bamm.json"

    @classmethod
    def random(cls, *, preset: str = "tiny", text_encoder="minilm", seed: int = 0, device: str = "cpu") -> "BAMM":
        """Untrained models of a preset ("paper", "small", "tiny"), Mean 0 / Std 1: for tests and benchmarks."""
        from .models.text import load_text_encoder

        if preset not in T2M_PRESETS or preset not in VQ_PRESETS or preset not in RES_PRESETS:
            raise ValueError(f"preset must be one of {sorted(T2M_PRESETS)}, got {preset!r}")
        if isinstance(text_encoder, str):
            text_encoder = load_text_encoder(text_encoder, device=device)
        vq_cfg = VQ_PRESETS[preset]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            vq = RVQVAE(vq_cfg)
            for i in range(vq_cfg.num_quantizers):  # codebooks start empty; give them distinct random codes
                vq.quantizer.layers[i].initialise(torch.randn(vq_cfg.code_num, vq_cfg.code_dim) / (i + 1))
            t2m = BAMMTransformer(dataclasses.replace(T2M_PRESETS[preset], code_num=vq_cfg.code_num,
                                                      text_dim=text_encoder.dim))
            res = ResidualTransformer(dataclasses.replace(RES_PRESETS[preset], code_num=vq_cfg.code_num,
                                                          num_quantizers=vq_cfg.num_quantizers,
                                                          text_dim=text_encoder.dim))
        dim = vq_cfg.input_dim
        return cls(text_encoder=text_encoder, vq=vq, t2m=t2m, res=res, mean=np.zeros(dim, np.float32),
                   std=np.ones(dim, np.float32), device=device)

    # ------------------------------------------------------------------------------------ building blocks

    def generator(self, seed: int) -> torch.Generator:
        check_positive_int(seed, "seed", 0)
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return self.text_encoder.encode(list(prompts)).to(self.device, torch.float32)

    def residual(self, base: torch.Tensor, lengths: torch.Tensor, text_emb: torch.Tensor | None, *,
                 cfg_scale: float, temperature: float, top_k, generator, keep_codes=None, keep_mask=None):
        """Layers 1..Q-1 for base codes (B, N). text_emb None: the residual's null condition (guidance -1
        turns ``(1 + s) cond - s uncond`` into the unconditional logits alone)."""
        if text_emb is None:
            text_emb, cfg_scale = torch.zeros(len(base), self.res.config.text_dim, device=self.device), -1.0
        return self.res.generate(base, text_emb, lengths, cfg_scale=cfg_scale, temperature=temperature,
                                 top_k=top_k, generator=generator, keep_codes=keep_codes, keep_mask=keep_mask)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """codes (N, Q) of one motion -> (features (4N, 263) de-normalised, joints (4N, 22, 3)), float32."""
        feats = F.denormalize(self.vq.decode(codes[None].to(self.device))[0], self.mean, self.std)
        feats = feats.float().cpu().numpy()
        return feats, F.recover_from_ric(feats)

    def features_to_codes(self, feats: np.ndarray) -> torch.Tensor:
        """De-normalised features (T, 263) -> codes (ceil(T/4), Q); the last frame is repeated to fill a token."""
        f = self.vq.config.frames_per_token
        n = -(-len(feats) // f)
        feats = np.concatenate([feats, np.repeat(feats[-1:], n * f - len(feats), 0)], 0)
        x = F.normalize(torch.as_tensor(feats, dtype=torch.float32, device=self.device), self.mean, self.std)
        return self.vq.encode(x[None])[0]

    @torch.no_grad()
    def sample_base(self, text_emb: torch.Tensor | None, lengths: torch.Tensor | None, *, batch: int, cfg,
                    refine, rounds: int, temperature: float, top_k, generator, progress: Progress,
                    use_cache: bool = True):
        """Cascaded base-token decoding. lengths (B,) tokens or None (the model ends each motion).
        Returns codes (B, N) (0 past each length) and lengths (B,). use_cache False recomputes the whole
        sequence at every step (same result, for benchmarks)."""
        if lengths is None:
            ids, lengths, conf = self.t2m.generate_ar(text_emb, batch=batch, cfg_scale=cfg[0],
                                                      temperature=temperature, top_k=top_k, generator=generator,
                                                      use_cache=use_cache, progress=progress.stage("tokens"))
            n = int(lengths.max())
            codes, conf = ids[:, :n].clamp(max=self.t2m.config.code_num - 1), conf[:, :n]
            codes = codes.masked_fill(torch.arange(n, device=self.device)[None] >= lengths[:, None], 0)
        else:
            n = int(lengths.max())
            codes = torch.zeros(batch, n, dtype=torch.long, device=self.device)
            keep = torch.zeros(batch, n, dtype=torch.bool, device=self.device)
            codes, conf = self.t2m.generate_masked(codes, lengths, keep, text_emb, cfg_scale=cfg[0],
                                                   temperature=temperature, top_k=top_k, generator=generator,
                                                   use_cache=use_cache, progress=progress.stage("tokens"))
        passes = rounds - 1 if refine is not None else 0
        for r in range(1, passes + 1):
            keep = refine_keep(refine, r, lengths, conf, n)
            report = None if progress.callback is None else (lambda f, r=r: progress("refine", (r - 1 + f) / passes))
            codes, new_conf = self.t2m.generate_masked(
                codes, lengths, keep, text_emb, cfg_scale=cfg[1], temperature=temperature, top_k=top_k,
                generator=generator, use_cache=use_cache, progress=report)
            conf = torch.where(keep, conf, new_conf)
        return codes, lengths

    # ------------------------------------------------------------------------------------ public API

    def generate(self, prompts: str | list[str], *, frames: int | None = None, n: int = 1, seed: int = 0,
                 cfg: tuple[float, float] = (4.0, 3.0), refine: str | None = "every_other", rounds: int = 2,
                 temperature: float = 1.0, top_k: int | None = None, res_cfg: float = 4.0,
                 progress=None) -> list[Motion]:
        """Motions for one prompt or a list, `n` each, prompt-major (len(prompts) * n results), one batch.

        frames: None lets the model end each motion ([END], 1..max_frames / 4 tokens); an int asks for that
        many frames (rounded down to a multiple of 4). cfg: guidance of the first pass and of the refinement
        passes; res_cfg: of the residual layers. refine: which tokens the refinement passes re-predict
        ("every_other", "low_confidence", "suffix", "prefix"; None: no refinement); rounds: total token passes.
        temperature 0 or top_k=1 picks the most likely tokens. Same seed, same device -> same motions.
        progress(stage, fraction) is called during decoding (fraction: overall, 0..1); an exception raised
        from it aborts the call.
        """
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise ValueError(f"prompts must be a non-empty string or list of strings, got {prompts!r}")
        for i, p in enumerate(prompts):
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"prompts[{i}] must be a non-empty string, got {p!r}")
        n = check_positive_int(n, "n")
        rounds = check_positive_int(rounds, "rounds")
        cfg = check_cfg(cfg)
        check_sampling(temperature, top_k, res_cfg)
        if refine is not None and refine not in REFINE_MODES:
            raise ValueError(f"refine must be one of {REFINE_MODES} or None, got {refine!r}")
        batch = len(prompts) * n
        lengths = None
        if frames is not None:
            f = self.vq.config.frames_per_token
            frames = check_positive_int(frames, "frames")
            if not f <= frames <= self.max_frames:
                raise ValueError(f"frames must be in [{f}, {self.max_frames}] for these weights, got {frames}")
            lengths = torch.full((batch,), frames // f, dtype=torch.long, device=self.device)
        gen = self.generator(seed)
        prog = Progress(progress, {"text": 1, "tokens": 6, "refine": 3 * (rounds > 1 and refine is not None),
                                   "residual": 2, "decode": 1})
        prog("text", 0.0)
        text_emb = self.encode_text(prompts).repeat_interleave(n, 0)
        prog("text", 1.0)
        codes, lengths = self.sample_base(text_emb, lengths, batch=batch, cfg=cfg, refine=refine, rounds=rounds,
                                          temperature=temperature, top_k=top_k, generator=gen, progress=prog)
        codes = self.residual(codes, lengths, text_emb, cfg_scale=res_cfg, temperature=temperature, top_k=top_k,
                              generator=gen)
        prog("residual", 1.0)
        motions = []
        for i in range(batch):
            tokens = codes[i, :int(lengths[i])]
            feats, joints = self.decode(tokens)
            motions.append(Motion(joints=joints, features=feats, tokens=tokens.cpu().numpy(),
                                  prompt=prompts[i // n], fps=self.fps))
            prog("decode", (i + 1) / batch)
        return motions

    def edit(self, source, frames: tuple[int, int], prompt: str | None = None, **kwargs) -> Motion:
        """Regenerate frames [start, end) of `source` (Motion or joints (T, 22, 3)); see `editing.edit`."""
        from .editing import edit
        return edit(self, source, frames, prompt, **kwargs)

    def extend(self, source, *, before_s: float = 0.0, after_s: float = 0.0, prompt: str | None = None,
               **kwargs) -> Motion:
        """Add generated seconds before and/or after `source`; see `editing.extend`."""
        from .editing import extend
        return extend(self, source, before_s=before_s, after_s=after_s, prompt=prompt, **kwargs)

    def generate_long(self, segments, **kwargs) -> Motion:
        """One motion from [(prompt, frames or None), ...] segments joined by regenerated transitions."""
        from .editing import generate_long
        return generate_long(self, segments, **kwargs)
