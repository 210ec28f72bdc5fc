"""Editing the animator's own animation on characters (headless Blender, the shipped weights on the CPU).

    python bench/rig_edit.py [--data data_cache/bandai] [--clips 2] [--sources walk,wave-left-hand]
                             [--per-action 2] [--fps 24] [--seed 0] [--runtime] [--rest]

Held-out real clips (the longest of the test split of a Bandai-Namco build, ``--data``, of each ``--sources``
content: by default walks, which travel through the range, and left-hand waves, which stand) are retargeted by the
add-on's Retarget onto three characters (``tests/support/rig_edits.py``: Mixamo names at the FBX importer's 0.01
scale, a Rigify-like deform rig, Mixamo names with an unmapped keyed bone between the chest and the neck; fingers
and a custom property keyed too) as "the animator's animation". The middle 2 s of each is regenerated on the
character with held-out prompts (``model_core/eval/prompts_heldout.jsonl``) of arm and upper-body actions. Prints,
per character:

* keys outside the range that are not bit-identical (every F-curve; must be 0);
* limb direction error (degrees, as in the retarget tests) of the character against the model's joints in the
  range past the seam blends, next to plain Retarget of the same joints from a BAMM Skeleton;
* seam step: the joints' displacement across each seam over the clip's own median frame-to-frame displacement
  (target <= 1.5), the velocity change there over the clip's median, and the step over the motion beside the
  seam (the new motion's inside, the clip's outside: a still clip's own median is a fraction of a millimetre);
* action accuracy of the range (the evaluator's classifier on the range read back from the character, and on the
  model's own edit output) next to plain generation of the same prompts at the range's length with the same seeds
  (clip k of a source is edited with seed ``--seed`` + k) (target: the edit >= plain generation);
* action accuracy of Extend After (``RANGE_S``, the same prompts, the Mixamo character) on the added seconds;
* timing: warm Regenerate Range of 2 s on the Mixamo character with five-finger hands (65 bones, every finger
  keyed on every frame), median of 5, split into reading the character, the model job and writing the keys;
  in-process torch, and with ``--runtime`` also the bundled ONNX runtime in its worker process (the add-on's
  default). Target <= 1 s.

``--rest`` prints the mean clip offsets of the hips and collars in ``--data`` (``armature.CLIP_REST_OFFSETS``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import bpy  # noqa: E402
import torch  # noqa: E402
from support import rig_edits  # noqa: E402

import bamm_blender  # noqa: E402
from bamm_blender import armature, axes, backend, bake, headless, retarget, rig_source  # noqa: E402
from model_core.data.humanml3d import load_stats  # noqa: E402
from model_core.decoding.generate import BAMM  # noqa: E402
from model_core.eval import heldout  # noqa: E402
from model_core.eval.protocol import classify  # noqa: E402
from model_core.eval.train_evaluator import load_evaluator  # noqa: E402
from model_core.motion import ik  # noqa: E402
from model_core.motion.features import extract_features  # noqa: E402

ACTIONS = ("wave-right-hand", "wave-both-hands", "raise-up-right-hand", "raise-up-both-hands", "bow", "punch")
RANGE_S = 2.0


def clips(data: Path, n: int, content: str = "walk") -> list[tuple[str, np.ndarray]]:
    """The ``n`` longest held-out clips of ``content``."""
    rows = [json.loads(line) for line in (data / "meta.jsonl").read_text().splitlines()]
    found = sorted((r for r in rows if r["split"] == "test" and r["content"] == content), key=lambda r: -r["frames"])
    return [(r["id"], np.load(data / "new_joints" / f"{r['id']}.npy")) for r in found[:n]]


def scene(fps: int):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = fps, 1.0
    return bpy.context


def mid_range(key_first: int, key_last: int, fps: int) -> tuple[int, int]:
    half = int(round(RANGE_S / 2 * fps))
    middle = (key_first + key_last) // 2
    return middle - half, middle + half - 1


def model_at(joints, frames, origin, fps):
    rest = armature.MODEL_SKELETON.rest
    return ik.forward(ik.sample(ik.solve(joints, rest=rest), (frames - origin) * 20.0 / fps), rest=rest)


def retarget_errors(context, style: str, joints: np.ndarray, frames: np.ndarray, origin: float, fps: int):
    """Direction errors of plain Retarget of ``joints`` from a BAMM Skeleton onto a fresh character of ``style``."""
    source = armature.build_armature(context, name="Plain source")
    bake.assign_action(source, bake.bake_joints(source, joints, scene=context.scene, first_frame=int(origin),
                                                name="plain"))
    base, matrix = rig_edits.STYLES[style]
    rig = rig_edits.rigs.build_rig(context, base, name="Plain", matrix_world=matrix)
    retarget.retarget(context, source, rig, hide_source=False)
    mapping = rig_source.character(context, rig).mapping
    heads = rig_edits.world_heads(rig, [mapping[n] for n in armature.BONE_NAMES], frames)
    source_heads = rig_edits.world_heads(source, armature.BONE_NAMES, frames)  # both face -Y: world directions
    return rig_edits.direction_errors(heads, axes.to_model(source_heads), np.eye(3))


def one_edit(context, style, joints, prompt, seed, fps, stats):
    rig, action = rig_edits.animated_character(context, style, joints)
    before = rig_edits.all_keys(rig, action)
    key_first, key_last = bake.key_range(rig, action)
    first, last = mid_range(key_first, key_last, fps)
    task = headless.start_regenerate(context, target=rig, first=first, last=last, prompt=prompt, seed=seed)
    (motion,) = task.job.wait(300)
    (edited,) = headless.finish(context, task)
    out = {"bad_keys": len(rig_edits.outside_differences(before, rig_edits.all_keys(rig, edited), first, last))}
    ch = rig_source.character(context, rig)
    bones = [ch.mapping[n] for n in armature.BONE_NAMES]
    frames = np.arange(key_first, key_last + 1)
    heads = rig_edits.world_heads(rig, bones, frames)
    blend = int(round(headless.SEAM_BLEND_S * fps))
    middle = np.arange(first + blend + 1, last - blend)
    out["direction"] = rig_edits.direction_errors(heads[middle - key_first],
                                                  model_at(motion.joints, middle, task.origin, fps), ch.plan.facing)
    out["retarget"] = retarget_errors(context, style, motion.joints, middle, task.origin, fps)
    bake.assign_action(rig, action)
    original = rig_edits.world_heads(rig, bones, frames)
    out["steps"] = np.array(rig_edits.seam_jumps(heads, frames, first, last)) / np.median(rig_edits.speeds(original))
    out["local"] = np.array(local_steps(heads, original, frames, first, last))
    acc = np.linalg.norm(original[2:] - 2 * original[1:-1] + original[:-2], axis=-1).mean(-1)
    out["accelerations"] = np.array(rig_edits.seam_accelerations(heads, frames, first, last)) / np.median(acc)
    bake.assign_action(rig, edited)
    read, _, _ = rig_source.model_joints(ch, edited, context.scene)
    start, end = int(np.floor((first - key_first) * 20 / fps)), int(np.ceil((last - key_first) * 20 / fps)) + 1
    out["features"] = ((extract_features(read[start:end]) - stats[0]) / stats[1]).astype(np.float32)
    out["model_features"] = ((extract_features(motion.joints[start:end]) - stats[0]) / stats[1]).astype(np.float32)
    out["frames"] = end - start
    return out


def local_steps(edited: np.ndarray, original: np.ndarray, frames: np.ndarray, first: int, last: int) -> list[float]:
    """Each seam's step over the motion beside it: the larger of the new motion's median step over the 4 frames
    inside the range and the original's over the 4 frames outside (a still clip's own median is near nothing)."""
    new, old = rig_edits.speeds(edited), rig_edits.speeds(original)
    out = []
    for seam, inside, outside in ((first - 1, slice(1, 5), slice(-4, 0)), (last, slice(-4, 0), slice(1, 5))):
        i = seam - int(frames[0])
        if 4 <= i < len(new) - 4:
            beside = max(np.median(new[i + inside.start:i + inside.stop]),
                         np.median(old[i + outside.start:i + outside.stop]))
            out.append(float(new[i] / beside))
    return out


def one_extend(context, joints, prompt, seed, fps, stats) -> np.ndarray:
    """Extend After by RANGE_S with ``prompt`` on the Mixamo character: the added seconds' features as read back."""
    rig, action = rig_edits.animated_character(context, "mixamo_cm", joints)
    _, key_last = bake.key_range(rig, action)
    task = headless.start_extend(context, target=rig, side="AFTER", seconds=RANGE_S, prompt=prompt, seed=seed)
    task.job.wait(300)
    (extended,) = headless.finish(context, task)
    read, first, _ = rig_source.model_joints(rig_source.character(context, rig), extended, context.scene)
    start = int(np.ceil((key_last + 1 - first) * 20 / fps))
    return ((extract_features(read[start:]) - stats[0]) / stats[1]).astype(np.float32)


