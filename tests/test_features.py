"""HumanML3D 263-d features and the SMPL-22 skeleton, checked against the published example files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_core.motion import features as F
from model_core.motion.skeleton import (
    JOINT_NAMES, KINEMATIC_CHAIN, NUM_JOINTS, PARENTS, RAW_OFFSETS, TARGET_OFFSETS, bone_lengths, mirror_joints,
    offsets_from_joints, rest_joints,
)

CLIP_IDS = ["000000", "007005", "009548", "011673", "012314", "M010655", "M010968"]
# Measured maxima over the 7 clips: root 7e-7, ric 2e-6, rot 8e-6, vel 3e-6 (float32 reference vs float64 here).
TOLERANCES = {"root": 1e-5, "ric": 2e-5, "rot": 1e-4, "vel": 2e-5, "contacts": 0.0}
SMOOTHING_RADIUS = 80  # frames: Gaussian sigma 20 truncated at 4 sigma


def _load(hml_dir, clip_id):
    vecs = np.load(hml_dir / "new_joint_vecs" / f"{clip_id}.npy")
    joints = np.load(hml_dir / "new_joints" / f"{clip_id}.npy")
    return vecs, joints


def _complete_clip(vecs: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """The source clip of a HumanML3D example: new_joints plus the final frame, which only the velocities
    of the last feature row still hold (features have one frame less than the clip they come from)."""
    yaw, _ = F.recover_root_rot_pos(vecs)
    step = vecs[-1, F.FEATURE_SLICES["vel"]].reshape(NUM_JOINTS, 3).astype(np.float64)
    c, s = np.cos(-yaw[-1]), np.sin(-yaw[-1])
    world_step = np.stack([c * step[:, 0] + s * step[:, 2], step[:, 1], c * step[:, 2] - s * step[:, 0]], -1)
    return np.concatenate([joints, (joints[-1] + world_step)[None]], axis=0)


def _group_errors(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    return {name: float(np.abs(a[:, sl] - b[:, sl]).max()) for name, sl in F.FEATURE_SLICES.items()}


# ------------------------------------------------------------------------------------------- skeleton

def test_skeleton_tables_are_consistent():
    assert PARENTS[0] == -1 and len(PARENTS) == NUM_JOINTS == len(RAW_OFFSETS) == len(TARGET_OFFSETS)
    assert sorted(c for chain in KINEMATIC_CHAIN for c in chain[1:]) == list(range(1, NUM_JOINTS))
    assert all(PARENTS[j] < j for j in range(1, NUM_JOINTS))
    np.testing.assert_array_equal(np.abs(RAW_OFFSETS).sum(axis=1)[1:], 1.0)  # unit axes


def test_target_offsets_match_reference_skeleton(hml_dir):
    reference = np.load(hml_dir / "reference_skeleton" / "000021.npy")[0, :NUM_JOINTS]
    lengths = np.linalg.norm(reference[1:] - reference[list(PARENTS[1:])], axis=-1)
    expected = np.vstack([np.zeros(3, np.float32), RAW_OFFSETS[1:] * lengths[:, None].astype(np.float32)])
    np.testing.assert_array_equal(TARGET_OFFSETS, expected)
    np.testing.assert_array_equal(offsets_from_joints(reference), TARGET_OFFSETS)


@pytest.mark.parametrize("clip_id", CLIP_IDS)
def test_published_joints_use_target_bone_lengths(hml_dir, clip_id):
    _, joints = _load(hml_dir, clip_id)
    err = np.abs(bone_lengths(joints) - np.linalg.norm(TARGET_OFFSETS, axis=-1)).max()
    assert err < 1e-5, f"{clip_id}: bone length error {err:.2e} m"


def test_rest_joints():
    rest = rest_joints()
    assert rest.shape == (NUM_JOINTS, 3) and rest.dtype == np.float32
    np.testing.assert_array_equal(rest[0], 0.0)
    np.testing.assert_allclose(bone_lengths(rest), np.linalg.norm(TARGET_OFFSETS, axis=-1), atol=1e-7)
    assert rest[12, 1] > rest[0, 1] > rest[7, 1] == rest[10, 1]  # neck above pelvis above ankles and feet
    assert rest[15, 2] > rest[12, 2] and rest[10, 2] > rest[7, 2]  # head and feet point +Z
    assert rest[1, 0] > 0 > rest[2, 0]  # left hip on +X: the rest pose faces +Z
    np.testing.assert_allclose(F.canonicalize(rest[None].repeat(2, 0))[0][:, [0, 2]], rest[:, [0, 2]], atol=1e-6)


# ------------------------------------------------------------------------------------- golden features

@pytest.mark.parametrize("clip_id", CLIP_IDS)
def test_recover_from_ric_matches_published_joints(hml_dir, clip_id):
    vecs, joints = _load(hml_dir, clip_id)
    recovered = F.recover_from_ric(vecs)
    assert recovered.shape == joints.shape and recovered.dtype == np.float32
    err = np.abs(recovered - joints).max()
    assert err < 1e-5, f"{clip_id}: joint error {err:.2e} m"


@pytest.mark.parametrize("clip_id", CLIP_IDS)
def test_extract_features_matches_published_vectors(hml_dir, clip_id):
    vecs, joints = _load(hml_dir, clip_id)
    feats = F.extract_features(_complete_clip(vecs, joints))
    assert feats.shape == vecs.shape and feats.dtype == np.float32
    errors = _group_errors(feats, vecs)
    for name, tol in TOLERANCES.items():
        assert errors[name] <= tol, f"{clip_id}: {name} error {errors[name]:.2e} > {tol:.0e}"


@pytest.mark.parametrize("clip_id", CLIP_IDS)
def test_extract_features_from_new_joints_alone(hml_dir, clip_id):
    """Without the clip's final frame only the rows whose smoothed facing window reaches it can change."""
    vecs, joints = _load(hml_dir, clip_id)
    feats = F.extract_features(joints)
    assert feats.shape == (len(joints) - 1, F.FEATURE_DIM)
    np.testing.assert_array_equal(feats[:, F.FEATURE_SLICES["contacts"]], vecs[:-1, F.FEATURE_SLICES["contacts"]])
    exact_rows = len(joints) - 1 - SMOOTHING_RADIUS
    if exact_rows <= 0:
        pytest.skip(f"{clip_id}: every row is within {SMOOTHING_RADIUS} frames of the missing final frame")
    errors = _group_errors(feats[:exact_rows], vecs[:exact_rows])
    for name, tol in TOLERANCES.items():
        assert errors[name] <= tol, f"{clip_id}: {name} error {errors[name]:.2e} > {tol:.0e}"


