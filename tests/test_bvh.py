"""BVH parser, forward kinematics and writer, on real Bandai-Namco clips and hand-written rigs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from model_core.motion import bvh
from model_core.motion.skeleton import JOINT_NAMES, PARENTS, TARGET_OFFSETS
from support.bandai import first_bvh_texts

BANDAI_JOINTS = [
    "joint_Root", "Hips", "Spine", "Chest", "Neck", "Head", "Shoulder_L", "UpperArm_L", "LowerArm_L", "Hand_L",
    "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R", "UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L",
    "UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R",
]


@pytest.fixture(scope="module")
def bandai_texts(bandai_dir) -> dict[str, str]:
    """The first three BVH files of dataset-1."""
    return first_bvh_texts(bandai_dir, 3)


def test_bandai_clips_parse(bandai_texts):
    for name, text in bandai_texts.items():
        clip = bvh.parse_bvh(text, source=name)
        frames = int(re.search(r"Frames:\s*(\d+)", text).group(1))
        assert clip.skeleton.names == BANDAI_JOINTS
        assert clip.motion.shape == (frames, 6 * len(BANDAI_JOINTS))
        assert clip.frame_time == pytest.approx(1 / 30, rel=1e-5)
        assert {clip.skeleton.rotation_order(j) for j in range(len(BANDAI_JOINTS))} == {"ZXY"}
        parents = [BANDAI_JOINTS[p] for p in clip.skeleton.parents[1:6]]
        assert parents == ["joint_Root", "Hips", "Spine", "Chest", "Neck"]
        assert sum(e is not None for e in clip.skeleton.end_sites) == 5  # head, hands, toes
        first_values = text.split("Frame Time:")[1].split("\n")[1].split()
        np.testing.assert_allclose(clip.motion[0], np.array(first_values, dtype=float))


def test_bandai_write_read_keeps_positions(bandai_texts, tmp_path):
    for i, (name, text) in enumerate(bandai_texts.items()):
        clip = bvh.parse_bvh(text, source=name)
        path = tmp_path / f"clip{i}.bvh"
        bvh.write_bvh(path, clip)
        again = bvh.read_bvh(path)
        assert again.skeleton.names == clip.skeleton.names
        assert again.skeleton.channels == clip.skeleton.channels
        np.testing.assert_array_equal(again.skeleton.parents, clip.skeleton.parents)
        assert again.frame_time == pytest.approx(clip.frame_time, rel=1e-7)
        np.testing.assert_allclose(again.motion, clip.motion, atol=1e-6)
        before, after = bvh.forward_kinematics(clip), bvh.forward_kinematics(again)
        assert np.abs(before).max() > 50  # centimetres, the body is not collapsed
        np.testing.assert_allclose(after, before, atol=1e-4)


# ---------------------------------------------------------------------------------- hand-written rigs

def _axis_matrix(axis: str, degrees: np.ndarray) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    one, zero = np.ones_like(c), np.zeros_like(c)
    rows = {"X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.moveaxis(np.array(rows), [0, 1], [-2, -1])


def _chain_text(channels: list[str], offsets: np.ndarray, motion: np.ndarray, end: str = "0 5 0") -> str:
    """A three-joint chain A -> B -> C, every joint with the same channel list."""
    lines = ["HIERARCHY"]
    for depth, (name, offset) in enumerate(zip("ABC", offsets)):
        pad = "  " * depth
        lines += [f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {name}", pad + "{",
                  f"{pad}  OFFSET {' '.join(map(str, offset))}",
                  f"{pad}  CHANNELS {len(channels)} {' '.join(channels)}"]
    lines += ["      End Site", "      {", f"        OFFSET {end}", "      }", "    }", "  }", "}"]
    lines += ["MOTION", f"Frames: {len(motion)}", "Frame Time: 0.05"]
    lines += [" ".join(f"{v:.9f}" for v in row) for row in motion]
    return "\n".join(lines) + "\n"


CHANNEL_LAYOUTS = [
    ["Xrotation", "Yrotation", "Zrotation"],
    ["Xrotation", "Zrotation", "Yrotation"],
    ["Yrotation", "Xrotation", "Zrotation"],
    ["Yrotation", "Zrotation", "Xrotation"],
    ["Zrotation", "Xrotation", "Yrotation"],
    ["Zrotation", "Yrotation", "Xrotation"],
    ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"],
    ["Yrotation", "Zposition", "Xrotation", "Xposition", "Zrotation", "Yposition"],
]


@pytest.mark.parametrize("channels", CHANNEL_LAYOUTS, ids=lambda c: "-".join(x[:2] for x in c))
def test_forward_kinematics_matches_matrix_reference(channels):
    rng = np.random.default_rng(0)
    offsets = np.array([[1.0, 2.0, 3.0], [0.0, 10.0, 0.0], [4.0, 0.0, -3.0]])
    motion = rng.uniform(-170, 170, size=(5, 3 * len(channels)))
    clip = bvh.parse_bvh(_chain_text(channels, offsets, motion))
    got = bvh.forward_kinematics(clip)
    ends = bvh.end_site_positions(clip)

    # Reference: R = product of single-axis matrices in channel order; position channels replace the offset.
    width = len(channels)
    world_r, world_p = np.broadcast_to(np.eye(3), (5, 3, 3)), np.zeros((5, 3))
    for j in range(3):
        values = motion[:, j * width:(j + 1) * width]
        local_p = np.repeat(offsets[j][None], 5, axis=0)
        local_r = np.broadcast_to(np.eye(3), (5, 3, 3))
        for k, name in enumerate(channels):
            if name.endswith("position"):
                local_p[:, "XYZ".index(name[0])] = values[:, k]
            else:
                local_r = local_r @ _axis_matrix(name[0], values[:, k])
        world_p = world_p + np.einsum("fij,fj->fi", world_r, local_p) if j else local_p
        world_r = world_r @ local_r
        np.testing.assert_allclose(got[:, j], world_p, atol=1e-9)
    np.testing.assert_allclose(ends[:, 2], world_p + world_r @ np.array([0.0, 5.0, 0.0]), atol=1e-9)
    assert np.isnan(ends[:, :2]).all()


def test_known_pose():
    text = _chain_text(["Zrotation", "Xrotation", "Yrotation"], np.array([[0, 0, 0], [0, 10, 0], [0, 10, 0]]),
                       np.array([[90.0, 0, 0, 0, 0, 0, 0, 0, 0]]))
    np.testing.assert_allclose(bvh.forward_kinematics(bvh.parse_bvh(text))[0],
                               [[0, 0, 0], [-10, 0, 0], [-20, 0, 0]], atol=1e-12)


def test_crlf_tabs_and_spacing_parse_the_same():
    motion = np.random.default_rng(1).uniform(-90, 90, size=(4, 9))
    clean = _chain_text(["Zrotation", "Xrotation", "Yrotation"], np.eye(3) * 7, motion)
    messy = clean.replace("JOINT B\n  {", "JOINT B {")  # brace on the name line
    messy = messy.replace("  ", "\t \t").replace(" ", "  \t").replace("\n", "  \r\n")
    messy = messy.replace("MOTION", "\r\n\r\nMOTION") + "\r\n\r\n"
    assert "\r\n" in messy and "\t" in messy and "B  \t{" in messy
    a, b = bvh.parse_bvh(clean), bvh.parse_bvh(messy)
    assert a.skeleton.names == b.skeleton.names == ["A", "B", "C"]
    np.testing.assert_array_equal(a.motion, b.motion)
    np.testing.assert_array_equal(bvh.forward_kinematics(a), bvh.forward_kinematics(b))


def test_joint_names_with_spaces_and_partial_channels():
    text = ("HIERARCHY\nROOT Bip01 Pelvis\n{\nOFFSET 0 0 0\nCHANNELS 4 Yposition Zrotation Xrotation Yrotation\n"
            "JOINT Bip01 L Thigh\n{\nOFFSET 1 0 0\nCHANNELS 1 Xrotation\nEnd Site\n{\nOFFSET 0 -1 0\n}\n}\n}\n"
            "MOTION\nFrames: 1\nFrame Time: 0.1\n5 0 0 0 90\n")
    clip = bvh.parse_bvh(text)
    assert clip.skeleton.names == ["Bip01 Pelvis", "Bip01 L Thigh"]
    np.testing.assert_allclose(bvh.forward_kinematics(clip)[0], [[0, 5, 0], [1, 5, 0]], atol=1e-12)
    np.testing.assert_allclose(bvh.end_site_positions(clip)[0, 1], [1, 5, -1], atol=1e-12)


@pytest.mark.parametrize("order", ["ZYX", "XYZ", "YXZ"])
def test_clip_from_rotations_round_trip(order, tmp_path):
    rng = np.random.default_rng(2)
    n_frames = 6
    quats = Rotation.random(n_frames * 22, random_state=3).as_quat().reshape(n_frames, 22, 4)
    root = rng.normal(size=(n_frames, 3))
    clip = bvh.clip_from_rotations(list(JOINT_NAMES), PARENTS, TARGET_OFFSETS, root, quats, 20.0, order)
    assert clip.skeleton.names[:4] == ["pelvis", "l_hip", "l_knee", "l_ankle"]  # depth-first
    assert clip.skeleton.rotation_order(0) == order and len(clip.skeleton.channels[0]) == 6
    # Reference FK straight from the quaternions, in the SMPL order.
    world = [None] * 22
    expected = np.zeros((n_frames, 22, 3))
    for j, p in enumerate(PARENTS):
        local = Rotation.from_quat(quats[:, j])
        world[j] = local if p < 0 else world[p] * local
        expected[:, j] = root if p < 0 else expected[:, p] + world[p].apply(TARGET_OFFSETS[j])
    index = [clip.skeleton.names.index(n) for n in JOINT_NAMES]
    np.testing.assert_allclose(bvh.forward_kinematics(clip)[:, index], expected, atol=1e-9)
    as_rotation = bvh.clip_from_rotations(list(JOINT_NAMES), PARENTS, TARGET_OFFSETS, root,
                                          Rotation.from_quat(quats.reshape(-1, 4)), 20.0, order)
    np.testing.assert_allclose(as_rotation.motion, clip.motion)
    bvh.write_bvh(tmp_path / "gen.bvh", clip)
    again = bvh.read_bvh(tmp_path / "gen.bvh")
    assert again.fps == pytest.approx(20.0)
    np.testing.assert_allclose(bvh.forward_kinematics(again)[:, index], expected, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"order": "XXY"}, "permutation"),
    ({"parents": [-1, -1, 1]}, "single root"),
    ({"parents": [-1, 2, 1]}, "one tree"),
    ({"root_positions": np.zeros((4, 2))}, "root_positions"),
])
def test_clip_from_rotations_rejects_bad_arguments(kwargs, message):
    args = {"names": ["a", "b", "c"], "parents": [-1, 0, 1], "offsets": np.ones((3, 3)),
            "root_positions": np.zeros((4, 3)), "local_rotations": Rotation.identity(12), "fps": 30.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        bvh.clip_from_rotations(**args)


# ------------------------------------------------------------------------------------------ bad input

GOOD = _chain_text(["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"],
                   np.eye(3), np.arange(36, dtype=float).reshape(2, 18))
LINES = GOOD.splitlines()  # 0-based index i is line i + 1


def _replace_line(n: int, text: str) -> str:
    return "\n".join(LINES[:n - 1] + [text] + LINES[n:]) + "\n"


def _replace_value(n: int, column: int, value: str) -> str:
    values = LINES[n - 1].split()
    values[column] = value
    return _replace_line(n, " ".join(values))


MOTION_1 = LINES.index("Frame Time: 0.05") + 2  # line number of the first motion line
BAD_INPUTS = {
    "truncated hierarchy": ("\n".join(LINES[:12]) + "\n", 12, "unexpected end of file"),
    "truncated motion": ("\n".join(LINES[:-1]) + "\n", len(LINES) - 1, "truncated file"),
    "truncated last line": (GOOD[:-20], len(LINES), "truncated motion line"),
    "wrong channel count": (_replace_line(MOTION_1, LINES[MOTION_1 - 1] + " 7"), MOTION_1, "expected 18"),
    "more frames than Frames": (GOOD + LINES[-1] + "\n", len(LINES) + 1, "more motion lines"),
    "nan value": (_replace_value(MOTION_1 + 1, 7, "nan"), MOTION_1 + 1, "non-finite value 'nan'"),
    "inf value": (_replace_value(MOTION_1, 3, "-inf"), MOTION_1, "non-finite value '-inf'"),
    "non-numeric value": (_replace_value(MOTION_1, 4, "4,0"), MOTION_1, "non-numeric value .*'4,0'"),
    "unknown rotation order": (GOOD.replace("Zrotation Xrotation Yrotation", "Zrotation Xrotation Xrotation", 1), 5,
                               "invalid channel order"),
    "unknown channel name": (GOOD.replace("Yrotation", "Wrotation", 1), 5, "unknown channel"),
    "channel count too high": (GOOD.replace("CHANNELS 6", "CHANNELS 7", 1), 6, "unknown channel"),
    "missing MOTION": ("\n".join(LINES[:LINES.index("MOTION")]) + "\n", LINES.index("MOTION"), "missing MOTION"),
    "bad offset": (GOOD.replace("OFFSET 0.0 1.0 0.0", "OFFSET 0.0 x 0.0"), 8, "OFFSET of 'B' must be three finite"),
    "bad frame time": (GOOD.replace("Frame Time: 0.05", "Frame Time: -1"), MOTION_1 - 1, "frame time"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_names_file_and_line(name, tmp_path):
    text, line, message = BAD_INPUTS[name]
    path = tmp_path / "bad.bvh"
    path.write_text(text)
    with pytest.raises(bvh.BvhError, match=message) as info:
        bvh.read_bvh(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)


def test_good_input_parses():
    clip = bvh.parse_bvh(GOOD, source="good.bvh")
    assert clip.motion.shape == (2, 18) and clip.fps == pytest.approx(20.0)


def test_writer_rejects_non_depth_first_order():
    joints = [bvh.BvhJoint("a", -1, np.zeros(3), ("Xrotation",)), bvh.BvhJoint("b", 0, np.zeros(3)),
              bvh.BvhJoint("c", 0, np.zeros(3)), bvh.BvhJoint("d", 1, np.zeros(3))]
    clip = bvh.BvhClip(bvh.BvhSkeleton(joints), 0.1, np.zeros((1, 1)))
    with pytest.raises(ValueError, match="depth-first"):
        bvh.format_bvh(clip)


@pytest.mark.blender
@pytest.mark.parametrize("channels", [CHANNEL_LAYOUTS[3], CHANNEL_LAYOUTS[6], CHANNEL_LAYOUTS[7]],
                         ids=["YZX", "pos-ZXY", "interleaved"])
def test_forward_kinematics_matches_blender_importer(channels, tmp_path):
    bpy = pytest.importorskip("bpy")
    motion = np.random.default_rng(5).uniform(-120, 120, size=(3, 3 * len(channels)))
    path = tmp_path / "chain.bvh"
    path.write_text(_chain_text(channels, np.array([[1.0, 2.0, 3.0], [0.0, 10.0, 0.0], [4.0, 0.0, -3.0]]), motion))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(path), global_scale=1.0, rotate_mode="NATIVE", axis_forward="-Z",
                            axis_up="Y", use_fps_scale=False, update_scene_duration=True)
    armature = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    expected = bvh.forward_kinematics(bvh.read_bvh(path))
    for frame in range(3):
        bpy.context.scene.frame_set(frame + 1)
        for j, name in enumerate("ABC"):
            head = np.array(armature.matrix_world @ armature.pose.bones[name].head)
            x, y, z = expected[frame, j]
            np.testing.assert_allclose(head, [x, -z, y], atol=1e-4)  # Blender is Z-up
