"""Do the words about how long and how fast change the motion? Prompts with a duration, counted steps or a pace
word, generated with the shipped weights over several seeds, against the plain walk prompt; each figure as the
words are applied now (`contract/amounts.py` + `decoding/pacing.py`, inside `Generator.generate`) and with the model
reading the words alone (``amounts=False``), plus the other levers measured before choosing.

    python bench/amounts.py [--weights weights] [--seeds 0 1 2 3 4] [--levers]

Prints, per prompt: length (s; mean, min-max), pelvis travel along the facing (m; median, min-max), median pelvis
speed (m/s, median over clips of each clip's median) and its ratio to "a person walks", foot skate (m/s), and
how many clips went forward / backward; ``--levers`` adds the alternatives (the length alone for the walking
speed; short lengths given to the model as they are; the duration left in the text). Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_core.contract.amounts import parse  # noqa: E402
from model_core.decoding.generate import BAMM  # noqa: E402
from model_core.decoding.pacing import stretch  # noqa: E402
from model_core.eval.dynamics import PELVIS, foot_skate, travel  # noqa: E402
from model_core.motion.skeleton import JOINT_INDEX  # noqa: E402

PLAIN = "a person walks"
PACE = (PLAIN, "a person walks slowly", "the woman walks straight ahead slowly", "a man walks forward slowly",
        "a person walks very slowly", "a person walks quickly", "someone walks briskly", "a person walks fast",
        "a person runs", "a person runs quickly", "a person waves slowly")
STEPS = ("a person takes two steps forward", "a person takes a few steps forward", "someone walks a couple of steps",
         "a man takes three steps back", "a person takes a step forward", "a person takes a few steps forward slowly")
DURATIONS = (("a person waves for 3 seconds", 60), ("a two-second wave", 40), ("a person bows for 4 s", 80),
             ("a person walks forward for 1.5 seconds", 32), ("a man runs for 2 seconds", 40),
             ("a person walks for half a minute", 196), ("a short walk", 40),
             ("a person walks slowly for 5 seconds", 100))


OTHER = ("a person waves", "a person waves slowly", "a person waves quickly", "a person bows", "a person bows slowly",
         "a person bows quickly")
LIMBS = [JOINT_INDEX[j] for j in ("r_wrist", "l_wrist", "head")]


def limb_speed(joints, fps: float = 20.0) -> float:
    """Median over frames of the fastest of the wrists and the head, relative to the pelvis (m/s)."""
    j = np.asarray(joints)
    rel = j[:, LIMBS] - j[:, PELVIS:PELVIS + 1]
    return float(np.median(np.linalg.norm(np.diff(rel, axis=0), axis=-1).max(-1)) * fps)


def median_speed(joints, fps: float = 20.0) -> float:
    """Median over frames of the pelvis's horizontal speed (m/s)."""
    p = np.asarray(joints)[:, PELVIS][:, [0, 2]]
    return float(np.median(np.linalg.norm(np.diff(p, axis=0), axis=1)) * fps)


def figures(motions) -> dict:
    t = [travel(m.joints) for m in motions]
    fwd = np.array([x.forward_m for x in t])
    skate = [foot_skate(m.joints) for m in motions]
    return {"seconds": np.array([m.seconds for m in motions]), "forward": fwd,
            "speed": float(np.median([median_speed(m.joints) for m in motions])),
            "skate": float(np.nanmedian(skate)) if np.isfinite(skate).any() else float("nan"),
            "ways": (int(sum(x.direction == "forward" for x in t)), int(sum(x.direction == "backward" for x in t)))}


def run(bamm, prompts, seeds, **kwargs) -> dict[str, dict]:
    """{prompt: figures} over seeds; every prompt of a seed in one batch."""
    clips: dict[str, list] = {p: [] for p in prompts}
    for seed in seeds:
        for p, m in zip(prompts, bamm.generate(list(prompts), seed=seed, **kwargs)):
            clips[p].append(m)
    return {p: figures(ms) for p, ms in clips.items()}


