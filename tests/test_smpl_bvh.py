"""Generated joints → BVH file → read back → forward kinematics gives the same joints and bone directions."""

import numpy as np
import pytest

from model_core.motion.bvh import forward_kinematics, read_bvh, write_bvh
from model_core.motion.skeleton import JOINT_NAMES
from model_core.motion.smpl_bvh import SPREAD_JOINTS, joints_to_bvh_clip
from support.bone_angles import bone_angles, freeze_spread_joints


@pytest.mark.parametrize("clip_id", ["000000", "M010968"])
def test_smpl_joints_round_trip_through_bvh(hml_dir, tmp_path, clip_id):
    joints = np.load(hml_dir / "new_joints" / f"{clip_id}.npy")
    path = tmp_path / "clip.bvh"
    write_bvh(path, joints_to_bvh_clip(joints, fps=20.0))
    clip = read_bvh(path)
    assert clip.frame_time == pytest.approx(0.05)
    positions = forward_kinematics(clip)
    order = [clip.skeleton.names.index(n) for n in JOINT_NAMES]
    # 6 decimals in the file: micrometre-level agreement
    np.testing.assert_allclose(positions[:, order], joints, atol=2e-5)


def _swaying_joints(frames: int = 60) -> np.ndarray:
    """The rest skeleton walking forward with every joint swaying on its own by a few centimetres, as
    generated joints do: the angles between the pelvis's and spine3's child bones change from frame to frame."""
    from model_core.motion.skeleton import rest_joints

    t = np.arange(frames)[:, None, None]
    phase = np.arange(22)[None, :, None] * np.array([0.7, 1.3, 2.1])
    return rest_joints()[None] + 0.03 * np.sin(0.3 * t + phase) + t * np.array([0.01, 0.0, 0.05])


def test_every_bone_points_where_the_joints_do(tmp_path):
    joints = _swaying_joints()
    path = tmp_path / "sway.bvh"
    write_bvh(path, joints_to_bvh_clip(joints))
    clip = read_bvh(path)
    angles = bone_angles(clip, joints)
    assert max(angles.values()) < 0.1, angles
    # the several-children joints' children carry their own offset on each frame: fixed offsets would not do
    spread = {n: clip.skeleton.joints[clip.skeleton.names.index(n)].channels[:3] for n in SPREAD_JOINTS}
    assert set(SPREAD_JOINTS) == {"l_hip", "r_hip", "spine1", "neck", "l_collar", "r_collar"}
    assert all(c == ("Xposition", "Yposition", "Zposition") for c in spread.values()), spread
    fixed = freeze_spread_joints(read_bvh(path))  # the same file with those channels frozen at their rest OFFSET
    assert max(bone_angles(fixed, joints)[n] for n in SPREAD_JOINTS) > 2.0
    np.testing.assert_allclose(forward_kinematics(clip)[:, clip.skeleton.names.index("pelvis")], joints[:, 0],
                               atol=1e-5)
