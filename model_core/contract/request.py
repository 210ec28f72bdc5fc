"""The request contract: one generation / edit / extend request, checked in one place.

Every caller (the ``bamm`` command, the Python API ``Generator``, the worker, the Blender add-on) builds a
`Request` and calls `Request.check(limits)` before any model is loaded; nothing re-checks elsewhere.

API::

    from model_core.contract.limits import Limits
    from model_core.contract.request import Request

    limits = Limits.from_folder("weights/")   # the weights' limits (``limits.py``); cheap, no model
    req = Request(op="generate", prompt="a person waves", seconds=4.0, n=2, seed=7).check(limits)
    req.frames        # 80: seconds are turned into 20-fps frames, and every field normalised
    req.settings()    # {"cfg": DEFAULT_CFG, "refine": ..., "rounds": 2, "temperature": 1.0, ...}
    req.to_args()     # the worker's JSON ``args`` (see ``serving/worker.py``); Request.from_args(op, args) reads them

    Request(op="edit", range=(40, 80), prompt=None).check(limits, source_frames=120)
    Request(op="extend", after_s=2.0).check(limits, source_frames=120)
    Request(op="plan", plan={"steps": [{"prompt": "a man walks", "seconds": 3.0}, ...]}).check(limits)

Bad input raises `limits.InputError` (a ``ValueError``) with a one-line message that says what is wrong and
what is allowed; the worker reports it as ``{"type": "error", "kind": "input", ...}``, the add-on shows it as
the user's mistake (``BammInputError``), the command line exits with code 2 without a traceback.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .amounts import pace_of
from .limits import InputError, Limits, _finite_float, _int, _number, _show, check_prompt
from .plan import check_plan

OPS = ("generate", "edit", "extend", "plan")
REFINE_MODES = ("every_other", "low_confidence", "suffix", "prefix")
MAX_SEED = 2**32 - 1
MAX_ROUNDS = 8
MAX_GUIDANCE = 100.0
MAX_TEMPERATURE = 100.0
# Default guidance (classifier-free) of the first pass and of the refinement passes, and of the residual layers:
# every caller (generate, edit, plan, CLI, add-on) takes these. Chosen on the validation split and the
# hand-written prompts (weights/MODEL_CARD.md, "Decoding settings").
DEFAULT_CFG = (2.0, 1.0)
DEFAULT_RES_CFG = 4.0


@dataclass(frozen=True, kw_only=True)
class Request:
    """One request. op: "generate" | "edit" | "extend" | "plan".

    generate: prompt (required); frames or seconds (None: the model picks the length).
    edit: range (start, end) half-open 20-fps frames of the source; prompt optional.
    extend: before_s / after_s seconds added; prompt optional.
    plan: plan (a plan object as ``plan.Plan.to_data`` writes it, checked into a ``plan.Plan`` by
    ``plan.check_plan``: step count, each step's prompts and seconds); no prompt, no length.
    All: n variations (edits use seeds seed, seed + 1, ...), seed, cfg (first pass, refinement guidance),
    refine, rounds, temperature, top_k, res_cfg (see `Generator.generate`).
    """

    op: str = "generate"
    prompt: str | None = None
    frames: int | None = None
    seconds: float | None = None
    range: tuple[int, int] | None = None
    before_s: float = 0.0
    after_s: float = 0.0
    n: int = 1
    seed: int = 0
    cfg: tuple[float, float] = DEFAULT_CFG
    refine: str | None = "every_other"
    rounds: int = 2
    temperature: float = 1.0
    top_k: int | None = None
    res_cfg: float = DEFAULT_RES_CFG
    plan: object = None

    def check(self, limits: Limits | None = None, *, source_frames: int | None = None) -> "Request":
        """This request with every field checked against ``limits`` (None: the defaults of `Limits`) and
        normalised: seconds -> frames, the prompt stripped, numbers as int / float. ``source_frames``: the
        length of the edited / extended motion (edit ranges are checked against it). Raises InputError."""
        lim = limits or Limits()
        f, fps = lim.frames_per_token, lim.fps
        if self.op not in OPS:
            raise InputError(f"op must be one of {', '.join(OPS)}, got {_show(self.op)}")
        changes: dict = {}
        changes["prompt"] = check_prompt(self.prompt, lim, required=self.op == "generate")
        if self.op == "plan":
            if self.prompt is not None:
                raise InputError("plan takes no prompt: each step of the plan carries its own")
            changes["plan"] = check_plan(self.plan, lim)
        elif self.plan is not None:
            raise InputError(f"{self.op} takes no plan")
        changes["n"] = _int(self.n, "n", 1, lim.max_n)
        changes["seed"] = _int(self.seed, "seed", 0, MAX_SEED - changes["n"] + 1)  # variations use seed + k
        cfg = self.cfg
        if isinstance(cfg, (str, bytes)) or not hasattr(cfg, "__len__") or len(cfg) != 2:
            raise InputError(f"cfg must be a pair of guidance scales (first pass, refinement), got {_show(cfg)}")
        changes["cfg"] = (_number(cfg[0], "cfg (guidance)", 0.0, MAX_GUIDANCE),
                          _number(cfg[1], "cfg (refine guidance)", 0.0, MAX_GUIDANCE))
        if self.refine is not None and self.refine not in REFINE_MODES:
            raise InputError(f"refine must be one of {', '.join(REFINE_MODES)} or None, got {_show(self.refine)}")
        changes["rounds"] = _int(self.rounds, "rounds", 1, MAX_ROUNDS)
        changes["temperature"] = _number(self.temperature, "temperature", 0.0, MAX_TEMPERATURE)
        changes["top_k"] = None if self.top_k is None else _int(self.top_k, "top_k", 1, 1 << 20)
        changes["res_cfg"] = _number(self.res_cfg, "res_cfg", 0.0, MAX_GUIDANCE)
        if source_frames is not None:
            _int(source_frames, "the source motion's frames", 2, lim.max_source_frames)
        if self.op == "generate":
            changes["frames"] = self._length(lim)
            changes["seconds"] = None
        elif self.frames is not None or self.seconds is not None:
            raise InputError(f"{self.op} takes no length (frames / seconds): it keeps the source's frames")
        if self.op == "edit":
            changes["range"] = self._range(lim, source_frames)
        elif self.range is not None:
            raise InputError(f"{self.op} takes no frame range")
        if self.op == "extend":
            before = _number(self.before_s, "before_s (seconds added before)", 0.0, lim.max_seconds)
            after = _number(self.after_s, "after_s (seconds added after)", 0.0, lim.max_seconds)
            if round(before * fps / f) == 0 and round(after * fps / f) == 0:
                raise InputError(f"before_s / after_s add nothing once rounded to whole tokens of {f / fps:g} s: "
                                 f"extend by at least {f / fps:g} s, got {before:g} s before / {after:g} s after")
            changes["before_s"], changes["after_s"] = before, after
        elif self.before_s or self.after_s:
            raise InputError(f"{self.op} takes no before_s / after_s")
        return dataclasses.replace(self, **changes)

    def _length(self, lim: Limits) -> int | None:
        if self.frames is not None and self.seconds is not None:
            raise InputError("give the length as frames or as seconds, not both")
        f = lim.frames_per_token
        if self.seconds is not None:
            seconds = self.seconds
            if isinstance(seconds, (bool, str)) or not _finite_float(seconds) or float(seconds) <= 0:
                raise InputError(f"seconds must be a finite number > 0, got {_show(seconds)}")
            frames = int(round(float(seconds) * lim.fps))
            if frames > lim.max_frames:
                raise InputError(f"{float(seconds):g} s is over the model's limit of {lim.max_seconds:g} s "
                                 f"({lim.max_frames} frames)")
            if frames < f:
                raise InputError(f"{float(seconds):g} s is shorter than the shortest motion, {f / lim.fps:g} s "
                                 f"({f} frames)")
            return frames
        if self.frames is None:
            return None
        return _int(self.frames, "frames", f, lim.max_frames)

    def _range(self, lim: Limits, total: int | None) -> tuple[int, int]:
        r = self.range
        if isinstance(r, (str, bytes)) or not hasattr(r, "__len__") or len(r) != 2:
            raise InputError(f"the range must be a (start, end) pair of frames, got {_show(r)}")
        big = 10 * lim.max_source_frames
        start, end = _int(r[0], "the range start", -big, big), _int(r[1], "the range end", -big, big)
        if end <= start:
            raise InputError(f"the range {start}..{end} is empty or reversed: the start must come before the end")
        hi = total if total is not None else lim.max_source_frames
        if start < 0 or end > hi:
            raise InputError(f"the range {start}..{end} lies outside the clip (frames 0..{hi})")
        f = lim.frames_per_token
        if end - start < f:
            raise InputError(f"the range {start}..{end} covers {end - start} frames, shorter than one token: at "
                             f"least {f} frames are needed")
        if end - start > lim.max_frames:
            raise InputError(f"the range {start}..{end} covers {end - start} frames; these weights regenerate at "
                             f"most {lim.max_frames} frames ({lim.max_seconds:g} s) at once")
        return start, end

    def pace(self, limits: Limits | None = None, prompt: str | None = None):
        """The `amounts.Pace` of a checked generate request (or of ``prompt``, one of a batch): its length and pace
        from its frames and its prompt's words ("for 3 seconds", "two steps", "slowly"); its own length wins."""
        return pace_of(self.prompt if prompt is None else prompt, self.frames, limits or Limits())

    def settings(self) -> dict:
        """The decoding keyword arguments (`decoding.Settings` fields)."""
        return {"cfg": tuple(self.cfg), "refine": self.refine, "rounds": self.rounds, "temperature": self.temperature,
                "top_k": self.top_k, "res_cfg": self.res_cfg}

    def to_args(self) -> dict:
        """The worker's JSON ``args`` of this request (without ``source`` / ``source_tokens`` / ``source_prompt``)."""
        args = {"prompt": self.prompt, "n": self.n, "seed": self.seed, "cfg": list(self.cfg), "refine": self.refine,
                "rounds": self.rounds, "temperature": self.temperature, "top_k": self.top_k, "res_cfg": self.res_cfg}
        if self.op == "generate":
            args["frames"] = self.frames
            if self.seconds is not None:
                args["seconds"] = self.seconds
        elif self.op == "edit":
            args["frames"] = None if self.range is None else list(self.range)
        elif self.op == "extend":
            args["before_s"], args["after_s"] = self.before_s, self.after_s
        else:
            args["plan"] = self.plan.to_data() if hasattr(self.plan, "to_data") else self.plan
            del args["prompt"]
        return args

    @classmethod
    def from_args(cls, op, args) -> "Request":
        """A Request from the worker's ``op`` and JSON ``args`` (unknown keys -> InputError). Not checked yet."""
        if op not in OPS:
            raise InputError(f"op must be one of {', '.join(OPS)}, got {_show(op)}")
        if not isinstance(args, dict):
            raise InputError(f"args must be an object, got {type(args).__name__}")
        known = {"prompt", "n", "seed", "cfg", "refine", "rounds", "temperature", "top_k", "res_cfg", "frames",
                 "source", "source_tokens", "source_prompt"}
        known |= {"seconds"} if op == "generate" else {"before_s", "after_s"} if op == "extend" else \
            {"plan"} if op == "plan" else set()
        unknown = sorted(set(args) - known, key=str)
        if unknown:
            raise InputError(f"{op}: unknown argument(s) {', '.join(map(str, unknown))[:200]}")
        fields = {k: v for k, v in args.items() if k not in ("source", "source_tokens", "source_prompt", "frames")}
        if op == "edit":
            fields["range"] = args.get("frames")
        elif op == "generate":
            fields["frames"] = args.get("frames")
        elif args.get("frames") is not None:
            raise InputError("extend takes before_s / after_s, not frames" if op == "extend" else
                             "plan takes no frames: each step of the plan gives its seconds")
        for key in ("cfg", "range"):
            if isinstance(fields.get(key), list):
                fields[key] = tuple(fields[key])
        for key, default in (("before_s", 0.0), ("after_s", 0.0)):
            if key in fields and fields[key] is None:
                fields[key] = default
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        return cls(op=op, **{k: (defaults[k] if v is None and k in ("n", "seed", "cfg", "rounds", "temperature",
                                                                     "res_cfg") else v)
                             for k, v in fields.items()})