def test_features_ignore_scale_heading_and_position(hml_dir):
    vecs, joints = _load(hml_dir, "012314")
    clip = _complete_clip(vecs, joints)
    c, s = np.cos(2.0), np.sin(2.0)
    turn = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    moved = 1.3 * clip @ turn.T + np.array([4.0, 0.5, -2.0])
    errors = _group_errors(F.extract_features(moved), F.extract_features(clip))
    assert max(errors.values()) < 1e-5, errors


def test_heading_wrap_option():
    """A slow turn in place through +-180 degrees: the published formula flips the sign of the yaw velocity on
    the crossing frame (and the recovered clip turns off course); fix_heading_wrap keeps it exact."""
    rest = rest_joints().astype(np.float64)
    angles = np.linspace(0.0, 2.4 * np.pi, 300)
    clip = np.stack([rest @ np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]]).T
                     for a in angles])
    target = F.canonicalize(F.uniform_skeleton(clip))[:-1]
    published, fixed = F.extract_features(clip), F.extract_features(clip, fix_heading_wrap=True)
    flipped = np.nonzero(np.sign(published[:, 0]) != np.sign(fixed[:, 0]))[0]
    assert len(flipped) == 1, flipped
    np.testing.assert_allclose(published[flipped, 0], -fixed[flipped, 0], atol=1e-7)
    assert np.abs(F.recover_from_ric(fixed) - target).max() < 1e-5
    assert np.abs(F.recover_from_ric(published) - target).max() > 1e-3


@pytest.mark.parametrize("clip_id", ["000000", "M010968"])
def test_foot_contacts(hml_dir, clip_id):
    vecs, _ = _load(hml_dir, clip_id)
    contacts = F.foot_contacts(vecs)
    assert contacts.shape == (len(vecs), 4) and contacts.dtype == bool
    np.testing.assert_array_equal(contacts, vecs[:, 259:263] == 1.0)
    assert F.foot_contacts(torch.from_numpy(vecs)).dtype == torch.bool


# -------------------------------------------------------------------------------------------- torch path