def row(label: str, f: dict, plain_speed: float) -> str:
    s, fwd = f["seconds"], f["forward"]
    return (f"  {label:44s} {s.mean():5.2f} ({s.min():4.1f}-{s.max():4.1f})  {np.median(fwd):6.2f} "
            f"({fwd.min():5.2f}..{fwd.max():5.2f})  {f['speed']:5.2f} {f['speed'] / plain_speed:5.2f}x  "
            f"{f['skate']:5.3f}  {f['ways'][0]}/{f['ways'][1]}")


HEADER = (f"  {'prompt':44s} {'seconds (range)':16s}  {'travel m (range)':20s}  {'speed':5s} {'ratio':6s}  "
          f"{'skate':5s}  fwd/back")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    p.add_argument("--weights", default=str(ROOT / "weights"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--levers", action="store_true", help="also measure the alternatives to the chosen levers")
    args = p.parse_args()
    torch.set_num_threads(1)
    bamm = BAMM.from_pretrained(args.weights)
    start = time.time()
    prompts = list(dict.fromkeys([*PACE, *STEPS, *(q for q, _ in DURATIONS)]))
    words = run(bamm, prompts, args.seeds)
    alone = run(bamm, prompts, args.seeds, amounts=False)
    plain = words[PLAIN]["speed"]
    print(f"{args.weights}: {len(prompts)} prompts x {len(args.seeds)} seeds {args.seeds}; speed ratio to "
          f"{PLAIN!r} ({plain:.2f} m/s); travel along the facing")
    for title, group in (("pace words", PACE), ("counted steps", STEPS), ("durations", [q for q, _ in DURATIONS])):
        print(f"{title}\n{HEADER}")
        for q in group:
            print(row(q, words[q], plain))
            if q != PLAIN:
                print(row("  (the model reading the words alone)", alone[q], plain))
    want = dict(DURATIONS)
    hits = sum(abs(s * 20 - want[q]) <= 4 for q in want for s in words[q]["seconds"])
    print(f"durations within one token of the words' length: {hits}/{len(want) * len(args.seeds)}")
    if args.levers:
        levers(bamm, args.seeds, plain)
    print(f"({time.time() - start:.0f} s)")


def levers(bamm, seeds, plain: float) -> None:
    """The alternatives: the length alone for pace and steps, the duration left in the text."""
    print(f"levers not chosen\n{HEADER}")
    for frames in (60, 120, 180):
        print(row(f"{PLAIN!r} at {frames} frames (length alone)", run(bamm, [PLAIN], seeds, frames=frames,
                                                                       amounts=False)[PLAIN], plain))
    for q in ("a person walks", "a person walks forward", STEPS[0], STEPS[1]):
        for frames in (20, 24, 28, 32, 36, 40):
            print(row(f"{q!r} given {frames} frames", run(bamm, [q], seeds, frames=frames, amounts=False)[q],
                      plain))
    for q, frames in DURATIONS[3:5]:
        print(row(f"{q!r}, text as written", run(bamm, [q], seeds, frames=frames, amounts=False)[q], plain))
    print("other actions (pace left to the model): length s, limb speed m/s and its ratio to the plain prompt's; "
          "then stretched by the word's pace as well")
    clips = {q: [] for q in OTHER}
    for seed in seeds:
        for q, m in zip(OTHER, bamm.generate(list(OTHER), seed=seed, amounts=False)):
            clips[q].append(m)
    for q in OTHER:
        base = np.median([limb_speed(m.joints) for m in clips[" ".join(q.split()[:3])]])
        alone = np.median([limb_speed(m.joints) for m in clips[q]])
        pace = parse(q).speed
        both = np.median([limb_speed(stretch(bamm, m, max(8, int(round(m.frames / pace / 4)) * 4)).joints)
                          for m in clips[q]]) if pace != 1.0 else alone
        print(f"  {q:28s} {np.median([m.seconds for m in clips[q]]):5.1f} s  {alone:5.2f} {alone / base:5.2f}x   "
              f"stretched as well {both / base:5.2f}x")


if __name__ == "__main__":
    main()
