"""Tokenizer reconstruction error: MPJPE (mm) between a clip's joints and the joints of its RVQ
encode → decode round trip, over a dataset split."""

from __future__ import annotations

import numpy as np
import torch

from ..data.humanml3d import load_split
from ..motion.contact_root import contact_root
from ..motion.features import denormalize, normalize, recover_from_ric


@torch.no_grad()
def tokenizer_mpjpe(vq, mean, std, data_root, *, split: str = "test", layers: int | None = None) -> dict:
    """Mean per-joint position error in millimetres (all joints, all frames) of ``vq.decode(vq.encode(x))``
    on every clip of ``split``; clips are cut to a multiple of 4 frames.

    Two conventions: ``mpjpe_mm`` compares joints with their global trajectory (drift of the integrated root
    counts); ``aligned_mpjpe_mm`` first moves each frame's pelvis to the origin in both, as the MoMask / BAMM
    tokenizer evaluation does (``calculate_mpjpe``), so it compares with their published figures.
    Clips go to the device of ``mean`` (pass the model's statistics tensors for a GPU model).
    ``layers``: use only the first ``layers`` RVQ layers (None = all). Also returns the median and
    95th-percentile clip of the global figure.
    """
    vq = vq.eval()
    mean_t, std_t = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
    per_clip, errors, aligned, frames = [], 0.0, 0.0, 0
    f = vq.config.frames_per_token
    for clip in load_split(data_root, split):
        n = len(clip.features) // f * f
        if n == 0:
            continue
        x = torch.from_numpy(np.asarray(clip.features[:n], dtype=np.float32)).to(mean_t.device)
        codes = vq.encode(normalize(x, mean_t, std_t)[None])
        if layers is not None:
            codes = codes[..., :layers]
        recon = denormalize(vq.decode(codes)[0], mean_t, std_t)
        if vq.config.contact_root:
            recon = contact_root(recon)
        joints_hat, joints = recover_from_ric(recon), recover_from_ric(x)  # (n, 22, 3) metres
        err = torch.linalg.vector_norm(joints_hat - joints, dim=-1)
        centred = (joints_hat - joints_hat[:, :1]) - (joints - joints[:, :1])
        per_clip.append(float(err.mean()) * 1000)
        errors += float(err.sum()) * 1000
        aligned += float(torch.linalg.vector_norm(centred, dim=-1).sum()) * 1000
        frames += err.numel()
    if not per_clip:
        raise ValueError(f"split {split!r} of {data_root} has no clip of at least {f} frames")
    return {"clips": len(per_clip), "mpjpe_mm": errors / frames, "aligned_mpjpe_mm": aligned / frames,
            "median_clip_mm": float(np.median(per_clip)),
            "p95_clip_mm": float(np.percentile(per_clip, 95))}
