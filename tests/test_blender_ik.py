"""Joint positions -> bone rotations (model_core.motion.ik), the step the Blender bake and the BVH writer share."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from model_core.motion import ik, skeleton


def _clips(hml_dir):
    return sorted((hml_dir / "new_joints").glob("*.npy"))


def test_round_trip_on_real_clips(hml_dir):
    clips = _clips(hml_dir)
    assert clips
    for path in clips:
        joints = np.load(path)
        pose = ik.solve(joints)
        error = np.linalg.norm(ik.forward(pose) - joints, axis=-1)
        assert error.max() < 1e-5, f"{path.name}: max error {error.max():.2e} m"
        norms = np.linalg.norm(pose.rotations, axis=-1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-9)


def test_offsets_only_on_children_of_branching_joints(hml_dir):
    joints = np.load(_clips(hml_dir)[0])
    pose = ik.solve(joints)
    branching = {c for c, p in enumerate(skeleton.PARENTS) if p >= 0 and skeleton.PARENTS.count(p) > 1}
    assert branching == {1, 2, 3, 12, 13, 14}
    others = [j for j in range(22) if j not in branching]
    assert np.abs(pose.offsets[:, others]).max() == 0.0
    # HumanML3D places hips and collars at fixed, clip-specific angles: the offsets are constant in a clip
    assert np.abs(pose.offsets[:, sorted(branching)]).max() > 0.01
    assert pose.offsets.std(axis=0).max() < 1e-5


def test_clip_rest_needs_no_offsets(hml_dir):
    joints = np.load(_clips(hml_dir)[1])
    rest = ik.clip_rest(joints)
    pose = ik.solve(joints, rest=rest)
    assert np.abs(pose.offsets).max() < 1e-5
    assert np.linalg.norm(ik.forward(pose, rest=rest) - joints, axis=-1).max() < 1e-5


def test_rotations_are_continuous_in_time(hml_dir):
    for path in _clips(hml_dir):
        q = ik.solve(np.load(path)).rotations
        assert (np.sum(q[1:] * q[:-1], axis=-1) >= 0).all(), path.name


@pytest.mark.parametrize("twist_decay", [0.0, ik.TWIST_DECAY, 1.0])
def test_twist_is_carried_through_the_opposite_direction(twist_decay):
    """An upper arm swinging from hanging (rest) to straight up passes the direction opposite to its rest
    direction; the carried twist keeps the rotation continuous there, pure swing from rest does not."""
    rest = skeleton.rest_joints().astype(np.float64)
    angles = np.linspace(0.0, np.pi * 1.2, 61)  # shoulder bone swings forward and over the head
    joints = np.repeat(rest[None], len(angles), axis=0)
    shoulder, elbow, wrist = 16, 18, 20
    bone = rest[elbow] - rest[shoulder]
    forearm = rest[wrist] - rest[elbow]
    swing = Rotation.from_rotvec(np.outer(-angles, [1.0, 0.0, 0.0]) + [0.0, 0.05, 0.0])
    joints[:, elbow] = rest[shoulder] + swing.apply(bone)
    joints[:, wrist] = joints[:, elbow] + swing.apply(forearm)
    pose = ik.solve(joints, twist_decay=twist_decay)
    assert np.linalg.norm(ik.forward(pose) - joints, axis=-1).max() < 1e-6
    steps = (Rotation.from_quat(pose.rotations[1:, shoulder]).inv()
             * Rotation.from_quat(pose.rotations[:-1, shoulder])).magnitude()
    per_frame = np.diff(angles)[0]
    if twist_decay > 0:
        assert steps.max() < 4 * per_frame, f"jump of {np.degrees(steps.max()):.1f} deg"
    else:
        assert steps.max() > 10 * per_frame  # the flip the carried twist avoids


def test_resample_and_sample(hml_dir):
    joints = np.load(_clips(hml_dir)[0])
    pose = ik.solve(joints)
    doubled = ik.resample(pose, fps_in=20, fps_out=40)
    assert len(doubled) == 2 * len(joints) - 1
    assert np.linalg.norm(ik.forward(doubled[::2]) - joints, axis=-1).max() < 1e-5
    mid = ik.forward(ik.sample(pose, [10.5]))[0]
    lengths = skeleton.bone_lengths(mid)
    np.testing.assert_allclose(lengths, skeleton.bone_lengths(joints[10]), atol=1e-5)  # slerp keeps bones rigid
    assert len(ik.resample(pose, fps_in=20, fps_out=24)) == int(np.floor((len(joints) - 1) * 1.2 + 1e-6)) + 1


def test_crossfade_ends():
    rng = np.random.default_rng(0)
    a = ik.Pose(Rotation.random(10 * 22, random_state=1).as_quat().reshape(10, 22, 4), rng.normal(size=(10, 3)),
                np.zeros((10, 22, 3)))
    b = ik.Pose(Rotation.random(10 * 22, random_state=2).as_quat().reshape(10, 22, 4), rng.normal(size=(10, 3)),
                np.ones((10, 22, 3)))
    mixed = ik.crossfade(a, b, np.r_[0.0, np.full(8, 0.5), 1.0])
    assert np.allclose(np.abs(np.sum(mixed.rotations[0] * a.rotations[0], -1)), 1.0)
    assert np.allclose(np.abs(np.sum(mixed.rotations[-1] * b.rotations[-1], -1)), 1.0)
    np.testing.assert_allclose(mixed.root[5], (a.root[5] + b.root[5]) / 2)
    np.testing.assert_allclose(mixed.offsets[5], 0.5)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 21, 3)), "shape"),
    (np.full((5, 22, 3), np.nan), "NaN"),
])
def test_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        ik.solve(bad)
