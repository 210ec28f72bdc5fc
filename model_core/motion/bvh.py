"""BVH motion files: parser, forward kinematics and writer for any rig.

Conventions (the common reading of the Biovision format, also Blender's):
- Joints are stored depth-first, in file order, so ``parents[j] < j`` and the motion columns of a joint follow
  those of its parent and earlier siblings.
- A joint's local translation is its OFFSET, except that each position channel present *replaces* the matching
  OFFSET component (root translation, and rigs such as Bandai-Namco's that key every joint's position).
- Rotation channels are Euler angles in degrees, applied as intrinsic rotations in the order they are listed:
  ``Zrotation Xrotation Yrotation`` means ``R = Rz @ Rx @ Ry`` (``rotations.quat_from_euler("ZXY", ...)``).
- World transform of a joint = parent world transform @ translate(local translation) @ rotate(R).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .rotations import quat_apply, quat_from_euler, quat_identity, quat_multiply, quat_to_euler

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_CANONICAL = {name.lower(): name for name in POSITION_CHANNELS + ROTATION_CHANNELS}
_TOKEN = re.compile(r"[{}]|[^\s{}]+")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
MAX_DEPTH = 256  # joint nesting levels (real rigs: under 40); deeper files are refused with a message


class BvhError(ValueError):
    """A malformed BVH file; the message starts with ``<file>:<line>:``."""


@dataclass
class BvhJoint:
    name: str
    parent: int  # index of the parent joint, -1 for the root
    offset: np.ndarray  # (3,) rest translation from the parent
    channels: tuple[str, ...] = ()  # e.g. ("Xposition", "Yposition", "Zposition", "Zrotation", ...)
    end_site: np.ndarray | None = None  # (3,) offset of the End Site, if the joint has one


@dataclass
class BvhSkeleton:
    joints: list[BvhJoint]

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def parents(self) -> np.ndarray:
        return np.array([j.parent for j in self.joints], dtype=np.int64)

    @property
    def offsets(self) -> np.ndarray:
        return np.array([j.offset for j in self.joints], dtype=np.float64).reshape(-1, 3)

    @property
    def channels(self) -> list[tuple[str, ...]]:
        return [j.channels for j in self.joints]

    @property
    def end_sites(self) -> list[np.ndarray | None]:
        return [j.end_site for j in self.joints]

    @property
    def channel_starts(self) -> np.ndarray:
        """Index of each joint's first column in the motion array."""
        counts = [len(j.channels) for j in self.joints]
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    @property
    def n_channels(self) -> int:
        return sum(len(j.channels) for j in self.joints)

    def rotation_order(self, j: int) -> str:
        """Axes of joint ``j``'s rotation channels in file order, e.g. ``"ZXY"`` ("" when it has none)."""
        return "".join(c[0] for c in self.joints[j].channels if c in ROTATION_CHANNELS)


@dataclass
class BvhClip:
    skeleton: BvhSkeleton
    frame_time: float  # seconds per frame
    motion: np.ndarray  # (F, n_channels) float64, the channel values of each frame
    source: str = "<string>"

    @property
    def n_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


class _Tokens:
    """Whitespace/brace tokens of the HIERARCHY section with their 1-based line numbers."""

    def __init__(self, lines: list[str], source: str):
        self.source, self.line, self._last_line, self._pos = source, 0, len(lines), 0
        self._items = [(n, tok) for n, text in enumerate(lines, 1) for tok in _TOKEN.findall(text)]

    def error(self, message: str, line: int | None = None) -> BvhError:
        return BvhError(f"{self.source}:{self.line if line is None else line}: {message}")

    def at_end(self) -> bool:
        return self._pos >= len(self._items)

    def next(self, what: str) -> str:
        if self.at_end():
            raise self.error(f"unexpected end of file (truncated?), expected {what}", self._last_line)
        self.line, tok = self._items[self._pos]
        self._pos += 1
        return tok

    def name(self) -> str:
        """A joint name: the rest of the current line up to '{' (names may contain spaces)."""
        keyword_line, parts = self.line, []
        while not self.at_end() and self._items[self._pos][0] == keyword_line and self._items[self._pos][1] != "{":
            parts.append(self.next("joint name"))
        if not parts:
            raise self.error("missing joint name", keyword_line)
        return " ".join(parts)

    def expect(self, keyword: str) -> None:
        tok = self.next(keyword)
        if tok != keyword:
            raise self.error(f"expected {keyword!r}, found {tok!r}")

    def vector(self, what: str) -> np.ndarray:
        values = [self.next(what) for _ in range(3)]
        if not all(re.fullmatch(_NUMBER, v) for v in values):
            raise self.error(f"{what} must be three finite numbers, found {' '.join(values)!r}")
        return np.array(values, dtype=np.float64)


