"""Contact-consistent root: the decoder's root velocity on the steps where its toes are planted.

The 263-d features say twice where a planted toe goes from frame t to t + 1: through the root's XZ velocity
(channels 1:3, in the facing frame of t + 1) and through the toe's position relative to the root (ric). They
agree in real motion; a decoder reproduces each a little off and the toe slides by the difference. With
``contact_root`` the root's velocity of step t -> t + 1 becomes

    v = (1 - s) * v_decoded + s * (sum_k w_k * v_k) / (sum_k w_k),   s = min(1, sum_k w_k),

over the two toes k (l_foot, r_foot), where w_k = min(c_k[t], c_k[t + 1]) is the toe's contact channel
clamped to [0, 1] at both frames and v_k = R_y(2 * yaw_velocity[t]) * ric_k[t] - ric_k[t + 1] (XZ) is the
root velocity that keeps toe k where it was. Steps without contact keep the decoded velocity, a step with
one planted toe gets that toe's, the last frame's velocity (used by no step) is kept. Real clips barely
change (their toes do not slide); the tokenizer whose config says ``contact_root`` is trained with this in
its loss, so its decoder learns to give the positions and contacts this reads (``RVQVAEConfig.contact_root``).
numpy in -> numpy out (float64 computation, input dtype kept); torch in -> torch out, differentiable.
"""

from __future__ import annotations

import numpy as np

from .features import FEATURE_SLICES, _check_features, _is_tensor, _lib, _rotate_y
from .skeleton import JOINT_INDEX, NUM_JOINTS

TOES = (JOINT_INDEX["l_foot"], JOINT_INDEX["r_foot"])
TOE_CONTACTS = tuple(FEATURE_SLICES["contacts"].start + i for i in (1, 3))  # l_foot, r_foot channels
TOE_RIC = tuple(FEATURE_SLICES["ric"].start + 3 * (j - 1) for j in TOES)  # ric holds joints 1..21


def contact_root(features):
    """Features ``(..., T, 263)`` with the root XZ velocity of every toe-contact step replaced (module doc)."""
    _check_features(features, NUM_JOINTS)
    torch_in = _is_tensor(features)
    f = features if torch_in else np.asarray(features, dtype=np.float64)
    lib, cat = _lib(f)
    if f.shape[-2] < 2:
        return features
    steps = []
    for k in TOE_RIC:
        ric = f[..., k:k + 3]
        keep = _rotate_y(ric[..., :-1, :], 2.0 * f[..., :-1, 0]) - ric[..., 1:, :]
        steps.append(keep[..., [0, 2]])
    steps = lib.stack(steps, -2)  # (..., T-1, 2 toes, XZ)
    c = f[..., list(TOE_CONTACTS)]
    c = c.clamp(0.0, 1.0) if torch_in else np.clip(c, 0.0, 1.0)
    w = lib.minimum(c[..., :-1, :], c[..., 1:, :])  # (..., T-1, 2)
    total = w.sum(-1)[..., None]
    planted = (steps * w[..., None]).sum(-2) / lib.maximum(total, lib.full_like(total, 1e-6))
    s = lib.minimum(total, lib.ones_like(total))
    vel = (1.0 - s) * f[..., :-1, 1:3] + s * planted
    out = cat([f[..., :-1, :1], vel, f[..., :-1, 3:]], -1)
    out = cat([out, f[..., -1:, :]], -2)
    return out if torch_in else out.astype(np.asarray(features).dtype, copy=False)