def test_torch_and_numpy_recovery_agree_and_are_differentiable(hml_dir):
    clips = [_load(hml_dir, clip_id)[0][:60].astype(np.float32) for clip_id in ("007005", "012314")]
    batch = np.stack(clips)[None]  # (1, 2, 60, 263): arbitrary leading dims
    expected = F.recover_from_ric(batch)
    assert expected.shape == (1, 2, 60, NUM_JOINTS, 3)
    np.testing.assert_allclose(expected[0, 1], F.recover_from_ric(clips[1]), atol=1e-6)

    feats = torch.from_numpy(batch).requires_grad_(True)
    joints = F.recover_from_ric(feats)
    assert isinstance(joints, torch.Tensor) and joints.dtype == torch.float32
    np.testing.assert_allclose(joints.detach().numpy(), expected, atol=2e-5)
    yaw, root = F.recover_root_rot_pos(feats)
    np_yaw, np_root = F.recover_root_rot_pos(batch)
    np.testing.assert_allclose(yaw.detach().numpy(), np_yaw, atol=1e-5)
    np.testing.assert_allclose(root.detach().numpy(), np_root, atol=2e-5)

    joints.square().sum().backward()
    grad = feats.grad[0, 0]
    assert torch.isfinite(grad).all()
    for name in ("root", "ric"):  # joint positions depend on the root and ric groups only
        assert grad[:, F.FEATURE_SLICES[name]].abs().sum() > 0
    for name in ("rot", "vel", "contacts"):
        assert grad[:, F.FEATURE_SLICES[name]].abs().sum() == 0


# ------------------------------------------------------------------------------------------- Mean / Std

def test_compute_mean_std_structure(hml_dir):
    clips = [_load(hml_dir, clip_id)[0] for clip_id in CLIP_IDS]
    data = np.concatenate(clips).astype(np.float64)
    mean, std = F.compute_mean_std(clips)
    assert mean.shape == std.shape == (F.FEATURE_DIM,) and mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-5, atol=1e-7)
    groups = F.std_groups()
    assert sum(sl.stop - sl.start for sl in groups.values()) == F.FEATURE_DIM
    for sl in groups.values():
        np.testing.assert_allclose(std[sl], data.std(axis=0)[sl].mean(), rtol=1e-5)

    _, biased = F.compute_mean_std(clips, feat_bias=5.0)
    for name, sl in groups.items():
        factor = 5.0 if name in F.BIASED_GROUPS else 1.0
        np.testing.assert_allclose(biased[sl], std[sl] / factor, rtol=1e-6)
    assert set(F.BIASED_GROUPS) == {"root_rot_vel", "root_lin_vel", "root_y", "contacts"}


def test_published_mean_std_follow_the_same_groups(hml_dir):
    mean, std = np.load(hml_dir / "Mean.npy"), np.load(hml_dir / "Std.npy")
    assert mean.shape == std.shape == (F.FEATURE_DIM,)
    assert np.isfinite(mean).all() and (std > 0).all()
    for sl in F.std_groups().values():
        np.testing.assert_array_equal(std[sl], std[sl.start])


def test_normalize_round_trip(hml_dir):
    vecs = _load(hml_dir, "009548")[0]
    mean, std = np.load(hml_dir / "Mean.npy"), np.load(hml_dir / "Std.npy")
    normed = F.normalize(vecs, mean, std)
    np.testing.assert_allclose(normed[:, 3], (vecs[:, 3] - mean[3]) / std[3], rtol=1e-6)
    np.testing.assert_allclose(F.denormalize(normed, mean, std), vecs, atol=1e-6)
    tensor = torch.from_numpy(vecs)
    t_normed = F.normalize(tensor, torch.from_numpy(mean), std)
    assert isinstance(t_normed, torch.Tensor)
    np.testing.assert_allclose(t_normed.numpy(), normed, atol=1e-6)
    np.testing.assert_allclose(F.denormalize(t_normed, mean, std).numpy(), vecs, atol=1e-6)


# ------------------------------------------------------------------------------------------- bad input

def _walk(frames: int = 4) -> np.ndarray:
    return rest_joints()[None].repeat(frames, 0) + np.linspace(0, 0.1, frames)[:, None, None] * [0, 0, 1]


@pytest.mark.parametrize("joints, message", [
    (np.zeros((10, 21, 3)), r"shape \(T, 22, 3\)"),
    (np.zeros((10, 22)), r"shape \(T, 22, 3\)"),
    (np.zeros((1, 22, 3)), "at least 2 frames"),
    (np.where(np.arange(4)[:, None, None] == 2, np.nan, _walk()), "NaN.*frame 2"),
    (np.where(np.arange(22)[None, :, None] == 4, _walk()[:, 1:2], _walk()), "zero length"),
])
def test_extract_features_rejects_bad_joints(joints, message):
    with pytest.raises(ValueError, match=message):
        F.extract_features(joints)


