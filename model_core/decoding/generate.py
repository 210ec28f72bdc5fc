"""The decoding API: prompt(s) -> motions, numpy at the boundary, the back end behind `nets.Nets`.

`Generator(nets)` is the public API over any back end: `generate`, `edit`, `extend`, `generate_long`, all
through the one decoding loop of `loop.py` (paper Sec. 3.3):

1. a unidirectional pass samples base tokens until [END] (the model picks the length), or, when ``frames``
   is given, a bidirectional pass with only the text and an [END] at that length visible;
2. ``rounds - 1`` bidirectional refinement passes re-predict part of the tokens with the rest visible;
3. the residual transformer fills layers 1..Q-1, the tokenizer decodes, features are de-normalised and turned
   into joints.

Guidance everywhere is ``(1 + s) * cond - s * uncond``. Editing (``edit``, ``extend``, ``generate_long``)
lives in ``editing.py``. `BAMM` is the Generator over the torch modules (`torch_nets.TorchNets`): loading,
saving, random models, int8. `runtime.ort_nets.load_runtime` gives the nets of an exported runtime folder
(ONNX Runtime, no torch): ``Generator(load_runtime(folder))``. This module imports torch only inside `BAMM`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..contract.limits import InputError, Limits, check_profile
from ..contract.request import DEFAULT_CFG, DEFAULT_RES_CFG, Request
from ..motion import features as F
from ..motion.contact_root import contact_root
from . import loop as D
from . import editing, pacing
from .loop import Sampler, Settings
from .nets import Nets
from .results import Motion, Progress

FORMAT_VERSION = 1


def check_prompts(prompts, limits: Limits | None = None) -> list[str]:
    """One prompt or a list -> a list of prompts, each checked by the request contract."""
    prompts = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise InputError(f"prompts must be a non-empty string or list of strings, got {prompts!r}"[:200])
    out = []
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise InputError(f"prompts[{i}] must be a non-empty string, got {p!r}"[:200])
        try:
            out.append(Request(prompt=p).check(limits).prompt)
        except InputError as e:
            raise InputError(f"prompts[{i}]: {e}") from None
    return out


class Generator:
    """generate / edit / extend / generate_long over a `nets.Nets` back end (torch or ONNX Runtime)."""

    def __init__(self, nets: Nets):
        self.nets = nets
        self.profile = "bamm"  # decoding profile of `generate` when it is not given ("bamm" or "official")

    @property
    def fps(self) -> float:
        return self.nets.config.fps

    @property
    def frames_per_token(self) -> int:
        return self.nets.config.frames_per_token

    @property
    def max_tokens(self) -> int:
        """Most motion tokens in one pass (the BAMM transformer's context less [END])."""
        return self.nets.config.motion_tokens

    @property
    def max_frames(self) -> int:
        return self.max_tokens * self.frames_per_token

    @property
    def limits(self) -> Limits:
        """What these weights accept (the request contract's limits)."""
        return Limits.from_nets(self.nets.config)

    # ------------------------------------------------------------------------------------ building blocks

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        """(B, D) float32 text embeddings."""
        return np.asarray(self.nets.encode_text(list(prompts)), np.float32)

    def decode(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """codes (N, Q) of one motion -> (features (4N, 263) de-normalised, joints (4N, 22, 3)), float32; the
        root of a tokenizer trained with `contact_root` follows its planted toes (`motion.contact_root`)."""
        feats = self.nets.vq_decode(np.asarray(codes, np.int64)[None])[0] * self.nets.std + self.nets.mean
        feats = feats.astype(np.float32)
        if self.nets.config.contact_root:
            feats = contact_root(feats)
        return feats, F.recover_from_ric(feats)

    def features_to_codes(self, feats: np.ndarray) -> np.ndarray:
        """De-normalised features (T, 263) -> codes (ceil(T/4), Q); the last frame is repeated to fill a token."""
        f = self.frames_per_token
        n = -(-len(feats) // f)
        feats = np.concatenate([feats, np.repeat(feats[-1:], n * f - len(feats), 0)], 0)
        x = ((feats - self.nets.mean) / self.nets.std).astype(np.float32)
        return self.nets.vq_encode(x[None])[0].astype(np.int64)

    def tokens_to_motion(self, tokens: np.ndarray, prompt: str | None = None) -> Motion:
        """A Motion from its tokens (N, Q) alone (decoded features and joints)."""
        feats, joints = self.decode(tokens)
        return Motion(joints=joints, features=feats, tokens=np.asarray(tokens, np.int64), prompt=prompt,
                      fps=self.fps)

    # ------------------------------------------------------------------------------------ public API

    def generate(self, prompts: str | list[str], *, frames: int | None = None, n: int = 1, seed: int = 0,
                 cfg: tuple[float, float] = DEFAULT_CFG, refine: str | None = "every_other", rounds: int = 2,
                 temperature: float = 1.0, top_k: int | None = None, res_cfg: float = DEFAULT_RES_CFG,
                 progress=None, use_cache: bool = True, profile: str | None = None,
                 amounts: bool = True) -> list[Motion]:
        """Motions for one prompt or a list, `n` each, prompt-major (len(prompts) * n results), one batch.

        frames: None lets the model end each motion ([END], 1..max_frames / 4 tokens); an int asks for that
        many frames (rounded down to a multiple of 4). amounts: each prompt's words about length and pace shape
        its motions (`Request.pace`, `pacing.apply`): without ``frames``, an explicit duration sets the length
        and counted steps cut the motion after that many steps; "slowly" / "quickly" time-stretch a walk or a
        run (a slow one of the model's own length may run past max_frames); plain prompts are generated as without.
        False (the evaluation against real clips), and the official profile: the model reads the prompt as
        written and nothing is cut or retimed. cfg: guidance of the first pass and of the refinement passes;
        res_cfg: of the residual layers. refine: which tokens the refinement passes re-predict ("every_other",
        "low_confidence", "suffix", "prefix"; None: no refinement); rounds: total token passes.
        temperature 0 or top_k=1 picks the most likely tokens. Same seed -> same motions (on either back end).
        progress(stage, fraction) is called during decoding (fraction: overall, 0..1); an exception raised
        from it aborts the call. use_cache False recomputes every position at each step (same result).
        profile "official" decodes as the published BAMM code (`decoding.official_settings`; cfg, refine,
        rounds, top_k and res_cfg are then the official ones), for published numbers with imported weights;
        None: `self.profile`.
        """
        profile = check_profile(self.profile if profile is None else profile)
        prompts = check_prompts(prompts, self.limits)
        req = Request(op="generate", prompt=prompts[0], frames=frames, n=n, seed=seed, cfg=cfg, refine=refine,
                      rounds=rounds, temperature=temperature, top_k=top_k, res_cfg=res_cfg).check(self.limits)
        n, seed = req.n, req.seed
        if profile == "official":
            st = D.official_settings(temperature=req.temperature)
        else:
            st = Settings(**req.settings())
        batch = len(prompts) * n
        paces = [req.pace(self.limits, p) if amounts and st.profile == "bamm" else None for p in prompts for _ in
                 range(n)]
        want = [req.frames if pc is None else pc.frames for pc in paces]
        sampler = Sampler(seed)
        prog = Progress(progress, {"text": 1, "tokens": 6, "refine": 3 * (st.passes > 0), "residual": 2,
                                   "decode": 1})
        prog("text", 0.0)
        text = np.repeat(self.encode_text([p if pc is None or pc.text is None else pc.text
                                           for p, pc in zip(prompts, paces[::n])]), n, 0)
        prog("text", 1.0)
        # the motions whose length the model chooses, then those of a given length, drawn from one sampler: when
        # no prompt's words give a length, one group, the batch as it always was
        found: list = [None] * batch
        for group in ([i for i in range(batch) if want[i] is None], [i for i in range(batch) if want[i] is not None]):
            if not group:
                continue
            lengths = None if want[group[0]] is None else np.array([want[i] // self.frames_per_token for i in group])
            base, lengths = D.base_tokens(self.nets, text[group], batch=len(group), lengths=lengths, st=st,
                                          sampler=sampler, progress=prog.stage("tokens"),
                                          refine_progress=prog.stage("refine"), use_cache=use_cache)
            codes = D.residual_layers(self.nets, base, lengths, text[group], st, sampler)
            for j, i in enumerate(group):
                found[i] = codes[j, :int(lengths[j])]
        prog("residual", 1.0)
        motions = []
        for i in range(batch):
            tokens = found[i]
            if st.profile == "bamm":
                motions.append(self.tokens_to_motion(tokens, prompts[i // n]))
            else:  # the tokenizer sees every slot (zero vectors past the end); the motion is trimmed after
                feats, _ = self.decode(D.decoder_codes(tokens, st, self.max_tokens + 1))
                feats = feats[:len(tokens) * self.frames_per_token]
                motions.append(Motion(joints=F.recover_from_ric(feats), features=feats, tokens=tokens,
                                      prompt=prompts[i // n], fps=self.fps))
            if paces[i] is not None and not paces[i].plain:
                motions[-1] = pacing.apply(self, motions[-1], paces[i])
            prog("decode", (i + 1) / batch)
        return motions

    def edit(self, source, frames: tuple[int, int], prompt: str | None = None, **kwargs) -> Motion:
        """Regenerate frames [start, end) of `source` (Motion or joints (T, 22, 3)); see `editing.edit`."""
        return editing.edit(self, source, frames, prompt, **kwargs)

    def extend(self, source, *, before_s: float = 0.0, after_s: float = 0.0, prompt: str | None = None,
               **kwargs) -> Motion:
        """Add generated seconds before and/or after `source`; see `editing.extend`."""
        return editing.extend(self, source, before_s=before_s, after_s=after_s, prompt=prompt, **kwargs)

    def generate_long(self, segments, **kwargs) -> Motion:
        """One motion from [(prompt, frames or None), ...] segments joined by regenerated transitions."""
        return editing.generate_long(self, segments, **kwargs)


def folder_text_spec(spec: str, root) -> str:
    """A weights folder's text encoder spec with a relative CLIP file ("clip:clip_text.safetensors", written
    by `bamm import-official`) resolved against the folder."""
    kind, _, arg = spec.partition(":")
    if kind.strip().lower() == "clip" and arg.strip() and not Path(arg.strip()).expanduser().is_absolute():
        return f"clip:{Path(root) / arg.strip()}"
    return spec


class BAMM(Generator):
    """The Generator over the torch modules (`torch_nets.TorchNets`): text encoder + tokenizer + BAMM
    transformer + residual transformer + Mean/Std on one device; loading, saving, random models, int8."""

    def __init__(self, *, text_encoder, vq, t2m, res, mean, std, fps: float = 20.0, device="cpu"):
        from .torch_nets import TorchNets

        super().__init__(TorchNets(text_encoder=text_encoder, vq=vq, t2m=t2m, res=res, mean=mean, std=std,
                                   fps=fps, device=device))
        self.int8 = False

    device = property(lambda self: self.nets.device)
    text_encoder = property(lambda self: self.nets.text_encoder)
    vq = property(lambda self: self.nets.vq)
    t2m = property(lambda self: self.nets.t2m)
    res = property(lambda self: self.nets.res)
    mean = property(lambda self: self.nets.mean)
    std = property(lambda self: self.nets.std)

    def quantize_int8(self) -> "BAMM":
        """Switch both token transformers to int8 linear layers (CPU only, in place; see models/int8.py).

        Decoding of the paper-size model gets about 1.8x faster on a CPU; tokens then differ from float32 ones
        as with any change of arithmetic (same seed -> same output still holds). Not reversible: load again
        for float32."""
        from ..models.int8 import quantize_int8

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
        from ..models.checkpoint import load_model, load_tensors, read_json_object
        from ..models.residual import ResidualConfig, ResidualTransformer
        from ..models.text import load_text_encoder
        from ..models.transformer import BAMMConfig, BAMMTransformer
        from ..models.vq import RVQVAE, RVQVAEConfig

        root = Path(weights_dir)
        meta_path = root / "bamm.json"
        meta = read_json_object(meta_path, what=f"weights folder {root}: bamm.json")
        if not isinstance(meta.get("text_encoder"), str):
            raise ValueError(f"{meta_path}: expected an object with a 'text_encoder' string")
        if text_encoder is None or isinstance(text_encoder, str):
            text_encoder = load_text_encoder(text_encoder or folder_text_spec(meta["text_encoder"], root),
                                             device=device)
        stats = load_tensors(root / "stats.safetensors")
        if set(stats) != {"mean", "std"}:
            raise ValueError(f"{root / 'stats.safetensors'}: expected tensors 'mean' and 'std', got {sorted(stats)}")
        for key, value in stats.items():
            if value.dim() != 1 or not bool(value.isfinite().all()) or (key == "std" and not bool((value > 0).all())):
                raise InputError(f"{root / 'stats.safetensors'}: tensor {key!r} must be a finite vector"
                                 + (" of positive values" if key == "std" else "") + " (NaN, inf or 0 found)")
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
        import torch

        from ..models.checkpoint import save_model, save_tensors

        if self.int8:
            raise ValueError("int8 models are inference-only copies; save the float32 model instead")
        root = Path(weights_dir)
        root.mkdir(parents=True, exist_ok=True)
        for name, model in (("vq", self.vq), ("t2m", self.t2m), ("res", self.res)):
            save_model(model, model.config, root, name)
        save_tensors(root / "stats.safetensors", {"mean": torch.from_numpy(self.mean.copy()),
                                                  "std": torch.from_numpy(self.std.copy())})
        meta = {"format_version": FORMAT_VERSION, "text_encoder": text_encoder_spec or self.text_encoder.name,
                "fps": self.fps, "frames_per_token": self.frames_per_token, "max_frames": self.max_frames}
        (root / "bamm.json").write_text(json.dumps(meta, indent=2) + "\n")
        return root / "bamm.json"

    @classmethod
    def random(cls, *, preset: str = "tiny", text_encoder="minilm", seed: int = 0, device: str = "cpu") -> "BAMM":
        """Untrained models of a preset ("paper", "small", "tiny"), Mean 0 / Std 1: for tests and benchmarks."""
        import torch

        from ..models.residual import RES_PRESETS, ResidualTransformer
        from ..models.text import load_text_encoder
        from ..models.transformer import T2M_PRESETS, BAMMTransformer
        from ..models.vq import VQ_PRESETS, RVQVAE

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
