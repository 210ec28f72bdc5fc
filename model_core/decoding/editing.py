"""Editing with the bidirectional mask: inpainting, outpainting, prefix/suffix, and long sequences.

Without a prompt, or with the source motion's own, the range is *inpainted*: its tokens are hidden from the
BAMM transformer and predicted left to right while every kept token (and [END]) stays visible, then refined like
generation (``refine`` over the regenerated tokens only); kept tokens and all their residual layers are copied
unchanged (`decoding.regenerate`). The context leads: the model goes on with what it sees around the range.

A new prompt *leads the range* (`led_by_prompt`): its tokens are generated alone at the range's length, as
Generate makes them, and spliced in; the VQ decoder, which sees both sides, and the seam fade of `place` join
them to the source. Inpainting alone gave the prompt's action on none of the edits of ``bench/rig_edit.py``: the
context always won. Regenerating a token at each seam with both sides visible (as between the steps of a
sequence) smoothed the seams a little more but cost the range its action on about one edit in twelve. Where the
animation travels through the range (`travel`), an arm action is done on the way: the arms of the prompt's
motion are composed (`motion.arms`) onto the range inpainted with the prompt, whose legs and root go on as the
animation does; any other action is done in place and slides to the keys after the range (`travel_note` says
so). Extending with a new prompt is led by it the same way.

A token sequence longer than one transformer context is handled through a window of at most
``Generator.max_tokens`` tokens centred on the regenerated span; the window ends with [END] even where the
motion goes on (training only ever shows [END] at a real end, so that is an approximation).

Frames outside the edited range are the source's own joints. The generated frames are placed with a yaw
rotation and a shift fitted on ``CONTEXT`` source frames on each side (interpolated across the range), and
what is left of the offset at a seam fades out over ``BLEND`` frames inside the range (`fade`).

The ``model`` of every function is a `generate.Generator`, whose methods call these; the annotations name it
without importing it (``generate.py`` imports this module).
"""

from __future__ import annotations

import numpy as np

from ..contract.kinds import kind_of
from ..contract.limits import InputError, Limits
from ..contract.request import DEFAULT_CFG, DEFAULT_RES_CFG, Request
from ..motion import features as F
from ..motion.arms import arm_sides, compose_arms, ramp
from . import loop as D
from .loop import Sampler, Settings, check_positive_int
from .results import Motion, Progress

TRAVEL_SPEED = 0.3  # m/s: a range the source crosses faster than this travels (see `edit`)
CONTEXT = 8  # source frames on each side of a seam used to fit the placement of the generated frames
BLEND = 4  # frames inside the range over which the remaining offset at a seam fades out


# ------------------------------------------------------------------------------------------ inputs

def checked(model: Generator, op: str, source_frames: int, **fields) -> Request:
    """The request contract's check of an edit / extend of a source of ``source_frames`` frames."""
    return Request(op=op, **fields).check(model.limits, source_frames=source_frames)


