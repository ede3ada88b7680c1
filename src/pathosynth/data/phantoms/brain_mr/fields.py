"""Smooth random fields and simple shapes, evaluated on 1D arrays of points.

Everything is float32 (``F32``): the arrays span millions of head voxels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

F32 = np.float32


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], vox: Sequence[float],
                 corr_mm: float) -> np.ndarray:
    """A smooth random float32 field of about unit variance with correlation length corr_mm.

    Random coefficients on a coarse lattice (node spacing corr_mm) spread with a separable
    Gaussian kernel: three small matrix products instead of a full-resolution filter.
    """
    kernels = []
    for n, v in zip(shape, vox):
        length = n * v
        nodes = int(np.ceil(length / corr_mm)) + 3
        centres = (np.arange(nodes) - (nodes - 1) / 2.0) * corr_mm + length / 2.0
        pos = (np.arange(n) + 0.5) * v
        k = np.exp(-0.5 * ((pos[:, None] - centres[None, :]) / (0.75 * corr_mm)) ** 2)
        k /= np.sqrt((k ** 2).sum(axis=1, keepdims=True))
        kernels.append(k.astype(F32))
    k0, k1, k2 = kernels
    coeff = rng.standard_normal((k0.shape[1], k1.shape[1], k2.shape[1]), dtype=F32)
    out = np.matmul(k1, np.matmul(coeff, k2.T))  # (c0, n1, n2)
    out = (k0 @ out.reshape(k0.shape[1], -1)).reshape(shape)
    return out


def ellipsoid_r2(c: Sequence[np.ndarray], centre: Sequence[float], semi: Sequence[float]):
    """Normalised squared radius of points c = (z, y, x) in an axis-aligned ellipsoid.

    Below 1 inside the ellipsoid.
    """
    out = ((c[0] - F32(centre[0])) * F32(1.0 / semi[0])) ** 2
    out += ((c[1] - F32(centre[1])) * F32(1.0 / semi[1])) ** 2
    out += ((c[2] - F32(centre[2])) * F32(1.0 / semi[2])) ** 2
    return out


def points_near(coords, centre, half_mm: float) -> np.ndarray:
    """Indices of the points (coords = z, y, x arrays) within a box of half_mm around centre."""
    sel = np.abs(coords[0] - F32(centre[0])) < F32(half_mm)
    for i in (1, 2):
        sel &= np.abs(coords[i] - F32(centre[i])) < F32(half_mm)
    return np.nonzero(sel)[0]