def _parse_channels(tokens: _Tokens, joint: str) -> tuple[str, ...]:
    count_tok = tokens.next("channel count")
    if not count_tok.isdigit():
        raise tokens.error(f"joint {joint!r}: channel count must be an integer, found {count_tok!r}")
    channels = []
    for _ in range(int(count_tok)):
        tok = tokens.next(f"channel name of joint {joint!r}")
        if tok.lower() not in _CANONICAL:
            raise tokens.error(f"joint {joint!r}: unknown channel {tok!r} (expected X/Y/Z position or rotation; "
                               f"is the CHANNELS count {count_tok} right?)")
        channels.append(_CANONICAL[tok.lower()])
    for kind in (POSITION_CHANNELS, ROTATION_CHANNELS):
        axes = [c for c in channels if c in kind]
        if len(axes) != len(set(axes)):
            raise tokens.error(f"joint {joint!r}: invalid channel order {' '.join(channels)} (repeated axis)")
    return tuple(channels)


def _parse_joint(tokens: _Tokens, joints: list[BvhJoint], parent: int) -> None:
    """The joint after ``ROOT`` / ``JOINT`` and all its descendants, depth-first, without recursion (a file
    nested thousands of levels deep gets a message, not a RecursionError)."""
    def open_joint(parent: int) -> int:  # ``<name> { OFFSET x y z``
        name = tokens.name()
        for keyword in ("{", "OFFSET"):
            tokens.expect(keyword)
        joints.append(BvhJoint(name=name, parent=parent, offset=tokens.vector(f"OFFSET of {name!r}")))
        return len(joints) - 1

    stack, has_children = [open_joint(parent)], set()
    while stack:
        index = stack[-1]
        name = joints[index].name
        tok = tokens.next(f"CHANNELS, JOINT, End Site or '}}' in joint {name!r}")
        if tok == "CHANNELS":
            if index in has_children or joints[index].channels:
                raise tokens.error(f"joint {name!r}: CHANNELS must come once, before the child joints")
            joints[index].channels = _parse_channels(tokens, name)
        elif tok == "JOINT":
            has_children.add(index)
            if len(stack) >= MAX_DEPTH:
                raise tokens.error(f"joint {name!r} is nested {len(stack)} levels deep; at most {MAX_DEPTH} are "
                                   "supported")
            stack.append(open_joint(index))
        elif tok == "End":
            for keyword in ("Site", "{", "OFFSET"):
                tokens.expect(keyword)
            end = tokens.vector(f"End Site OFFSET of {name!r}")
            tokens.expect("}")
            if joints[index].end_site is not None:
                raise tokens.error(f"joint {name!r} has more than one End Site")
            joints[index].end_site = end
        elif tok == "}":
            stack.pop()
        else:
            raise tokens.error(f"unexpected {tok!r} in joint {name!r}")


