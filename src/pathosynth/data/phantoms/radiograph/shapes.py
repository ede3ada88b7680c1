"""Building blocks for projected solids, and the attenuation of the tissues they are made of.

A solid is described by f = 1 - q (q its normalised squared radius) and a depth; its path length
along the beam is then 2 * depth * sqrt(f) where f > 0.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

# extra attenuation over soft tissue, per mm of path (soft tissue ~0.020/mm at ~70 kVp)
MU_MUSCLE = 0.020
MU_FAT = 0.0165
MU_CORTEX = 0.030
MU_TRABECULAR = 0.011
MU_PLATE = 0.012


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def ellipse_q(X, Y, c, axis, a, b, shrink=0.0):
    """Normalised squared radius of an ellipse with semi-axis `a` along unit `axis`, `b` across."""
    u = (X - c[0]) * axis[0] + (Y - c[1]) * axis[1]
    v = -(X - c[0]) * axis[1] + (Y - c[1]) * axis[0]
    return (u / (a - shrink)) ** 2 + (v / (b - shrink)) ** 2


def smooth_union(fs: list[np.ndarray], depths: list, k: float) -> np.ndarray:
    """Half-thickness of a smooth union of ellipsoid-like solids, f = 1 - q for each."""
    stack = np.stack(fs)
    top = stack.max(axis=0)
    w = np.exp(k * (stack - top))
    total = w.sum(axis=0)
    F = top + np.log(total) / k
    D = sum(wi * np.asarray(di) for wi, di in zip(w, depths)) / total
    return D * np.sqrt(np.clip(F, 0.0, None))


def sample_field(field: np.ndarray, spacing: float, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Bilinear values of a square grid (mm, centred on the origin) at the points X, Y."""
    n = field.shape[0]
    rows = (Y + n * spacing / 2) / spacing - 0.5
    cols = (X + n * spacing / 2) / spacing - 0.5
    return ndimage.map_coordinates(field, [rows, cols], order=1, mode="nearest")
