"""Rotations and the two signal filters the motion path needs, in numpy alone (no scipy: Blender has none).

Conventions:

* Quaternions are float64 arrays ``(..., 4)``, scalar LAST (``x, y, z, w``), like scipy's ``as_quat()``.
  Every function that reads quaternions normalises them first (as scipy's ``from_quat`` does) and raises
  ``ValueError`` for a zero or non-finite one. Leading axes broadcast.
* ``quat_multiply(p, q)`` is the composition "``q`` first, then ``p``" (scipy's ``p * q``); a quaternion
  rotates vectors actively: ``quat_apply(q, v) == quat_to_matrix(q) @ v``.
* Euler sequences as in scipy: upper case = intrinsic (``"ZXY"``: ``R = Rz @ Rx @ Ry``, the BVH channel
  order), lower case = extrinsic (``"zxy"``: Z first about the fixed axes, Blender's ``ZXY`` mode).
* Signs follow scipy: ``quat_from_rotvec`` and ``quat_to_rotvec`` use ``w >= 0`` (angles in [0, pi]);
  ``quat_from_matrix`` uses the same case split as scipy, so it returns scipy's sign too.
"""

from __future__ import annotations

import numpy as np

_AXES = "xyz"
_SMALL_ANGLE = 1e-3  # radians: below it the rotation-vector scale factors use their Taylor series
_GIMBAL_EPS = 1e-7  # cos(middle angle) under which an Euler decomposition sets its third angle to zero


