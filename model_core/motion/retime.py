"""Time-stretching of joint motion and foot touch-downs. Numpy only.

``retime(joints, frames)`` resamples joints ``(T, 22, 3)`` to ``frames`` frames over the same path: the first
and last frames are kept, the frames between are read off a Catmull-Rom spline through the original frames
(smooth velocities, no kinks at the original frames as with linear interpolation; beyond the ends the spline
goes on in a straight line, so a steady motion stays steady). A joint that stays put over four neighbouring
frames stays exactly put, so a planted foot stays planted; ``contacts`` (T or T - 1, 4)
flags (l_ankle, l_foot, r_ankle, r_foot), when given, are resampled with the motion and the feet locked on
them (`foot_contact.foot_lock`), so a foot that slid a little while in contact does not slide faster once the
motion is sped up.

``touchdowns(contacts)``: frames where a foot comes down (its ankle or toe contact starts), in order.
"""

from __future__ import annotations

import numpy as np

from .foot_contact import foot_lock
from .skeleton import NUM_JOINTS


def retime(joints: np.ndarray, frames: int, contacts: np.ndarray | None = None) -> np.ndarray:
    """Joints (frames, 22, 3) float32 playing ``joints`` (T >= 2, 22, 3) over ``frames`` >= 2 frames."""
    j = np.asarray(joints, np.float64)
    if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3) or len(j) < 2:
        raise ValueError(f"joints must have shape (T >= 2, {NUM_JOINTS}, 3), got {j.shape}")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2, got {frames!r}")
    n = len(j)
    t = np.linspace(0.0, n - 1.0, int(frames))
    i = np.clip(np.floor(t).astype(int), 0, n - 2)
    u = (t - i)[:, None, None]
    ends = np.concatenate([2.0 * j[:1] - j[1:2], j, 2.0 * j[-1:] - j[-2:-1]])  # straight-line ghost frames
    p0, p1, p2, p3 = ends[i], j[i], j[i + 1], ends[i + 3]
    out = 0.5 * (2.0 * p1 + (p2 - p0) * u + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * u ** 2
                 + (3.0 * p1 - p0 - 3.0 * p2 + p3) * u ** 3)
    if contacts is None:
        return out.astype(np.float32)
    flags = np.asarray(contacts) > 0.5
    if flags.ndim != 2 or flags.shape[1] != 4 or len(flags) not in (n, n - 1):
        raise ValueError(f"contacts must have shape ({n} or {n - 1}, 4), got {flags.shape}")
    nearest = np.minimum(np.rint(t[:-1] * (len(flags) - 1) / max(n - 1, 1)).astype(int), len(flags) - 1)
    return foot_lock(out, flags[nearest])


def touchdowns(contacts: np.ndarray) -> list[int]:
    """Frames (ascending) at which a foot comes down: its ankle-or-toe contact flag rises (frame 0 excluded).
    ``contacts``: (T, 4) flags (l_ankle, l_foot, r_ankle, r_foot)."""
    flags = np.asarray(contacts) > 0.5
    if flags.ndim != 2 or flags.shape[1] != 4:
        raise ValueError(f"contacts must have shape (T, 4), got {flags.shape}")
    down = []
    for foot in (flags[:, 0] | flags[:, 1], flags[:, 2] | flags[:, 3]):
        down.extend(int(k) + 1 for k in np.flatnonzero(~foot[:-1] & foot[1:]))
    return sorted(down)
