"""The one place where model axes meet Blender axes.

Model: metres, Y-up, the character faces +Z. Blender: Z-up, characters face -Y. The mapping is
``(x, y, z)_blender = (x, -z, y)_model`` (what Blender's FBX/BVH importers do for Y-up files).
"""

import numpy as np

from .core import model_module

rotations = model_module(".motion.rotations")

MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
BLENDER_TO_MODEL = MODEL_TO_BLENDER.T
MODEL_UP = np.array([0.0, 1.0, 0.0])
MODEL_FORWARD = np.array([0.0, 0.0, 1.0])


def to_blender(points: np.ndarray) -> np.ndarray:
    """Model-space points or vectors ``(..., 3)`` -> Blender space."""
    return np.asarray(points, dtype=np.float64) @ MODEL_TO_BLENDER.T


def to_model(points: np.ndarray) -> np.ndarray:
    """Blender-space points or vectors ``(..., 3)`` -> model space."""
    return np.asarray(points, dtype=np.float64) @ BLENDER_TO_MODEL.T


def bone_bases(matrices: np.ndarray) -> np.ndarray:
    """Rest rotations of bones (``bone.matrix_local`` 3x3 ``(J, 3, 3)``, Blender armature space) expressed in
    model axes, as quaternions ``(J, 4)`` (x, y, z, w).

    For a bone with basis ``A`` a model-space rotation ``R`` about the bone's head is the pose-bone rotation
    ``A^-1 R A`` (the bone's local frame), and a model-space offset ``v`` is the pose-bone location ``A^-1 v``.
    """
    return rotations.quat_from_matrix(BLENDER_TO_MODEL @ np.asarray(matrices, dtype=np.float64))
