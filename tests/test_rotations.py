"""model_core.motion.rotations against scipy (the reference it replaces), and the motion path without scipy/torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d as scipy_gaussian
from scipy.signal import lfilter as scipy_lfilter
from scipy.spatial.transform import Rotation, Slerp

from model_core.motion import rotations as R

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-6
TAIT_BRYAN = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX", "xyz", "xzy", "yxz", "yzx", "zxy", "zyx"]


def _random_quats(n: int, seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _edge_quats() -> np.ndarray:
    """Identity, half turns about each axis and a diagonal, tiny and near-half-turn rotations, w < 0."""
    rotvecs = [[0, 0, 0], [np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi], np.pi * np.ones(3) / np.sqrt(3),
               [1e-9, 0, 0], [0, 3e-4, 1e-4], [np.pi - 1e-7, 0, 0], [0, 0, -(np.pi - 1e-4)]]
    q = Rotation.from_rotvec(rotvecs).as_quat()
    return np.concatenate([q, -q[1:3], [[0.1, -0.2, 0.3, -0.9] / np.linalg.norm([0.1, 0.2, 0.3, 0.9])]])


QUAT_SETS = {"random": _random_quats(64, 0), "edge": _edge_quats()}


def _same_rotation(a: np.ndarray, b: np.ndarray, atol: float = TOL) -> None:
    """Quaternions equal up to sign (q and -q are the same rotation)."""
    err = np.minimum(np.abs(a - b).max(axis=-1), np.abs(a + b).max(axis=-1))
    assert err.max() < atol, err.max()


# --------------------------------------------------------------------------------------------- algebra
@pytest.mark.parametrize("kind", QUAT_SETS)
def test_multiply_inverse_apply_match_scipy(kind):
    q = QUAT_SETS[kind]
    p = _random_quats(len(q), 1)
    v = np.random.default_rng(2).normal(size=(len(q), 3)) * 3.0
    np.testing.assert_allclose(R.quat_multiply(p, q), (Rotation.from_quat(p) * Rotation.from_quat(q)).as_quat(),
                               atol=TOL)
    np.testing.assert_allclose(R.quat_inverse(q), Rotation.from_quat(q).inv().as_quat(), atol=TOL)
    np.testing.assert_allclose(R.quat_apply(q, v), Rotation.from_quat(q).apply(v), atol=TOL)
    np.testing.assert_allclose(R.quat_multiply(q, R.quat_inverse(q)), R.quat_identity(len(q)), atol=TOL)


def test_batch_shapes_broadcast():
    q = _random_quats(6, 3).reshape(2, 3, 4)
    v = np.random.default_rng(4).normal(size=(5, 1, 1, 3))
    assert R.quat_apply(q, v).shape == (5, 2, 3, 3)
    assert R.quat_multiply(q[:, :1], q).shape == (2, 3, 4)
    assert R.quat_to_matrix(q).shape == (2, 3, 3, 3)
    assert R.quat_from_matrix(R.quat_to_matrix(q)).shape == (2, 3, 4)
    assert R.quat_to_euler(q, "ZXY").shape == (2, 3, 3) and R.quat_to_rotvec(q).shape == (2, 3, 3)
    assert R.quat_identity((2, 3)).shape == (2, 3, 4) and R.quat_identity(4).shape == (4, 4)
    np.testing.assert_allclose(R.quat_apply(q, v)[3, 1, 2], Rotation.from_quat(q[1, 2]).apply(v[3, 0, 0]), atol=TOL)


def test_unnormalised_quaternions_are_normalised_like_scipy():
    q = _random_quats(8, 5) * np.linspace(0.1, 7.0, 8)[:, None]
    np.testing.assert_allclose(R.quat_to_matrix(q), Rotation.from_quat(q).as_matrix(), atol=TOL)
    np.testing.assert_allclose(R.quat_inverse(q), Rotation.from_quat(q).inv().as_quat(), atol=TOL)


# -------------------------------------------------------------------------------------------- matrices
@pytest.mark.parametrize("kind", QUAT_SETS)
def test_matrix_conversions_match_scipy(kind):
    q = QUAT_SETS[kind]
    m = Rotation.from_quat(q).as_matrix()
    np.testing.assert_allclose(R.quat_to_matrix(q), m, atol=TOL)
    np.testing.assert_allclose(R.quat_from_matrix(m), Rotation.from_matrix(m).as_quat(), atol=TOL)  # same sign


def test_from_matrix_orthogonalises_like_scipy():
    m = Rotation.from_quat(_random_quats(20, 6)).as_matrix()
    m = m + np.random.default_rng(7).normal(scale=1e-3, size=m.shape)  # skewed and scaled a little
    m[3] *= 2.5  # a uniformly scaled bone matrix
    np.testing.assert_allclose(R.quat_from_matrix(m), Rotation.from_matrix(m).as_quat(), atol=TOL)


# ------------------------------------------------------------------------------------ rotation vectors
@pytest.mark.parametrize("rotvecs", [
    np.random.default_rng(8).normal(size=(50, 3)) * 1.5,
    np.array([[0.0, 0, 0], [1e-12, 0, 0], [0, -1e-5, 2e-5], [9e-4, 0, 0], [1.1e-3, 0, 0], [np.pi, 0, 0],
              [0, 0, -np.pi], [3 * np.pi, 0, 0], [0, 5.0, 5.0]]),
], ids=["random", "edge"])
def test_from_rotvec_matches_scipy(rotvecs):
    np.testing.assert_allclose(R.quat_from_rotvec(rotvecs), Rotation.from_rotvec(rotvecs).as_quat(), atol=TOL)


@pytest.mark.parametrize("kind", QUAT_SETS)
def test_to_rotvec_matches_scipy(kind):
    q = QUAT_SETS[kind]
    got, want = R.quat_to_rotvec(q), Rotation.from_quat(q).as_rotvec()
    half_turn = np.abs(np.linalg.norm(want, axis=-1) - np.pi) < 1e-6  # +-axis: both are the same rotation
    np.testing.assert_allclose(got[~half_turn], want[~half_turn], atol=TOL)
    np.testing.assert_allclose(np.abs(got[half_turn]), np.abs(want[half_turn]), atol=TOL)
    _same_rotation(R.quat_from_rotvec(got), q)


# ---------------------------------------------------------------------------------------- Euler angles
@pytest.mark.parametrize("seq", TAIT_BRYAN)
@pytest.mark.parametrize("degrees", [False, True])
def test_euler_matches_scipy(seq, degrees):
    q = _random_quats(64, 9)
    angles = np.random.default_rng(10).uniform(-3.1, 3.1, size=(64, 3)) * np.array([1.0, 0.49, 1.0])
    if degrees:
        angles = np.rad2deg(angles)
    np.testing.assert_allclose(R.quat_from_euler(seq, angles, degrees=degrees),
                               Rotation.from_euler(seq, angles, degrees=degrees).as_quat(), atol=TOL)
    np.testing.assert_allclose(R.quat_to_euler(q, seq, degrees=degrees),
                               Rotation.from_quat(q).as_euler(seq, degrees=degrees), atol=TOL * (60 if degrees else 1))


@pytest.mark.parametrize("seq", TAIT_BRYAN)
@pytest.mark.parametrize("middle", [np.pi / 2, -np.pi / 2, np.pi / 2 - 1e-9])
def test_euler_at_gimbal_lock_matches_scipy(seq, middle):
    angles = np.array([[0.3, middle, 0.7], [-2.0, middle, 1.1], [0.0, middle, 0.0]])
    q = Rotation.from_euler(seq, angles).as_quat()
    got = R.quat_to_euler(q, seq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about the gimbal lock
        want = Rotation.from_quat(q).as_euler(seq)
    np.testing.assert_allclose(got, want, atol=TOL)
    np.testing.assert_allclose(got[:, 2], 0.0, atol=TOL)
    _same_rotation(R.quat_from_euler(seq, got), q)


@pytest.mark.parametrize("seq", ["Z", "x", "ZX", "yz", "ZYZ", "xyx"])
def test_short_and_proper_euler_sequences_match_scipy(seq):
    angles = np.random.default_rng(11).uniform(-180, 180, size=(10, len(seq)))
    np.testing.assert_allclose(R.quat_from_euler(seq, angles, degrees=True),
                               Rotation.from_euler(seq, angles, degrees=True).as_quat(), atol=TOL)


# ------------------------------------------------------------------------------------------------ slerp
@pytest.mark.parametrize("key_times", [np.arange(6.0), np.array([0.0, 0.5, 2.0, 2.1, 5.0, 9.0])])
def test_slerp_matches_scipy(key_times):
    keys = _random_quats(len(key_times), 12)
    keys[3] = -keys[2]  # a key equal to the previous one with the opposite sign: no turn
    times = np.concatenate([np.linspace(key_times[0], key_times[-1], 37), key_times])
    want = Slerp(key_times, Rotation.from_quat(keys))(times).as_quat()
    np.testing.assert_allclose(R.quat_slerp(key_times, keys, times), want, atol=TOL)


def test_slerp_interpolates_each_joint_of_a_batch():
    keys = _random_quats(5 * 3, 13).reshape(5, 3, 4)
    times = np.linspace(0.0, 4.0, 11)
    got = R.quat_slerp(np.arange(5.0), keys, times)
    assert got.shape == (11, 3, 4)
    for j in range(3):
        np.testing.assert_allclose(got[:, j], Slerp(np.arange(5.0), Rotation.from_quat(keys[:, j]))(times).as_quat(),
                                   atol=TOL)


# --------------------------------------------------------------------------------- shortest arc, Kabsch
def _near(u: np.ndarray, angle: float) -> np.ndarray:
    """A unit vector at ``angle`` radians from unit ``u``."""
    side = np.cross(u, [0.3, 0.5, 0.8])
    side /= np.linalg.norm(side)
    return np.cos(angle) * u + np.sin(angle) * side


_U = np.array([0.6, -0.64, 0.48])
ARC_CASES = {
    "random": (np.random.default_rng(14).normal(size=(40, 3)), np.random.default_rng(15).normal(size=(40, 3))),
    "parallel": (_U, 3.0 * _U),
    "near-parallel": (_U, _near(_U, 1e-7)),
    "anti-parallel": (_U, -_U),
    "anti-parallel-x": (np.array([1.0, 0, 0]), np.array([-2.0, 0, 0])),
    "anti-parallel-y": (np.array([0, 1.0, 0]), np.array([0, -1.0, 0])),
    "near-anti-parallel": (_U, -_near(_U, 1e-5)),
    "nearer-anti-parallel": (_U, -_near(_U, 2e-8)),
}


@pytest.mark.parametrize("case", ARC_CASES)
def test_quat_between_is_the_shortest_arc(case):
    u, v = (np.atleast_2d(x) for x in ARC_CASES[case])
    q = R.quat_between(u, v)
    u_unit, v_unit = u / np.linalg.norm(u, axis=-1, keepdims=True), v / np.linalg.norm(v, axis=-1, keepdims=True)
    np.testing.assert_allclose(R.quat_apply(q, u_unit), v_unit, atol=TOL)  # turns u onto v
    angle = np.linalg.norm(R.quat_to_rotvec(q), axis=-1)  # by the angle between them: the shortest arc
    np.testing.assert_allclose(angle, np.arccos(np.clip(np.sum(u_unit * v_unit, -1), -1, 1)), atol=TOL)
    if "anti" not in case:  # away from a half turn the shortest arc is unique: scipy's single-pair fit
        want = np.stack([Rotation.align_vectors(b[None], a[None])[0].as_quat() for a, b in zip(u_unit, v_unit)])
        _same_rotation(q, want)


def test_quat_between_broadcasts():
    v = np.random.default_rng(16).normal(size=(4, 5, 3))
    q = R.quat_between(np.array([0.0, 1.0, 0.0]), v)
    assert q.shape == (4, 5, 4)
    np.testing.assert_allclose(R.quat_apply(q, [0.0, 1.0, 0.0]), v / np.linalg.norm(v, axis=-1, keepdims=True),
                               atol=TOL)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_align_vectors_matches_scipy(n):
    rng = np.random.default_rng(17 + n)
    b = rng.normal(size=(8, n, 3))
    a = rng.normal(size=(8, n, 3))
    got = R.quat_align_vectors(a, b)
    assert got.shape == (8, 4)
    _same_rotation(got, np.stack([Rotation.align_vectors(a[t], b[t])[0].as_quat() for t in range(8)]))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_align_vectors_recovers_an_exact_rotation(n):
    truth = _random_quats(1, 20 + n)[0]
    b = np.random.default_rng(21).normal(size=(n, 3))
    b /= np.linalg.norm(b, axis=-1, keepdims=True)
    got = R.quat_align_vectors(R.quat_apply(truth, b), b)
    np.testing.assert_allclose(R.quat_apply(got, b), R.quat_apply(truth, b), atol=TOL)
    if n > 1:
        _same_rotation(got, truth)


def test_align_vectors_returns_a_proper_rotation_when_a_reflection_fits_better():
    b = np.random.default_rng(24).normal(size=(5, 3))
    a = R.quat_apply(_random_quats(1, 25)[0], b) * np.array([1.0, 1.0, -1.0])  # a turned mirror image of b
    got = R.quat_align_vectors(a, b)
    assert abs(np.linalg.det(R.quat_to_matrix(got)) - 1.0) < TOL
    _same_rotation(got, Rotation.align_vectors(a, b)[0].as_quat())


# --------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("length", [1, 5, 81, 300])
@pytest.mark.parametrize("sigma", [20.0, 1.5])
def test_gaussian_filter1d_matches_scipy_nearest(length, sigma):
    x = np.random.default_rng(length).normal(size=(3, length))
    want = np.stack([scipy_gaussian(row, sigma, mode="nearest") for row in x])
    np.testing.assert_allclose(R.gaussian_filter1d(x, sigma), want, atol=TOL)
    np.testing.assert_allclose(R.gaussian_filter1d(x[0], sigma), want[0], atol=TOL)


@pytest.mark.parametrize("b, a", [([0.97], [1.0, -0.97]), ([0.0], [1.0, -0.5]), ([0.2, 0.3, 0.5], [1.0]),
                                  ([1.0, 2.0, 0.5], [2.0, -0.3, 0.1])])
def test_lfilter_matches_scipy(b, a):
    x = np.random.default_rng(22).normal(size=(2, 120))
    np.testing.assert_allclose(R.lfilter(b, a, x), scipy_lfilter(b, a, x), atol=TOL)
    np.testing.assert_allclose(R.lfilter(b, a, x[0, :1]), scipy_lfilter(b, a, x[0, :1]), atol=TOL)


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, message", [
    (lambda: R.quat_multiply(np.zeros((2, 3)), R.quat_identity()), r"shape \(\.\.\., 4\)"),
    (lambda: R.quat_to_matrix([0.0, 0.0, 0.0, 0.0]), "zero, NaN or infinite"),
    (lambda: R.quat_apply(R.quat_identity(), [1.0, 2.0]), r"shape \(\.\.\., 3\)"),
    (lambda: R.quat_from_matrix(np.eye(4)), r"\(\.\.\., 3, 3\)"),
    (lambda: R.quat_from_matrix(np.diag([1.0, 1.0, -1.0])), "determinant"),
    (lambda: R.quat_from_euler("XyZ", [0, 0, 0]), "Euler sequence"),
    (lambda: R.quat_from_euler("XXY", [0, 0, 0]), "Euler sequence"),
    (lambda: R.quat_from_euler("XYZ", [0, 0]), r"shape \(\.\.\., 3\)"),
    (lambda: R.quat_to_euler(R.quat_identity(), "ZYZ"), "Tait-Bryan"),
    (lambda: R.quat_slerp([0.0, 0.0], _random_quats(2, 0), [0.0]), "strictly increasing"),
    (lambda: R.quat_slerp([0.0, 1.0], _random_quats(2, 0), [1.5]), "within"),
    (lambda: R.quat_slerp([0.0], _random_quats(1, 0), [0.0]), "at least 2"),
    (lambda: R.quat_between([0.0, 0.0, 0.0], [1.0, 0.0, 0.0]), "non-zero"),
    (lambda: R.quat_align_vectors(np.ones((3, 3)), np.ones((2, 3))), "same shape"),
    (lambda: R.gaussian_filter1d(np.ones(5), 0.0), "positive"),
    (lambda: R.lfilter([1.0], [0.0, 1.0], np.ones(5)), r"a\[0\] != 0"),
])
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------- the motion path without scipy/torch
BLOCKER = '''
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("scipy", "torch"):
            raise ImportError(f"No module named {name!r} (blocked for this test)")
        return None
sys.meta_path.insert(0, _Blocked())
'''

SCRIPT = '''
import importlib, json, pkgutil, sys
import numpy as np
try:
    import scipy  # noqa: F401
    raise SystemExit("the blocker did not block scipy")
except ImportError:
    pass
import bamm_blender
addon = sorted(m.name for m in pkgutil.iter_modules(bamm_blender.__path__) if m.name != "__main__")
for name in addon:
    importlib.import_module("bamm_blender." + name)
from model_core.motion import features, foot_contact, ik, rotations, skeleton, smpl_bvh
feats = np.load(sys.argv[1])
joints = features.recover_from_ric(feats)
np.save(sys.argv[2], joints)
mean, std = feats.mean(axis=0), feats.std(axis=0) + 1.0
round_trip = features.denormalize(features.normalize(feats, mean, std), mean, std)
pose = ik.solve(joints)
clip = smpl_bvh.joints_to_bvh_clip(joints)
contacts = foot_contact.contacts_from_joints(joints)
blocked = sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "torch"))
print(json.dumps({"addon": addon, "blocked_loaded": blocked, "bvh_frames": clip.n_frames,
                  "contacts": list(contacts.shape), "normalize_error": float(np.abs(round_trip - feats).max()),
                  "fk_error": float(np.abs(ik.forward(pose) - joints).max())}))
'''


def _walking_joints(frames: int = 40) -> np.ndarray:
    """The rest skeleton walking forward (+Z) with every joint swaying a few centimetres ``(T, 22, 3)``."""
    from model_core.motion.skeleton import rest_joints

    t = np.arange(frames)[:, None, None]
    phase = np.arange(22)[None, :, None] * np.array([0.7, 1.3, 2.1])
    sway = 0.03 * np.sin(0.3 * t + phase)
    return rest_joints()[None] + sway + t * np.array([0.01, 0.0, 0.05])


def test_motion_path_runs_without_scipy_and_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from model_core.motion import features

    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    (tmp_path / "run.py").write_text(textwrap.dedent(SCRIPT))
    feats = features.extract_features(_walking_joints()).astype(np.float64)
    np.save(tmp_path / "features.npy", feats)
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "features.npy"),
                           str(tmp_path / "joints.npy")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-1000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["blocked_loaded"] == []
    assert {"axes", "bake", "retarget", "armature", "core", "export"} <= set(report["addon"])
    assert report["bvh_frames"] == len(feats) and report["contacts"] == [len(feats) - 1, 4]
    assert report["normalize_error"] < 1e-9 and report["fk_error"] < 1e-6
    want = features.recover_from_ric(torch.from_numpy(feats)).numpy()  # the torch path, float64
    np.testing.assert_allclose(np.load(tmp_path / "joints.npy"), want, atol=1e-5)
