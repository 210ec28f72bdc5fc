"""Fill Gap: the motion between two animated parts of an action (or two held poses), generated with an optional
prompt while the keys on both sides stay as they are. On a BAMM Skeleton or a character alike: it is Regenerate
Range (``headless.start_regenerate``) over the empty frames of the gap.

A gap is a run of at least ``headless.MIN_RANGE`` frames without a key on the body's channels (every SMPL bone of
a BAMM Skeleton; the mapped bones of a character, so keyed fingers or props do not hide one) between two keyed
frames. The gap under the playhead is filled, else the longest one.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import armature, bake, headless
from .errors import BammInputError


def _bones(context, obj) -> set[str]:
    rig = headless._target(obj, context)
    return set(armature.BONE_NAMES) if rig is None else set(rig.values())


def gaps(context, obj, action=None) -> list[tuple[int, int]]:
    """``(first, last)`` scene frames (inclusive) of every gap in the armature's action, in time order."""
    if obj is None:
        armature.check_armature(obj)  # "No target armature ..."
    action = action or (obj.animation_data.action if obj.animation_data else None)
    if action is None:
        raise BammInputError(f"'{obj.name}' has no action: a gap lies between two animated parts of one")
    bones = _bones(context, obj)
    frames = set()
    for fcurve in bake.channels(action, obj).fcurves:
        path = fcurve.data_path
        if path.startswith('pose.bones["') and path.split('"')[1] in bones and len(fcurve.keyframe_points):
            co = np.empty(2 * len(fcurve.keyframe_points))
            fcurve.keyframe_points.foreach_get("co", co)
            frames.update(np.round(co[0::2]).astype(int).tolist())
    keyed = sorted(frames)
    return [(a + 1, b - 1) for a, b in zip(keyed[:-1], keyed[1:]) if b - a - 1 >= headless.MIN_RANGE]


def find_gap(context, obj, frame: int | None = None) -> tuple[int, int]:
    """The gap holding ``frame`` (default: the current frame), else the longest; BammInputError when none."""
    found = gaps(context, obj)
    if not found:
        raise BammInputError(f"No gap in the action of '{obj.name}': Fill Gap needs at least {headless.MIN_RANGE} "
                             "frames without keys between two animated parts (delete the keys in between first)")
    frame = context.scene.frame_current if frame is None else frame
    under = [g for g in found if g[0] <= frame <= g[1]]
    return under[0] if under else max(found, key=lambda g: (g[1] - g[0], -g[0]))


def start_fill_gap(context, *, target, prompt: str | None = None, frame: int | None = None,
                   **kwargs) -> headless.Task:
    """Submit the generation of a gap of the target's action (``find_gap``); ``kwargs`` as for
    ``headless.start_regenerate`` (seed, variations, cfg, engine)."""
    first, last = find_gap(context, target, frame)
    return headless.start_regenerate(context, target=target, first=first, last=last, prompt=prompt, **kwargs)


def fill_gap(context, *, timeout: float | None = None, **kwargs) -> list[bpy.types.Action]:
    """``start_fill_gap`` + wait + ``finish`` (blocking)."""
    return headless.run(context, start_fill_gap(context, **kwargs), timeout=timeout)