def timing(context, engine, joints, fps, repeat=5) -> dict[str, float]:
    with headless.use_engine(engine):
        rig, action = rig_edits.animated_character(scene(fps), "mixamo_cm", joints, hands=True)
        key_first, key_last = bake.key_range(rig, action)
        first, last = mid_range(key_first, key_last, fps)
        parts = defaultdict(list)
        for k in range(repeat + 1):  # the first press warms the model up
            bake.assign_action(rig, action)
            t0 = time.perf_counter()
            rig_source.model_joints(rig_source.character(context, rig), action, context.scene)
            t1 = time.perf_counter()
            task = headless.start_regenerate(context, target=rig, first=first, last=last, prompt="a person bows",
                                             seed=k)
            task.job.wait(300)
            t2 = time.perf_counter()
            headless.finish(context, task)
            t3 = time.perf_counter()
            if k:
                parts["read the character"].append(t1 - t0)
                parts["submit + model job (reads again)"].append(t2 - t1)
                parts["write the keys"].append(t3 - t2)
                parts["whole Regenerate Range"].append(t3 - t1)
    return {name: statistics.median(v) for name, v in parts.items()} | {"bones": len(rig.data.bones)}


def print_rest(data: Path) -> None:
    ids = (data / "train.txt").read_text().split()[:300]
    offsets = np.mean([ik.solve(np.load(data / "new_joints" / f"{i}.npy"), rest=armature.reference_rest())
                       .offsets.mean(0) for i in ids], axis=0)
    print({j: tuple(round(float(v), 4) for v in offsets[j]) for j in (1, 2, 13, 14)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    p.add_argument("--data", default=str(ROOT / "data_cache" / "bandai"))
    p.add_argument("--weights", default=str(ROOT / "weights"))
    p.add_argument("--evaluator", default=str(ROOT / "weights" / "evaluator"))
    p.add_argument("--clips", type=int, default=2, help="clips of each source content")
    p.add_argument("--sources", default="walk,wave-left-hand",
                   help="contents of the held-out clips edited (a travelling and a standing one by default)")
    p.add_argument("--per-action", type=int, default=2)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runtime", action="store_true", help="also time the bundled ONNX runtime worker")
    p.add_argument("--rest", action="store_true", help="print the mean clip offsets of --data and stop")
    args = p.parse_args()
    data = Path(args.data)
    if not (data / "meta.jsonl").is_file():
        raise SystemExit(f"no labelled dataset in {data}: build one with 'bamm data build bandai' (or --data)")
    if args.rest:
        return print_rest(data)
    torch.set_num_threads(1)
    stats = load_stats(data)
    _, classifier, labels = load_evaluator(args.evaluator)
    prompts = [q for a in ACTIONS for q in [q for q in heldout.load_prompts() if q.action == a][:args.per_action]]
    model = BAMM.from_pretrained(args.weights)
    bamm_blender.register()
    engine = headless.Engine(backend.InProcessBackend(model=model), {"weights": args.weights})
    results, extends = defaultdict(list), defaultdict(list)
    start = time.time()
    seeds = [args.seed + k for k in range(args.clips)]  # clip k of each source is edited with seed k
    with headless.use_engine(engine):
        for content in args.sources.split(","):
            for (clip_id, joints), seed in zip(clips(data, args.clips, content), seeds):
                for style in rig_edits.STYLES:
                    for q in prompts:
                        results[content, style].append((q, one_edit(scene(args.fps), style, joints, q.prompt, seed,
                                                                    args.fps, stats)))
                for q in prompts:
                    extends[content].append((q, one_extend(scene(args.fps), joints, q.prompt, seed, args.fps, stats)))
    print(f"{args.clips} held-out clips of each of {args.sources} x {len(prompts)} prompts of {', '.join(ACTIONS)}; "
          f"{RANGE_S:g} s ranges at {args.fps} fps; seeds {seeds}; {time.time() - start:.0f} s")
    plain_hits = []
    for q in prompts:  # plain generation of each prompt at the length of the range, with the same seeds
        frames = int(round(RANGE_S * 20 / 4)) * 4
        for seed in seeds:
            (m,) = model.generate(q.prompt, frames=frames, seed=seed)
            predicted, _ = classify(classifier, [((m.features - stats[0]) / stats[1]).astype(np.float32)])
            plain_hits.append(labels["contents"][predicted[0]] == q.action)
    for (content, style), rows in results.items():
        predicted, _ = classify(classifier, [r["features"] for _, r in rows])
        hits = [labels["contents"][c] == q.action for (q, _), c in zip(rows, predicted)]
        predicted, _ = classify(classifier, [r["model_features"] for _, r in rows])
        model_hits = [labels["contents"][c] == q.action for (q, _), c in zip(rows, predicted)]
        direction = np.concatenate([r["direction"].ravel() for _, r in rows])
        plain = np.concatenate([r["retarget"].ravel() for _, r in rows])
        steps = np.concatenate([r["steps"] for _, r in rows])
        local = np.concatenate([r["local"] for _, r in rows])
        accel = np.concatenate([r["accelerations"] for _, r in rows])
        bad = sum(r["bad_keys"] for _, r in rows)
        print(f"{content} clips on {style}: {len(rows)} edits, keys outside not bit-identical: {bad}")
        print(f"  limb direction error in the range (deg): mean {direction.mean():.2f}, p95 "
              f"{np.percentile(direction, 95):.2f}, max {direction.max():.2f}; plain Retarget of the same joints: "
              f"mean {plain.mean():.2f}, p95 {np.percentile(plain, 95):.2f}, max {plain.max():.2f}")
        print(f"  seam step / clip median: median {np.median(steps):.2f}, max {steps.max():.2f} (target <= 1.5); "
              f"velocity change / clip median: median {np.median(accel):.2f}, max {accel.max():.2f}; seam step / "
              f"the motion beside it: median {np.median(local):.2f}, max {local.max():.2f}")
        print(f"  action of the range on the character: {np.mean(hits):.2f} ({sum(hits)}/{len(hits)}); in the model's "
              f"own edit (its joints, before the character): {np.mean(model_hits):.2f}; plain generation of the "
              f"same prompts: {np.mean(plain_hits):.2f} ({sum(plain_hits)}/{len(plain_hits)})")
    for content, rows in extends.items():
        predicted, _ = classify(classifier, [f for _, f in rows])
        hits = [labels["contents"][c] == q.action for (q, _), c in zip(rows, predicted)]
        print(f"Extend After {RANGE_S:g} s of {content} clips on mixamo_cm: action of the added seconds "
              f"{np.mean(hits):.2f} ({sum(hits)}/{len(hits)}); plain generation {np.mean(plain_hits):.2f}")
    joints = clips(data, 1)[0][1]
    for name, engine_ in [("in-process torch", engine)] + ([("bundled runtime worker", runtime_engine())]
                                                          if args.runtime else []):
        figures = timing(bpy.context, engine_, joints, args.fps)
        bones = figures.pop("bones")
        print(f"warm Regenerate Range of {RANGE_S:g} s on the Mixamo character ({bones} bones), {name}: "
              + ", ".join(f"{k} {v:.3f} s" for k, v in figures.items()))
    bamm_blender.unregister()


def runtime_engine() -> headless.Engine:
    from model_core.cli.blender import export_runtime

    folder = export_runtime(ROOT, ROOT / "weights", ROOT / ".cache")
    worker = backend.get_backend("RUNTIME", exchange_dir=tempfile.mkdtemp(prefix="bamm-bench-"), paths=[])
    return headless.Engine(worker, {"backend": "onnx", "runtime": str(folder), "device": "cpu"})


if __name__ == "__main__":
    main()