@pytest.mark.parametrize("call, message", [
    (lambda: F.recover_from_ric(np.zeros((5, 262))), r"\(\.\.\., T, 263\)"),
    (lambda: F.recover_from_ric(torch.zeros(263)), r"\(\.\.\., T, 263\)"),
    (lambda: F.recover_root_rot_pos([[0.0] * 263]), "numpy array or torch tensor"),
    (lambda: F.extract_features(_walk(), feet_thre=0.0), "feet_thre"),
    (lambda: F.compute_mean_std([]), "empty"),
    (lambda: F.compute_mean_std([np.zeros((5, 263)), np.zeros((5, 251))]), r"features_list\[1\]"),
    (lambda: F.compute_mean_std([np.full((5, 263), np.nan)]), "NaN"),
    (lambda: F.compute_mean_std([np.zeros((5, 263))]), "constant"),
    (lambda: bone_lengths(np.zeros((3, 21, 3))), r"\(\.\.\., 22, 3\)"),
])
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------------------------------- mirror

def test_mirror_joints_swaps_sides_and_negates_x():
    pose = rest_joints()
    mirrored = mirror_joints(pose)
    for name, other in (("l_hip", "r_hip"), ("l_wrist", "r_wrist"), ("head", "head")):
        j, k = JOINT_NAMES.index(name), JOINT_NAMES.index(other)
        np.testing.assert_array_equal(mirrored[j], pose[k] * [-1, 1, 1])
    np.testing.assert_array_equal(mirror_joints(mirrored), pose)


@pytest.mark.parametrize("clip_id", CLIP_IDS)
def test_mirror_features_is_the_mirror_image_of_the_motion(hml_dir, clip_id):
    """Mirroring the published features is exact against the mirrored joints they recover to, is its own inverse,
    and is what re-extracting the mirrored clip gives, up to the target skeleton's left/right bone lengths
    (left hip 10.3 cm, right 11.0 cm: measured mean differences ric <= 5 mm, rot <= 0.009, contacts <= 0.5 %)."""
    vecs, joints = _load(hml_dir, clip_id)
    mirrored = F.mirror_features(vecs)
    np.testing.assert_array_equal(F.mirror_features(mirrored), vecs)
    np.testing.assert_allclose(F.recover_from_ric(mirrored), mirror_joints(F.recover_from_ric(vecs)), atol=1e-5)
    again = F.extract_features(mirror_joints(_complete_clip(vecs, joints)))
    mean_error = {name: float(np.abs(again[:, sl] - mirrored[:, sl]).mean()) for name, sl in F.FEATURE_SLICES.items()}
    assert mean_error["root"] < 0.002 and mean_error["ric"] < 0.008 and mean_error["vel"] < 0.001, mean_error
    assert mean_error["rot"] < 0.015 and mean_error["contacts"] < 0.01, mean_error
    torch_mirrored = F.mirror_features(torch.from_numpy(vecs))
    assert isinstance(torch_mirrored, torch.Tensor)
    np.testing.assert_array_equal(torch_mirrored.numpy(), mirrored)


def test_mirror_features_turns_a_left_turn_into_a_right_turn():
    yaw = 0.04 * np.arange(40)  # the body and its path turn towards +X, 0.8 rad/s
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    pose = rest_joints()[None]
    turned = np.stack([c * pose[..., 0] + s * pose[..., 2], np.broadcast_to(pose[..., 1], (40, NUM_JOINTS)),
                       c * pose[..., 2] - s * pose[..., 0]], -1)
    path = np.cumsum(0.06 * np.stack([np.sin(yaw), 0 * yaw, np.cos(yaw)], -1), axis=0)
    joints = turned + path[:, None] + [0, 1.0, 0]
    vecs = F.extract_features(joints)
    mirrored = F.mirror_features(vecs)
    np.testing.assert_allclose(mirrored[:, 0], -vecs[:, 0])
    end, end_mirrored = F.recover_from_ric(vecs)[-1, 0], F.recover_from_ric(mirrored)[-1, 0]
    assert end[0] > 0.05 and end_mirrored[0] == pytest.approx(-end[0], abs=1e-6)
    with pytest.raises(ValueError, match="shape"):
        F.mirror_features(vecs[:, :100])
