"""Stick-figure previews of joint motion: an animated GIF and a PNG filmstrip (Pillow only).

The camera looks at the character from a fixed three-quarter view; the floor is drawn as a grid
and the root trajectory as a line, so sliding feet and drifting roots are easy to see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..motion.skeleton import KINEMATIC_CHAIN

CHAIN_COLOURS = [(220, 60, 60), (60, 110, 220), (40, 40, 40), (230, 130, 40), (40, 160, 90)]
BACKGROUND = (250, 250, 247)
GRID = (215, 215, 210)


def _view_matrix(yaw_deg: float = 35.0, pitch_deg: float = 20.0) -> np.ndarray:
    """Rows: screen-right, screen-up, depth; for Y-up joints viewed from front-left and above."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    right = np.array([np.cos(y), 0.0, -np.sin(y)])
    forward = np.array([np.sin(y) * np.cos(p), -np.sin(p), np.cos(y) * np.cos(p)])  # camera looks along -forward
    up = np.cross(forward, right)
    return np.stack([right, up, forward])


class StickFigureRenderer:
    """Projects a whole clip once (fixed framing) and draws any frame."""

    def __init__(self, joints: np.ndarray, *, size: int = 320, margin: float = 0.08):
        joints = np.asarray(joints, dtype=np.float64)
        if joints.ndim != 3 or joints.shape[1:] != (22, 3) or len(joints) == 0:
            raise ValueError(f"joints must be (T, 22, 3), got {joints.shape}")
        self.joints, self.size = joints, size
        self.view = _view_matrix()
        lo, hi = joints[..., [0, 2]].min((0, 1)) - 0.5, joints[..., [0, 2]].max((0, 1)) + 0.5
        gx = np.arange(np.floor(lo[0]), np.ceil(hi[0]) + 1e-6, 0.5)
        gz = np.arange(np.floor(lo[1]), np.ceil(hi[1]) + 1e-6, 0.5)
        self.grid = [np.array([[x, 0, gz[0]], [x, 0, gz[-1]]]) for x in gx] + \
                    [np.array([[gx[0], 0, z], [gx[-1], 0, z]]) for z in gz]
        floor = joints[:, [0]] * np.array([1.0, 0.0, 1.0])  # the root's shadow keeps the floor in frame
        pts = np.concatenate([joints.reshape(-1, 3), floor[:, 0]]) @ self.view[:2].T
        self.lo, span = pts.min(0), (pts.max(0) - pts.min(0)).max()
        self.scale = size * (1 - 2 * margin) / max(span, 1e-6)
        self.offset = np.array([size, size]) * margin + (size * (1 - 2 * margin) - (pts.max(0) - self.lo) * self.scale) / 2

    def project(self, points: np.ndarray) -> np.ndarray:
        xy = (points @ self.view[:2].T - self.lo) * self.scale + self.offset
        xy[..., 1] = self.size - xy[..., 1]
        return xy

    def frame(self, t: int, *, label: str = "") -> Image.Image:
        img = Image.new("RGB", (self.size, self.size), BACKGROUND)
        draw = ImageDraw.Draw(img)
        for line in self.grid:
            draw.line([tuple(p) for p in self.project(line)], fill=GRID, width=1)
        trail = self.project(self.joints[: t + 1, 0] * np.array([1.0, 0.0, 1.0]))
        if len(trail) > 1:
            draw.line([tuple(p) for p in trail], fill=(170, 170, 230), width=2)
        pose = self.project(self.joints[t])
        for chain, colour in zip(KINEMATIC_CHAIN, CHAIN_COLOURS):
            draw.line([tuple(pose[j]) for j in chain], fill=colour, width=4, joint="curve")
        head = pose[15]
        draw.ellipse([head[0] - 6, head[1] - 6, head[0] + 6, head[1] + 6], fill=(40, 40, 40))
        if label:
            draw.text((6, 6), label, fill=(60, 60, 60))
        return img


def save_gif(joints: np.ndarray, path: str | Path, *, fps: float = 20.0, size: int = 320, caption: str = "") -> Path:
    """Animated GIF of the clip at ``fps`` (GIF stores frame times in 10 ms steps)."""
    r = StickFigureRenderer(joints, size=size)
    frames = [r.frame(t, label=f"{caption[:40]}  {t / fps:4.1f}s") for t in range(len(joints))]
    path = Path(path)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0,
                   optimize=False)
    return path


def save_filmstrip(joints: np.ndarray, path: str | Path, *, count: int = 8, fps: float = 20.0,
                   size: int = 240) -> Path:
    """``count`` evenly spaced frames side by side in one PNG."""
    r = StickFigureRenderer(joints, size=size)
    times = np.linspace(0, len(joints) - 1, min(count, len(joints))).round().astype(int)
    strip = Image.new("RGB", (size * len(times), size), BACKGROUND)
    for k, t in enumerate(times):
        strip.paste(r.frame(int(t), label=f"{t / fps:.1f}s"), (k * size, 0))
    path = Path(path)
    strip.save(path)
    return path
