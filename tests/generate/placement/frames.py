"""Scans with a far from plain geometry, shared by the placement tests."""

import numpy as np

from pathosynth.data.image import MedicalImage


def oblique_direction() -> np.ndarray:
    """A rotation about an oblique axis, times a flip of one array axis: a far from plain frame."""
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    angle = 0.7
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    return rotation @ np.diag([1.0, -1.0, 1.0])


def oblique_scan(shape=(20, 30, 40), spacing=(2.5, 0.7, 0.9)) -> MedicalImage:
    rng = np.random.default_rng(5)
    array = rng.integers(-1000, 400, shape).astype(np.int16)
    return MedicalImage(array, spacing, (-120.5, 33.25, -410.0), oblique_direction())