def _parse_motion(lines: list[str], start: int, skeleton: BvhSkeleton, source: str) -> tuple[float, np.ndarray]:
    """Parse ``Frames:``, ``Frame Time:`` and the data lines; ``start`` is the 0-based index after MOTION."""
    rows = [(n, text) for n, text in enumerate(lines[start:], start + 1) if text.strip()]
    header = []
    patterns = [("Frames", r"Frames\s*:\s*(\d+)"), ("Frame Time", rf"Frame\s+Time\s*:\s*({_NUMBER})")]
    for i, (key, pattern) in enumerate(patterns):
        if i >= len(rows):
            raise BvhError(f"{source}:{len(lines)}: unexpected end of file (truncated?), expected '{key}:'")
        match = re.fullmatch(pattern, rows[i][1].strip())
        if match is None:
            raise BvhError(f"{source}:{rows[i][0]}: expected '{key}: <number>', found {rows[i][1].strip()[:40]!r}")
        header.append(match.group(1))
    frame_time = float(header[1])
    if frame_time <= 0:
        raise BvhError(f"{source}:{rows[1][0]}: frame time must be a positive number, found {header[1]!r}")

    n_frames, n_channels, data = int(header[0]), skeleton.n_channels, rows[2:]
    if len(data) > n_frames:
        raise BvhError(f"{source}:{data[n_frames][0]}: more motion lines than 'Frames: {n_frames}'")
    motion = np.empty((len(data), n_channels))
    for i, (n, text) in enumerate(data):
        tokens = text.split()
        if len(tokens) != n_channels:
            what = "truncated motion line" if i == len(data) - 1 and len(tokens) < n_channels else "motion line"
            raise BvhError(f"{source}:{n}: {what} has {len(tokens)} values, expected {n_channels} (channels)")
        try:
            motion[i] = np.array(tokens, dtype=np.float64)
        except ValueError as exc:
            raise BvhError(f"{source}:{n}: non-numeric value in motion line ({exc})") from None
        finite = np.isfinite(motion[i])
        if not finite.all():
            col = int(np.argmin(finite))
            raise BvhError(f"{source}:{n}: non-finite value {tokens[col]!r} (column {col + 1})")
    if len(data) < n_frames:
        raise BvhError(f"{source}:{len(lines)}: truncated file: 'Frames: {n_frames}' but {len(data)} motion lines")
    return frame_time, motion


def parse_bvh(text: str, source: str = "<string>") -> BvhClip:
    """Parse the text of a BVH file. ``source`` names the file in error messages."""
    lines = text.splitlines()
    motion_line = next((i for i, t in enumerate(lines) if t.split()[:1] == ["MOTION"]), None)
    tokens = _Tokens(lines if motion_line is None else lines[:motion_line], source)
    tok = tokens.next("HIERARCHY")
    if tok != "HIERARCHY":
        raise tokens.error(f"expected 'HIERARCHY' at the start of the file, found {tok!r}")
    tokens.expect("ROOT")
    joints: list[BvhJoint] = []
    _parse_joint(tokens, joints, -1)
    if not tokens.at_end():
        tok = tokens.next("MOTION")
        raise tokens.error("more than one ROOT joint is not supported" if tok == "ROOT"
                           else f"expected 'MOTION', found {tok!r}")
    if motion_line is None:
        raise BvhError(f"{source}:{len(lines)}: missing MOTION section")
    skeleton = BvhSkeleton(joints)
    if skeleton.n_channels == 0:
        raise BvhError(f"{source}:{motion_line + 1}: the hierarchy has no channels")
    frame_time, motion = _parse_motion(lines, motion_line + 1, skeleton, source)
    return BvhClip(skeleton=skeleton, frame_time=frame_time, motion=motion, source=source)


def read_bvh(path: str | Path) -> BvhClip:
    """Read a BVH file (any line endings, tabs or spaces)."""
    return parse_bvh(Path(path).read_text(encoding="utf-8", errors="replace"), source=str(path))



