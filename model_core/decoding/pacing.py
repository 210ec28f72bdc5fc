"""A generated motion shaped by its prompt's words about length and pace (`amounts.Pace`): the one place where
it happens, called by `Generator.generate` on every motion it returns (so the CLI, the worker, the add-on and
the plans all get it). Numpy only.

* a short walk's length from the words (``pace.keep``): the middle of what the model made at
  ``amounts.WALK_FRAMES``;
* counted steps: the motion is cut where its foot comes down for that many-th time (the decoder's contact
  channels; `motion.retime.touchdowns`), in whole tokens and at least ``amounts.MIN_KEEP_TOKENS`` tokens; tokens
  are cut with it, so the result is a prefix of what the model made;
* pace: the joints are resampled in time (`motion.retime.retime`, the feet locked on the resampled contacts)
  to ``pace.out`` frames, or to the generated length / speed in whole tokens; the features are taken from the
  new joints and the tokens re-encoded from them, so editing and extending the result work as for any motion.
  A runtime without a motion encoder (an export without vq_encode) keeps the tokens it generated: they no
  longer match the motion's length, so edits of it are refused, as for any motion it did not make.
"""

from __future__ import annotations

import numpy as np

from ..contract.amounts import MIN_KEEP_TOKENS, Pace
from ..motion import features as F
from ..motion.retime import retime, touchdowns


def keep_steps(motion, steps: int, frames_per_token: int):
    """`motion` up to its ``steps``-th foot touch-down (the whole tokens before it, at least MIN_KEEP_TOKENS);
    unchanged when it has fewer touch-downs or is already that short."""
    down = touchdowns(F.foot_contacts(motion.features))
    if len(down) < steps:
        return motion
    f = frames_per_token
    return cut(motion, max(MIN_KEEP_TOKENS * f, (down[steps - 1] + 1) // f * f), f)


def cut(motion, frames: int, frames_per_token: int, *, middle: bool = False):
    """``frames`` frames of `motion` (whole tokens) and their tokens: its start, or with ``middle`` the frames
    around its middle, whose joints are recovered from their features (so they start at the origin facing +Z,
    as every generated motion does)."""
    if frames >= len(motion.joints):
        return motion
    f = frames_per_token
    start = (len(motion.joints) - frames) // 2 // f * f if middle else 0
    feats = motion.features[start:start + frames]
    joints = F.recover_from_ric(feats) if start else motion.joints[:frames]
    return type(motion)(joints=joints, features=feats, tokens=motion.tokens[start // f:start // f - (-frames // f)],
                        prompt=motion.prompt, fps=motion.fps)


def stretch(model, motion, frames: int):
    """`motion` resampled in time to ``frames`` frames (same path; feet locked on its resampled contacts), with
    features from the new joints and tokens re-encoded by ``model`` (kept when it has no motion encoder)."""
    if frames == len(motion.joints):
        return motion
    joints = retime(motion.joints, frames, F.foot_contacts(motion.features))
    feats = F.extract_features(joints)
    feats = np.concatenate([feats, feats[-1:]], 0)
    try:
        tokens = model.features_to_codes(feats)
    except ValueError:  # no motion encoder (a runtime without vq_encode)
        tokens = motion.tokens
    return type(motion)(joints=joints, features=feats, tokens=tokens, prompt=motion.prompt, fps=motion.fps)


def apply(model, motion, pace: Pace):
    """The motion of a generate request shaped by its `Pace`: steps kept, then the pace (see the module)."""
    f = model.frames_per_token
    if pace.keep is not None:
        motion = cut(motion, pace.keep, f, middle=True)
    if pace.steps is not None:
        motion = keep_steps(motion, pace.steps, f)
    if pace.speed != 1.0:
        frames = pace.out if pace.out is not None else max(f, int(round(len(motion.joints) / pace.speed / f)) * f)
        motion = stretch(model, motion, frames)
    return motion