def source_motion(model: Generator, source) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Motion or joints (T, 22, 3) -> (joints float32, codes (ceil(T/4), Q), the source's prompt or None).
    A Motion's own tokens are used when they fit its joints (no re-encoding)."""
    prompt = None
    c = model.nets.config
    if isinstance(source, Motion):
        joints, prompt = np.asarray(source.joints, np.float32), source.prompt
        tokens = check_tokens(source.tokens, len(joints), c)
        if tokens is not None:
            return joints, tokens, prompt
    else:
        joints = np.asarray(source, np.float32)
    limit = Limits.from_nets(c).max_source_frames
    if joints.ndim != 3 or joints.shape[1:] != (22, 3) or not 2 <= len(joints) <= limit:
        raise InputError(f"source joints must have shape (T, 22, 3) with 2 <= T <= {limit}, got {joints.shape}")
    if not np.isfinite(joints).all():
        raise InputError("source joints hold NaN or infinite values")
    return joints, model.features_to_codes(padded_features(joints)), prompt


def check_tokens(tokens, frames: int, config) -> np.ndarray | None:
    """tokens as int64 (ceil(frames / 4), Q) if they are codes of a motion of `frames` frames, else None."""
    if tokens is None:
        return None
    tokens = np.asarray(tokens)
    n = -(-frames // config.frames_per_token)
    if (tokens.shape != (n, config.num_quantizers) or not tokens.size or tokens.dtype.kind not in "iu"
            or tokens.min() < 0 or tokens.max() >= config.code_num):
        return None
    return tokens.astype(np.int64)


def padded_features(joints: np.ndarray) -> np.ndarray:
    """HumanML3D features of joints (T, 22, 3) -> (T, 263): the last feature frame is repeated once."""
    feats = F.extract_features(joints)
    return np.concatenate([feats, feats[-1:]], 0)


# ------------------------------------------------------------------------------------------ joints

def _rotate(p: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate points (..., 3) about +Y by yaw (broadcast over the leading axes)."""
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    x, y, z = p[..., 0:1], p[..., 1:2], p[..., 2:3]
    return np.concatenate([c * x + s * z, y, -s * x + c * z], -1)


def fit_yaw_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares yaw and shift with rotate(a, yaw) + shift ~= b, for points a, b (..., 3)."""
    a, b = a.reshape(-1, 3).astype(np.float64), b.reshape(-1, 3).astype(np.float64)
    xa, xb = a - a.mean(0), b - b.mean(0)
    cross = (xb[:, 0] * xa[:, 2] - xb[:, 2] * xa[:, 0]).sum()
    dot = (xb[:, 0] * xa[:, 0] + xb[:, 2] * xa[:, 2]).sum()
    yaw = np.arctan2(cross, dot)
    return float(yaw), b.mean(0) - _rotate(a.mean(0), np.array(yaw))


def fade(n: int) -> np.ndarray:
    """Weights (n,) of the offset left at a seam on the first n frames inside the range: all of it on the first
    (the joints' step across the seam is the generated motion's own), smoothly down to nothing at ``BLEND``."""
    x = np.arange(n) / BLEND
    return 1.0 - x * x * (3.0 - 2.0 * x)


def place(gen: np.ndarray, src: np.ndarray, src_at: int, ranges: list[tuple[int, int]]) -> np.ndarray:
    """Output joints over gen's timeline (F, 22, 3): source frames at [src_at, src_at + T) except inside
    `ranges`, where the generated frames are placed to continue the source (see the module docstring)."""
    out = gen.astype(np.float64)
    t_src = np.arange(len(src)) + src_at
    keep = np.ones(len(src), bool)
    for a, b in ranges:
        keep[max(a - src_at, 0):max(b - src_at, 0)] = False
    out[t_src[keep]] = src[keep]
    for a, b in ranges:
        sides = []
        for lo, hi in ((max(a - CONTEXT, src_at), a), (b, min(b + CONTEXT, src_at + len(src)))):
            if hi > lo:
                sides.append(fit_yaw_shift(gen[lo:hi], src[lo - src_at:hi - src_at]))
        if not sides:  # the whole source is regenerated: match the old content's first frame
            sides.append(fit_yaw_shift(gen[a:a + 1], src[a - src_at:a - src_at + 1]))
        (yaw_l, shift_l), (yaw_r, shift_r) = sides[0], sides[-1]
        yaw_r = yaw_l + np.angle(np.exp(1j * (yaw_r - yaw_l)))
        t = np.arange(a - 1, b + 1)
        w = np.clip((t - a + 1) / (b - a + 1), 0.0, 1.0)
        g = gen[np.clip(t, 0, len(gen) - 1)].astype(np.float64)
        root = g[:, :1]
        root_new = (1 - w)[:, None, None] * (_rotate(root, np.full(len(t), yaw_l)[:, None]) + shift_l) \
            + w[:, None, None] * (_rotate(root, np.full(len(t), yaw_r)[:, None]) + shift_r)
        aligned = _rotate(g - root, ((1 - w) * yaw_l + w * yaw_r)[:, None]) + root_new
        body = aligned[1:-1].copy()
        weights = fade(min(BLEND, b - a))
        if a > src_at:  # left seam: last source frame a - 1
            body[:len(weights)] += weights[:, None, None] * (src[a - 1 - src_at] - aligned[0])
        if b < src_at + len(src):  # right seam: first source frame b
            body[len(body) - len(weights):] += weights[::-1, None, None] * (src[b - src_at] - aligned[-1])
        out[a:b] = body
    return out.astype(np.float32)


def travel(joints: np.ndarray, start: int, end: int, fps: float) -> float | None:
    """Metres the root crosses over the ground from the last frame before [start, end) to the first after it,
    when the range has frames on both sides and they are crossed faster than ``TRAVEL_SPEED``; else None."""
    if start <= 0 or end >= len(joints):
        return None
    metres = float(np.linalg.norm(joints[end, 0, [0, 2]] - joints[start - 1, 0, [0, 2]]))
    return metres if metres > TRAVEL_SPEED * (end - start) / fps else None


def leading_prompt(prompt: str | None, source_prompt: str | None) -> str | None:
    """The prompt that leads an edited range: a given prompt other than the source's own; None: inpainting."""
    return prompt if prompt and prompt != source_prompt else None


def travel_note(joints: np.ndarray, frames: tuple[int, int], prompt: str | None, fps: float) -> str | None:
    """One line for the user when a range led by ``prompt`` must slide: the animation travels through the range
    and the prompt's action is done in place (an arm action is done on the way, locomotion travels itself)."""
    metres = travel(np.asarray(joints), *frames, fps) if prompt else None
    if metres is None or kind_of(prompt) in ("arm", "locomotion"):
        return None
    return (f"the animation travels {metres:.1f} m through this range and '{prompt}' is done in place, so the "
            "body slides to reach the keys after it: pick frames where the character stands, or widen the range")


def led_by_prompt(model: Generator, codes: np.ndarray, spans: list[tuple[int, int]], text: np.ndarray,
                  st: Settings, sampler: Sampler, progress=None) -> np.ndarray:
    """codes (N, Q) with every token span [lo, hi) replaced by the prompt's motion (``text`` (1, D)) generated
    alone at the span's length, all spans in one batch, as Generate makes it (see the module docstring)."""
    emb = np.repeat(np.asarray(text), len(spans), axis=0)
    first = None if progress is None else (lambda x: progress(x / 2))
    rest = None if progress is None else (lambda x: progress(0.5 + x / 2))
    base, lengths = D.base_tokens(model.nets, emb, batch=len(spans), lengths=np.array([hi - lo for lo, hi in spans]),
                                  st=st, sampler=sampler, progress=first, refine_progress=rest)
    fresh = D.residual_layers(model.nets, base, lengths, emb, st, sampler)
    out = np.array(codes, np.int64)
    for k, (lo, hi) in enumerate(spans):
        out[lo:hi] = fresh[k, :hi - lo]
    return out


def _result(model: Generator, joints: np.ndarray, tokens: np.ndarray, prompt: str | None) -> Motion:
    return Motion(joints=joints, features=padded_features(joints), tokens=np.asarray(tokens, np.int64),
                  prompt=prompt, fps=model.fps)


def _text(model: Generator, prompt: str | None):
    return model.encode_text([prompt]) if prompt else None


# ------------------------------------------------------------------------------------------ public

def edit(model: Generator, source, frames: tuple[int, int], prompt: str | None = None, *, seed: int = 0,
         cfg: tuple[float, float] = DEFAULT_CFG, refine: str | None = "every_other", rounds: int = 2,
         temperature: float = 1.0, top_k: int | None = None, res_cfg: float = DEFAULT_RES_CFG, progress=None) -> Motion:
    """Regenerate frames [start, end) of `source` (a Motion or joints (T, 22, 3)): inpainting (a range in
    the middle), prefix or suffix (a range touching the start or the end).

    The range is snapped outward to token boundaries for the tokens; frames outside [start, end) are the
    source's. prompt None or the source Motion's own: inpainted with the source's prompt (unconditional without
    one); a new prompt leads the range (module docstring). rounds - 1 extra passes re-predict the regenerated
    tokens chosen by `refine` (guidance cfg[1]), as in generation."""
    settings = dict(cfg=cfg, refine=refine, rounds=rounds, temperature=temperature, top_k=top_k, res_cfg=res_cfg)
    Request(op="edit", prompt=prompt, range=(0, model.max_frames), seed=seed, **settings).check(model.limits)
    joints, codes, src_prompt = source_motion(model, source)
    req = checked(model, "edit", len(joints), prompt=prompt, range=frames, seed=seed, **settings)
    st = Settings(**req.settings())
    prog = Progress(progress, {"text": 1, "tokens": 8, "decode": 1})
    f = model.frames_per_token
    (start, end), seed = req.range, req.seed
    prompt = req.prompt or src_prompt
    sampler = Sampler(seed)
    text = _text(model, prompt)
    prog("text", 1.0)
    span = (start // f, -(-end // f))
    keep = np.ones(len(codes), bool)
    keep[span[0]:span[1]] = False
    led = leading_prompt(req.prompt, src_prompt) is not None
    if led:
        new = led_by_prompt(model, codes, [span], text, st, sampler, prog.stage("tokens"))
    else:  # inpainting: the context leads
        new = D.regenerate(model.nets, [(codes, keep)], text, st, sampler, prog.stage("tokens"))[0]
    out = place(model.decode(new)[1][:len(joints)], joints, 0, [(start, end)])
    if led and kind_of(prompt) == "arm" and travel(joints, start, end, model.fps) is not None:
        # the animation travels through the range: the person goes on as it does, doing the arm action
        context = D.regenerate(model.nets, [(codes, keep)], text, st, Sampler(seed))[0]  # as inpainting
        base = place(model.decode(context)[1][:len(joints)], joints, 0, [(start, end)])
        action = out[start:end]
        base[start:end] = compose_arms(base[start:end], action, arm_sides(prompt, action),
                                       ramp(end - start, True, True))
        new = context.copy()  # the tokens of the range re-encoded from the composed joints
        new[span[0]:span[1]] = model.features_to_codes(padded_features(base))[span[0]:span[1]]
        out = base
    prog("decode", 1.0)
    return _result(model, out, new, prompt)


def extend(model: Generator, source, *, before_s: float = 0.0, after_s: float = 0.0, prompt: str | None = None,
           seed: int = 0, cfg: tuple[float, float] = DEFAULT_CFG, refine: str | None = "every_other",
           rounds: int = 2, temperature: float = 1.0, top_k: int | None = None, res_cfg: float = DEFAULT_RES_CFG,
           progress=None) -> Motion:
    """Add generated motion before and/or after `source` (outpainting), in whole tokens (4 frames = 0.2 s at
    20 fps, rounded), with the source tokens as context, or led by a new prompt (module docstring); the source
    frames stay exactly as they are."""
    settings = dict(cfg=cfg, refine=refine, rounds=rounds, temperature=temperature, top_k=top_k, res_cfg=res_cfg)
    fields = dict(prompt=prompt, before_s=before_s, after_s=after_s, seed=seed, **settings)
    Request(op="extend", **fields).check(model.limits)  # before the source is encoded
    joints, codes, src_prompt = source_motion(model, source)
    req = checked(model, "extend", len(joints), **fields)
    f = model.frames_per_token
    counts = [int(round(v * model.fps / f)) for v in (req.before_s, req.after_s)]
    st = Settings(**req.settings())
    prog = Progress(progress, {"text": 1, "tokens": 8, "decode": 1})
    prompt, seed = req.prompt or src_prompt, req.seed
    sampler = Sampler(seed)
    text = _text(model, prompt)
    prog("text", 1.0)
    nb, na = counts
    q = codes.shape[1]
    new = codes
    if leading_prompt(req.prompt, src_prompt) is not None:
        ext = np.concatenate([np.zeros((nb, q), np.int64), codes, np.zeros((na, q), np.int64)])
        spans = [s for s in ((0, nb), (nb + len(codes), len(ext))) if s[1] > s[0]]
        sides = []
        new = led_by_prompt(model, ext, spans, text, st, sampler, prog.stage("tokens"))
    else:  # both sides in one pass when they fit in one context, else the end first, then the start
        sides = [(nb, na)] if nb + len(codes) + na <= model.max_tokens else [(0, na), (nb, 0)]
        sides = [side for side in sides if sum(side)]
    for k, (before, after) in enumerate(sides):
        ext = np.concatenate([np.zeros((before, q), np.int64), new, np.zeros((after, q), np.int64)])
        keep = np.zeros(len(ext), bool)
        keep[before:before + len(new)] = True
        report = None if progress is None else (lambda x, k=k: prog("tokens", (k + x) / len(sides)))
        new = D.regenerate(model.nets, [(ext, keep)], text, st, sampler, report)[0]
    _, decoded = model.decode(new)
    total = nb * f + len(joints) + na * f
    ranges = [r for r in ((0, nb * f), (nb * f + len(joints), total)) if r[1] > r[0]]
    out = place(decoded[:total], joints, nb * f, ranges)
    prog("decode", 1.0)
    return _result(model, out, new, prompt)


def generate_long(model: Generator, segments, *, seed: int = 0, cfg: tuple[float, float] = DEFAULT_CFG,
                  refine: str | None = "every_other", rounds: int = 2, temperature: float = 1.0,
                  top_k: int | None = None, res_cfg: float = DEFAULT_RES_CFG, transition: int = 2,
                  progress=None) -> Motion:
    """One motion from segments [(prompt, frames or None), ...]: each segment is generated (batched), the
    segments are joined, then `transition` tokens on each side of every seam are regenerated with both
    neighbours visible (unconditionally: the transition belongs to neither prompt)."""
    if not isinstance(segments, (list, tuple)) or not segments:
        raise ValueError(f"segments must be a non-empty list of (prompt, frames or None), got {segments!r}")
    prompts, frames = [], []
    for i, seg in enumerate(segments):
        if not isinstance(seg, (tuple, list)) or len(seg) != 2:
            raise ValueError(f"segments[{i}] must be a (prompt, frames or None) pair, got {seg!r}")
        if not isinstance(seg[0], str) or not seg[0].strip():
            raise ValueError(f"segments[{i}] prompt must be a non-empty string, got {seg[0]!r}")
        if seg[1] is not None:
            value = check_positive_int(seg[1], f"segments[{i}] frames")
            if not model.frames_per_token <= value <= model.max_frames:
                raise ValueError(f"segments[{i}] frames must be in [{model.frames_per_token}, {model.max_frames}], "
                                 f"got {value}")
        prompts.append(seg[0])
        frames.append(seg[1])
    transition = check_positive_int(transition, "transition")
    st = Settings(cfg=cfg, refine=refine, rounds=rounds, temperature=temperature, top_k=top_k, res_cfg=res_cfg)
    prog = Progress(progress, {"text": 1, "tokens": 6, "refine": 3 * (st.passes > 0), "transitions": 3,
                               "decode": 1})
    sampler = Sampler(seed)
    text = model.encode_text(prompts)
    prog("text", 1.0)
    f = model.frames_per_token
    pieces: list[np.ndarray | None] = [None] * len(prompts)
    for group in ([i for i, v in enumerate(frames) if v is None], [i for i, v in enumerate(frames) if v is not None]):
        if not group:
            continue
        lengths = None if frames[group[0]] is None else np.array([frames[i] // f for i in group], np.int64)
        emb = text[group]
        base, lengths = D.base_tokens(model.nets, emb, batch=len(group), lengths=lengths, st=st, sampler=sampler,
                                      progress=prog.stage("tokens"), refine_progress=prog.stage("refine"))
        codes = D.residual_layers(model.nets, base, lengths, emb, st, sampler)
        for j, i in enumerate(group):
            pieces[i] = codes[j, :int(lengths[j])]
    full = np.concatenate(pieces)
    items, bounds = [], np.cumsum([len(p) for p in pieces])
    for i, k in enumerate(bounds[:-1]):
        left, right = min(transition, len(pieces[i]) // 2), min(transition, len(pieces[i + 1]) // 2)
        if left + right:
            keep = np.ones(len(full), bool)
            keep[k - left:k + right] = False
            items.append((full, keep))
    if items:
        joined = D.regenerate(model.nets, items, None, st, sampler, prog.stage("transitions"))
        full = full.copy()
        for (_, keep), codes in zip(items, joined):
            full[~keep] = codes[~keep]
    motion = model.tokens_to_motion(full, " / ".join(prompts))
    prog("decode", 1.0)
    return motion