def global_transforms(clip: BvhClip) -> tuple[np.ndarray, np.ndarray]:
    """World rotations ``(F, J, 4)`` (quaternions, x y z w) and world joint positions ``(F, J, 3)`` in file units."""
    skeleton, motion = clip.skeleton, clip.motion
    local_pos = np.repeat(skeleton.offsets[None], len(motion), axis=0)
    world_rot = np.empty(local_pos.shape[:2] + (4,))
    positions = np.zeros_like(local_pos)
    for j, (joint, start) in enumerate(zip(skeleton.joints, skeleton.channel_starts)):
        axes, columns = "", []
        for k, channel in enumerate(joint.channels):
            if channel in POSITION_CHANNELS:
                local_pos[:, j, POSITION_CHANNELS.index(channel)] = motion[:, start + k]
            else:
                axes, columns = axes + channel[0], columns + [start + k]
        rot = quat_from_euler(axes, motion[:, columns], degrees=True) if axes else quat_identity(len(motion))
        if joint.parent < 0:
            world_rot[:, j] = rot
            positions[:, j] = local_pos[:, j]
            continue
        world_rot[:, j] = quat_multiply(world_rot[:, joint.parent], rot)
        positions[:, j] = positions[:, joint.parent] + quat_apply(world_rot[:, joint.parent], local_pos[:, j])
    return world_rot, positions


def forward_kinematics(clip: BvhClip) -> np.ndarray:
    """World joint positions ``(F, J, 3)`` float64, in the file's units and axes."""
    return global_transforms(clip)[1]


def end_site_positions(clip: BvhClip, transforms: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """World End Site positions ``(F, J, 3)``: row ``j`` is the End Site of joint ``j``, NaN where it has none."""
    world_rot, positions = global_transforms(clip) if transforms is None else transforms
    ends = np.full_like(positions, np.nan)
    for j, end in enumerate(clip.skeleton.end_sites):
        if end is not None and len(positions):
            ends[:, j] = positions[:, j] + quat_apply(world_rot[:, j], end)
    return ends


def _depth_first(parents: np.ndarray) -> list[int]:
    """Joint indices in depth-first order, children in index order (unreachable joints left out)."""
    order, stack = [], [j for j in reversed(range(len(parents))) if parents[j] < 0]
    while stack:
        order.append(stack.pop())
        stack.extend(c for c in reversed(range(len(parents))) if parents[c] == order[-1])
    return order


def _check_tree(parents: np.ndarray, what: str) -> None:
    if (parents < -1).any() or (parents >= len(parents)).any() or (parents < 0).sum() != 1 \
            or len(_depth_first(parents)) != len(parents):
        raise ValueError(f"{what}: parents {parents.tolist()} must form one tree with a single root (parent -1)")


def write_bvh(path: str | Path, clip: BvhClip, *, decimals: int = 6) -> None:
    """Write ``clip`` as a BVH file (tab-indented, ``decimals`` digits after the point)."""
    Path(path).write_text(format_bvh(clip, decimals=decimals), encoding="utf-8")


def format_bvh(clip: BvhClip, *, decimals: int = 6) -> str:
    """The text of a BVH file for ``clip``; joints must be in depth-first order (as parsed)."""
    skeleton, parents = clip.skeleton, clip.skeleton.parents
    _check_tree(parents, "write_bvh")
    if _depth_first(parents) != list(range(len(parents))):
        raise ValueError("write_bvh: joints must be in depth-first order (parents[j] < j, subtrees contiguous)")
    if clip.motion.shape != (clip.n_frames, skeleton.n_channels):
        raise ValueError(f"write_bvh: motion has shape {clip.motion.shape}, expected (F, {skeleton.n_channels})")

    def num(values: np.ndarray) -> str:
        return " ".join(f"{v:.{decimals}f}" for v in values)

    out = ["HIERARCHY"]

    def write_joint(j: int, pad: str) -> None:
        joint = skeleton.joints[j]
        out.extend([f"{pad}{'ROOT' if joint.parent < 0 else 'JOINT'} {joint.name}", pad + "{",
                    f"{pad}\tOFFSET {num(joint.offset)}"])
        if joint.channels:
            out.append(f"{pad}\tCHANNELS {len(joint.channels)} {' '.join(joint.channels)}")
        for child in np.flatnonzero(parents == j):
            write_joint(int(child), pad + "\t")
        if joint.end_site is not None:
            out.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {num(joint.end_site)}", f"{pad}\t}}"])
        out.append(pad + "}")

    write_joint(0, "")
    out += ["MOTION", f"Frames: {clip.n_frames}", f"Frame Time: {clip.frame_time:.8g}"]
    buffer = io.StringIO()
    np.savetxt(buffer, clip.motion, fmt=f"%.{decimals}f", delimiter=" ")
    return "\n".join(out) + "\n" + buffer.getvalue()


