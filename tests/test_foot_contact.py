"""Foot locking on joint positions and the foot-skate metric, on HumanML3D clips and a synthetic slide."""

from __future__ import annotations

import numpy as np
import pytest

from model_core.motion import features as F
from model_core.motion import foot_contact as FC
from model_core.motion.skeleton import bone_lengths, rest_joints

WALKS = ["007005", "012314", "M010655"]  # clips with walking
LEG_BONES = [4, 5, 7, 8]  # knee and ankle joints: thigh and shin lengths


def _clip(hml_dir, clip_id):
    return np.load(hml_dir / "new_joints" / f"{clip_id}.npy"), np.load(hml_dir / "new_joint_vecs" / f"{clip_id}.npy")


def _sliding_stance(frames: int = 40, speed: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """A standing skeleton whose left foot slides forward ``speed`` m/frame during frames 10..29 (in contact)."""
    joints = np.repeat(rest_joints()[None].astype(np.float64), frames, axis=0)
    joints[:, :, 1] += 0.95
    slide = np.clip(np.arange(frames) - 10, 0, 19) * speed
    for j in (7, 10):
        joints[:, j, 2] += slide
    joints[:, 4, 2] += 0.05 + slide / 2  # a bent knee following half way
    contacts = np.zeros((frames, 4), dtype=bool)
    contacts[10:29, :2] = True
    return joints, contacts


@pytest.mark.data
@pytest.mark.parametrize("clip_id", WALKS)
def test_foot_lock_reduces_skate_on_walks(hml_dir, clip_id):
    joints, vecs = _clip(hml_dir, clip_id)
    contacts = F.foot_contacts(vecs)
    before = FC.foot_skate(joints, contacts)
    locked = FC.foot_lock(joints, contacts)
    after = FC.foot_skate(locked, contacts)
    assert before > 5.0  # cm/s: HumanML3D walks slide a little during their (generous) contact flags
    assert after < 0.2 * before
    # the leg chain keeps its bone lengths; hips and upper body do not move
    np.testing.assert_allclose(bone_lengths(locked)[:, LEG_BONES], bone_lengths(joints)[:, LEG_BONES], atol=1e-5)
    untouched = [j for j in range(22) if j not in (4, 5, 7, 8, 10, 11)]
    np.testing.assert_array_equal(locked[:, untouched], joints[:, untouched])


@pytest.mark.data
def test_contacts_from_joints_match_the_feature_channels(hml_dir):
    joints, vecs = _clip(hml_dir, "007005")
    flags = FC.contacts_from_joints(joints)
    assert flags.shape == (len(joints) - 1, 4) and flags.dtype == bool
    np.testing.assert_array_equal(flags, F.foot_contacts(vecs)[:-1])


def test_locked_foot_holds_still_and_blends_out():
    joints, contacts = _sliding_stance()
    locked = FC.foot_lock(joints, contacts, blend=3)
    ankle = locked[:, 7, [0, 2]]
    assert np.abs(np.diff(ankle[10:30], axis=0)).max() < 1e-6  # pinned over the interval's frames 10..29
    np.testing.assert_allclose(ankle[10], joints[10:30, 7, [0, 2]].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(locked[:6], joints[:6], atol=1e-6)  # beyond the 3-frame blend: unchanged
    np.testing.assert_allclose(locked[34:], joints[34:], atol=1e-6)
    np.testing.assert_allclose(locked[:, [2, 5, 8, 11]], joints[:, [2, 5, 8, 11]])  # right leg not in contact
    thigh = np.linalg.norm(locked[:, 4] - locked[:, 1], axis=-1)
    np.testing.assert_allclose(thigh, np.linalg.norm(joints[:, 4] - joints[:, 1], axis=-1), atol=1e-6)
    assert FC.foot_skate(joints, contacts) == pytest.approx(0.004 * 20 * 100, rel=1e-3)  # 8 cm/s
    assert FC.foot_skate(locked, contacts) < 1e-3


def test_two_bone_ik_reaches_and_keeps_lengths():
    rng = np.random.default_rng(0)
    hip = rng.normal(size=(50, 3))
    knee = hip + rng.normal(size=(50, 3)) * 0.3
    ankle = knee + rng.normal(size=(50, 3)) * 0.3
    target = ankle + rng.normal(size=(50, 3)) * 0.05
    new_knee, new_ankle = FC.two_bone_ik(hip, knee, ankle, target)
    thigh, shin = np.linalg.norm(knee - hip, axis=-1), np.linalg.norm(ankle - knee, axis=-1)
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=-1), thigh, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee, axis=-1), shin, atol=1e-9)
    reachable = np.linalg.norm(target - hip, axis=-1) < thigh + shin - 1e-6
    np.testing.assert_allclose(new_ankle[reachable], target[reachable], atol=1e-9)


def test_contact_intervals():
    flags = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert FC.contact_intervals(flags) == [(1, 3), (5, 6), (7, 10)]
    assert FC.contact_intervals(np.zeros(4, dtype=bool)) == []


@pytest.mark.parametrize("joints_shape, contacts_shape, message", [
    ((10, 21, 3), (10, 4), "joints must have shape"),
    ((10, 22, 3), (8, 4), "contacts must have shape"),
    ((10, 22, 3), (10, 2), "contacts must have shape"),
])
def test_bad_shapes_are_reported(joints_shape, contacts_shape, message):
    with pytest.raises(ValueError, match=message):
        FC.foot_lock(np.zeros(joints_shape), np.zeros(contacts_shape))
