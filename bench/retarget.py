"""Timing of baking a 10 s clip (200 frames at 20 fps) onto the BAMM Skeleton and retargeting it onto a
Mixamo-named rig (65 bones, FBX-style object transform), headless.

    python bench/retarget.py [--data DIR] [--clip ID] [--repeat N] [--foot-lock]

Prints milliseconds (median over the repeats) for: the bake onto the BAMM Skeleton, the automatic bone map,
the retarget solve, writing the new action, and the whole retarget call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the scripted test rigs

import bpy  # noqa: E402
from mathutils import Matrix  # noqa: E402
from support.rigs import build_rig  # noqa: E402

from bamm_blender import armature, bake, bone_map, retarget  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("BAMM_SHARED_DATA", ROOT.parent / "shared" / "data")) / "humanml3d-format"
FRAMES = 200


def clip(data: Path, clip_id: str) -> np.ndarray:
    joints = np.load(data / "new_joints" / f"{clip_id}.npy")
    if len(joints) < FRAMES:  # hold the last pose up to 10 s
        joints = np.concatenate([joints, np.repeat(joints[-1:], FRAMES - len(joints), axis=0)])
    return joints[:FRAMES]


def run_once(joints: np.ndarray, foot_lock: bool) -> dict[str, float]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    context = bpy.context
    context.scene.render.fps = 20
    source = armature.build_armature(context)
    target = build_rig(context, "mixamo", matrix_world=np.array(
        Matrix.Rotation(np.pi / 2, 4, "X") @ Matrix.Diagonal((0.01, 0.01, 0.01, 1.0))))
    times = {}
    start = time.perf_counter()
    action = bake.bake_joints(source, joints, scene=context.scene, first_frame=1, name="clip")
    bake.assign_action(source, action)
    times["bake onto BAMM Skeleton"] = time.perf_counter() - start

    start = time.perf_counter()
    mapping = bone_map.auto_map(bone_map.Rig.from_armature(target))
    times["auto bone map"] = time.perf_counter() - start
    options = retarget.RetargetOptions(foot_lock=foot_lock)
    start = time.perf_counter()
    _frames, pose = retarget.source_motion(source, context.scene, options)
    rotations, location = retarget.solve(source, target, mapping, pose)
    times["read source + solve"] = time.perf_counter() - start
    start = time.perf_counter()
    retarget.write_action(target, _frames, rotations, location, root_bone=mapping["pelvis"], name="solved")
    times["write action"] = time.perf_counter() - start

    start = time.perf_counter()
    retarget.retarget(context, source, target, options=options)
    times["retarget() total"] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clip", default="007005")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--foot-lock", action="store_true")
    args = parser.parse_args()
    joints = clip(args.data, args.clip)
    run_once(joints, args.foot_lock)  # warm-up
    runs = [run_once(joints, args.foot_lock) for _ in range(args.repeat)]
    print(f"clip {args.clip}: {len(joints)} frames at 20 fps onto a Mixamo-named rig, "
          f"median of {args.repeat} runs{' (foot lock)' if args.foot_lock else ''}")
    for key in runs[0]:
        print(f"  {key:26s} {1000 * statistics.median(r[key] for r in runs):8.1f} ms")


if __name__ == "__main__":
    main()