def clip_from_rotations(names: list[str], parents: list[int] | np.ndarray, offsets: np.ndarray,
                        root_positions: np.ndarray, local_rotations, fps: float, order: str = "ZYX", *,
                        end_sites: dict[int, np.ndarray] | None = None) -> BvhClip:
    """Build a clip from per-joint local rotations and the root translation.

    names, parents, offsets (J, 3): the rig (parents[root] = -1, any joint order).
    root_positions (F, 3): root translation per frame. local_rotations: (F, J, 4) xyzw quaternions, or any
    object with ``as_quat()`` giving them (e.g. a scipy Rotation of F*J rotations, frame-major).
    order: Euler order of the rotation channels (a permutation of "XYZ"). end_sites: optional End Site offset
    per joint index.
    The root gets 6 channels (position, then rotation), the other joints 3. Joints are stored depth-first,
    so ``clip.skeleton.names`` may list them in another order than ``names``.
    """
    parents, offsets = np.asarray(parents, dtype=np.int64), np.asarray(offsets, dtype=np.float64)
    quats = np.asarray(local_rotations.as_quat() if hasattr(local_rotations, "as_quat") else local_rotations,
                       dtype=np.float64)
    root_positions = np.asarray(root_positions, dtype=np.float64)
    n_frames, n_joints = len(root_positions), len(names)
    if (parents.shape != (n_joints,) or offsets.shape != (n_joints, 3) or root_positions.shape != (n_frames, 3)
            or quats.size != n_frames * n_joints * 4):
        raise ValueError(f"clip_from_rotations: {n_joints} names need parents (J,), offsets (J, 3), root_positions "
                         f"(F, 3) and (F, J) rotations; got {parents.shape}, {offsets.shape}, "
                         f"{root_positions.shape}, {quats.shape}")
    if not (np.isfinite(quats).all() and np.isfinite(root_positions).all() and np.isfinite(fps) and fps > 0):
        raise ValueError(f"clip_from_rotations: rotations and root positions must be finite and fps > 0 ({fps})")
    if sorted(order.upper()) != ["X", "Y", "Z"]:
        raise ValueError(f"clip_from_rotations: order must be a permutation of 'XYZ', got {order!r}")
    _check_tree(parents, "clip_from_rotations")
    quats, order = quats.reshape(n_frames, n_joints, 4), order.upper()

    new_index = {old: new for new, old in enumerate(_depth_first(parents))}
    joints, columns = [], []
    for old in new_index:
        euler = quat_to_euler(quats[:, old], order, degrees=True)  # at gimbal lock the third angle is 0
        is_root = parents[old] < 0
        channels = (POSITION_CHANNELS if is_root else ()) + tuple(f"{axis}rotation" for axis in order)
        columns += [root_positions, euler] if is_root else [euler]
        end = None if old not in (end_sites or {}) else np.asarray(end_sites[old], dtype=np.float64)
        joints.append(BvhJoint(name=str(names[old]), parent=-1 if is_root else new_index[int(parents[old])],
                               offset=offsets[old].copy(), channels=channels, end_site=end))
    motion = np.concatenate(columns, axis=1)
    return BvhClip(skeleton=BvhSkeleton(joints), frame_time=1.0 / fps, motion=motion, source="<generated>")