# ------------------------------------------------------------------------------------------- checks
def _quat(q, name: str = "quaternion") -> np.ndarray:
    """Unit quaternions ``(..., 4)`` float64 from any array-like of quaternions."""
    q = np.asarray(q, dtype=np.float64)
    if q.ndim < 1 or q.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4) (x, y, z, w), got {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if not (np.isfinite(norm).all() and (norm > 0).all()):
        raise ValueError(f"{name} contains a zero, NaN or infinite quaternion")
    return q / norm


def _vec3(v, name: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.ndim < 1 or v.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {v.shape}")
    return v


# ----------------------------------------------------------------------------------------- algebra
def quat_identity(shape: int | tuple[int, ...] = ()) -> np.ndarray:
    """Identity quaternions of shape ``shape + (4,)``."""
    q = np.zeros(((int(shape),) if np.ndim(shape) == 0 else tuple(shape)) + (4,))
    q[..., 3] = 1.0
    return q


def quat_multiply(p, q) -> np.ndarray:
    """Composition ``p * q`` ``(..., 4)``: rotate by ``q`` first, then by ``p`` (Hamilton product)."""
    p, q = _quat(p, "p"), _quat(q, "q")
    pv, pw, qv, qw = p[..., :3], p[..., 3:], q[..., :3], q[..., 3:]
    vec = pw * qv + qw * pv + np.cross(pv, qv)
    return np.concatenate([vec, pw * qw - np.sum(pv * qv, axis=-1, keepdims=True)], axis=-1)


def quat_inverse(q) -> np.ndarray:
    """Inverse rotations ``(..., 4)`` (the conjugate: ``x, y, z`` negated, like scipy's ``inv``)."""
    q = _quat(q).copy()
    q[..., :3] *= -1.0
    return q


def quat_apply(q, v) -> np.ndarray:
    """Rotate vectors ``v`` ``(..., 3)`` by ``q`` ``(..., 4)`` (broadcast) -> ``(..., 3)``."""
    q, v = _quat(q), _vec3(v, "vectors")
    u, w = q[..., :3], q[..., 3:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


# ------------------------------------------------------------------------------------ matrices
def quat_to_matrix(q) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)``."""
    x, y, z, w = np.moveaxis(_quat(q), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_from_matrix(matrices) -> np.ndarray:
    """Quaternions ``(..., 4)`` of rotation matrices ``(..., 3, 3)``.

    A matrix that is not orthonormal (within 1e-12) is first replaced by the nearest rotation (``U @ Vt`` of
    its SVD), as scipy does; a matrix with a determinant <= 0 is refused.
    """
    m = np.asarray(matrices, dtype=np.float64)
    if m.ndim < 2 or m.shape[-2:] != (3, 3):
        raise ValueError(f"rotation matrices must have shape (..., 3, 3), got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("rotation matrices contain NaN or infinite values")
    if (np.linalg.det(m) <= 0).any():
        raise ValueError("rotation matrix with a determinant <= 0 (left-handed or null frame)")
    gram = m @ np.swapaxes(m, -1, -2)
    skewed = ~np.all(np.abs(gram - np.eye(3)) <= 1e-12, axis=(-2, -1))
    if skewed.any():
        m = m.copy()
        u, _s, vt = np.linalg.svd(m[skewed])
        m[skewed] = u @ vt
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    choice = np.argmax(np.stack([m[..., 0, 0], m[..., 1, 1], m[..., 2, 2], trace], -1), axis=-1)
    q = np.empty(m.shape[:-2] + (4,))
    for i in range(3):  # the largest of x, y, z is computed from the diagonal, the others from sums
        j, k = (i + 1) % 3, (i + 2) % 3
        case = np.empty_like(q)
        case[..., i] = 1.0 - trace + 2.0 * m[..., i, i]
        case[..., j] = m[..., j, i] + m[..., i, j]
        case[..., k] = m[..., k, i] + m[..., i, k]
        case[..., 3] = m[..., k, j] - m[..., j, k]
        q = np.where((choice == i)[..., None], case, q)
    largest_w = np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                          m[..., 1, 0] - m[..., 0, 1], 1.0 + trace], -1)
    q = np.where((choice == 3)[..., None], largest_w, q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------ rotation vectors
def quat_from_rotvec(rotvec) -> np.ndarray:
    """Quaternions ``(..., 4)`` (``w >= 0`` for angles up to pi) of rotation vectors ``(..., 3)`` (radians)."""
    v = _vec3(rotvec, "rotation vectors")
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    small = angle <= _SMALL_ANGLE
    safe = np.where(small, 1.0, angle)
    scale = np.where(small, 0.5 - angle ** 2 / 48.0 + angle ** 4 / 3840.0, np.sin(safe / 2.0) / safe)
    return np.concatenate([scale * v, np.cos(angle / 2.0)], axis=-1)


def quat_to_rotvec(q) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` (radians, angle in [0, pi]) of quaternions ``(..., 4)``."""
    q = _quat(q)
    q = np.where(q[..., 3:] < 0.0, -q, q)
    angle = 2.0 * np.arctan2(np.linalg.norm(q[..., :3], axis=-1, keepdims=True), q[..., 3:])
    small = angle <= _SMALL_ANGLE
    safe = np.where(small, 1.0, angle)
    scale = np.where(small, 2.0 + angle ** 2 / 12.0 + 7.0 * angle ** 4 / 2880.0, safe / np.sin(safe / 2.0))
    return scale * q[..., :3]


# ------------------------------------------------------------------------------------ Euler angles
def _euler_axes(seq: str, *, tait_bryan: bool) -> tuple[list[int], bool]:
    """Axis indices of an Euler sequence and whether it is intrinsic (upper case)."""
    if not isinstance(seq, str) or not 1 <= len(seq) <= 3 or not (seq.isupper() or seq.islower()) \
            or any(c not in _AXES for c in seq.lower()) or any(a == b for a, b in zip(seq, seq[1:])):
        raise ValueError(f"Euler sequence must be 1 to 3 of 'xyz' (lower: extrinsic) or 'XYZ' (upper: intrinsic) "
                         f"without an axis twice in a row, got {seq!r}")
    if tait_bryan and len(set(seq.lower())) != 3:
        raise ValueError(f"Euler sequence must name each of x, y, z once (Tait-Bryan), got {seq!r}")
    return [_AXES.index(c) for c in seq.lower()], seq.isupper()


def quat_from_euler(seq: str, angles, *, degrees: bool = False) -> np.ndarray:
    """Quaternions ``(..., 4)`` of Euler angles ``(..., len(seq))`` about the axes of ``seq`` (see module doc)."""
    axes, intrinsic = _euler_axes(seq, tait_bryan=False)
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim < 1 or angles.shape[-1] != len(axes):
        raise ValueError(f"angles must have shape (..., {len(axes)}) for sequence {seq!r}, got {angles.shape}")
    if degrees:
        angles = np.deg2rad(angles)
    q = quat_identity(angles.shape[:-1])
    for n, axis in enumerate(axes):
        step = np.zeros(angles.shape[:-1] + (4,))
        step[..., axis] = np.sin(angles[..., n] / 2.0)
        step[..., 3] = np.cos(angles[..., n] / 2.0)
        q = quat_multiply(q, step) if intrinsic else quat_multiply(step, q)
    return q


def _intrinsic_euler(m: np.ndarray, axes: list[int], *, locked_zero: int) -> np.ndarray:
    """Angles ``(..., 3)`` with ``m = R_i(a) R_j(b) R_k(c)``; at gimbal lock angle ``locked_zero`` (0 or 2) is 0."""
    i, j, k = axes
    s = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 for the cyclic orders XYZ, YZX, ZXY
    cos_b = np.hypot(m[..., i, i], m[..., i, j])
    first = np.arctan2(-s * m[..., j, k], m[..., k, k])
    middle = np.arctan2(s * m[..., i, k], cos_b)
    third = np.arctan2(-s * m[..., i, j], m[..., i, i])
    locked = cos_b < _GIMBAL_EPS
    if locked_zero == 2:  # m = R_i(a) R_j(b): column j is e_j turned by a about axis i
        first = np.where(locked, np.arctan2(s * m[..., k, j], m[..., j, j]), first)
        third = np.where(locked, 0.0, third)
    else:  # m = R_j(b) R_k(c): row j is row j of R_k(c)
        first = np.where(locked, 0.0, first)
        third = np.where(locked, np.arctan2(s * m[..., j, i], m[..., j, j]), third)
    return np.stack([first, middle, third], axis=-1)


def quat_to_euler(q, seq: str, *, degrees: bool = False) -> np.ndarray:
    """Euler angles ``(..., 3)`` of quaternions ``(..., 4)`` for a Tait-Bryan ``seq`` (each axis once).

    First and third angles in (-pi, pi], the middle one in [-pi/2, pi/2]. At gimbal lock (middle angle
    +-pi/2) the third angle is set to zero, as scipy does.
    """
    axes, intrinsic = _euler_axes(seq, tait_bryan=True)
    if intrinsic:
        angles = _intrinsic_euler(quat_to_matrix(q), axes, locked_zero=2)
    else:  # extrinsic "abc" = intrinsic "CBA" with the angles reversed
        angles = _intrinsic_euler(quat_to_matrix(q), axes[::-1], locked_zero=0)[..., ::-1]
    return np.rad2deg(angles) if degrees else angles


# ---------------------------------------------------------------------------- interpolation, fitting
def quat_slerp(key_times, key_quats, times) -> np.ndarray:
    """Spherical linear interpolation (scipy ``Slerp``): keys ``(K, ..., 4)`` at increasing ``key_times``
    ``(K,)``, sampled at ``times`` ``(N,)`` within ``[key_times[0], key_times[-1]]`` -> ``(N, ..., 4)``.
    Each step between keys turns along the shortest arc."""
    key_times = np.asarray(key_times, dtype=np.float64)
    key_quats, times = _quat(key_quats, "key_quats"), np.asarray(times, dtype=np.float64)
    if key_times.ndim != 1 or len(key_times) < 2 or len(key_quats) != len(key_times):
        raise ValueError(f"slerp needs at least 2 key times (K,) and key quaternions (K, ..., 4), got "
                         f"{key_times.shape} and {key_quats.shape}")
    if not (np.diff(key_times) > 0).all():
        raise ValueError("slerp key times must be strictly increasing")
    if times.ndim != 1 or (times < key_times[0]).any() or (times > key_times[-1]).any():
        raise ValueError(f"slerp times must be a 1-d array within [{key_times[0]}, {key_times[-1]}]")
    steps = quat_to_rotvec(quat_multiply(quat_inverse(key_quats[:-1]), key_quats[1:]))
    index = np.maximum(np.searchsorted(key_times, times) - 1, 0)  # a key time ends its segment, as in scipy
    alpha = (times - key_times[index]) / (key_times[index + 1] - key_times[index])
    alpha = alpha.reshape((-1,) + (1,) * (key_quats.ndim - 1))
    return quat_multiply(key_quats[index], quat_from_rotvec(steps[index] * alpha))


def quat_between(u, v) -> np.ndarray:
    """Shortest-arc quaternions ``(..., 4)`` turning directions ``u`` onto ``v`` (``(..., 3)``, broadcast, any
    length). Opposite directions: a half turn about an axis perpendicular to ``u`` (the cross product with X,
    or with Y when ``u`` is within about 25 degrees of X)."""
    u, v = np.broadcast_arrays(_vec3(u, "u"), _vec3(v, "v"))
    nu, nv = np.linalg.norm(u, axis=-1, keepdims=True), np.linalg.norm(v, axis=-1, keepdims=True)
    if not (np.isfinite(nu).all() and np.isfinite(nv).all() and (nu > 0).all() and (nv > 0).all()):
        raise ValueError("quat_between needs finite non-zero vectors")
    u, v = u / nu, v / nv
    cross, dot = np.cross(u, v), np.sum(u * v, axis=-1, keepdims=True)
    q = np.concatenate([cross, 1.0 + dot], axis=-1)
    # Within 1e-8 rad of opposite the cross product no longer fixes the axis: a half turn is as close.
    opposite = (dot[..., 0] < 0.0) & (np.linalg.norm(cross, axis=-1) < 1e-8)
    if opposite.any():
        uo = u[opposite]
        helper = np.where(np.abs(uo[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        axis = np.cross(uo, helper)
        q[opposite] = np.concatenate([axis / np.linalg.norm(axis, axis=-1, keepdims=True),
                                      np.zeros((len(uo), 1))], axis=-1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_align_vectors(a, b) -> np.ndarray:
    """The rotation ``(..., 4)`` that best turns vectors ``b`` onto ``a`` (``(..., N, 3)``, N >= 2, equal
    weights): minimises ``sum_i |a_i - R b_i|^2`` (Kabsch, as scipy's ``Rotation.align_vectors(a, b)``).
    N = 1 gives the shortest arc."""
    a, b = _vec3(a, "a"), _vec3(b, "b")
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must have the same shape (..., N, 3), got {a.shape} and {b.shape}")
    if a.shape[-2] == 1:
        return quat_between(b[..., 0, :], a[..., 0, :])
    u, _s, vt = np.linalg.svd(np.swapaxes(a, -1, -2) @ b)
    flip = np.linalg.det(u @ vt) < 0.0  # a reflection fits better: take the best proper rotation instead
    u[..., :, 2] = np.where(flip[..., None], -u[..., :, 2], u[..., :, 2])
    return quat_from_matrix(u @ vt)


# -------------------------------------------------------------------------------------- filters
def gaussian_filter1d(x, sigma: float, *, truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing along the last axis of ``x`` ``(..., T)`` (scipy ``gaussian_filter1d`` with
    ``mode="nearest"``: the signal is extended with its end values). ``sigma`` in samples; the kernel reaches
    ``round(truncate * sigma)`` samples each side. Returns float64 of ``x``'s shape."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"gaussian_filter1d needs an array with at least one sample on its last axis, got {x.shape}")
    if not (np.isfinite(sigma) and sigma > 0 and np.isfinite(truncate) and truncate > 0):
        raise ValueError(f"sigma and truncate must be positive numbers, got sigma={sigma}, truncate={truncate}")
    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    padded = np.concatenate([np.repeat(x[..., :1], radius, axis=-1), x,
                             np.repeat(x[..., -1:], radius, axis=-1)], axis=-1)
    rows = padded.reshape(-1, padded.shape[-1])  # the kernel is symmetric: convolution = correlation
    return np.stack([np.convolve(row, weights, mode="valid") for row in rows]).reshape(x.shape)


def lfilter(b, a, x) -> np.ndarray:
    """IIR/FIR filter along the last axis of ``x`` ``(..., T)`` from rest (scipy ``lfilter(b, a, x)``):
    ``a[0] y[n] = sum_k b[k] x[n-k] - sum_{k>=1} a[k] y[n-k]``. Returns float64 of ``x``'s shape."""
    b, a = np.atleast_1d(np.asarray(b, dtype=np.float64)), np.atleast_1d(np.asarray(a, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    if b.ndim != 1 or a.ndim != 1 or len(b) == 0 or len(a) == 0 or a[0] == 0:
        raise ValueError(f"lfilter needs 1-d coefficients b and a with a[0] != 0, got b={b}, a={a}")
    if x.ndim < 1:
        raise ValueError("lfilter needs a signal with a time axis")
    b, a = (b / a[0]).tolist(), (a / a[0]).tolist()
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty_like(flat)
    for row, signal in enumerate(flat.tolist()):  # Python floats: far quicker than numpy scalars here
        y: list[float] = []
        for n in range(len(signal)):
            acc = sum(b[k] * signal[n - k] for k in range(min(len(b), n + 1)))
            y.append(acc - sum(a[k] * y[n - k] for k in range(1, min(len(a), n + 1))))
        out[row] = y
    return out.reshape(x.shape)
