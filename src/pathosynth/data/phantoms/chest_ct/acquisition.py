"""What the scanner contributes: the sampling grid of each scan, the Hounsfield scale, the
reconstruction kernel and correlated noise."""

from __future__ import annotations

import numpy as np

from .geometry import blur3

SIZES = ("default", "tiny")
SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5)
AIR_HU = -1000.0
HU_MIN, HU_MAX = -1024, 3071


def draw_sampling(rng: np.random.Generator, size: str) -> tuple[float, int, float, int]:
    """In-plane spacing, in-plane voxels, slice thickness and slice count of one scan: about a
    300 mm field of view over 150-200 mm of chest ("tiny": 64 x 64 x 48 voxels)."""
    if size == "tiny":
        sxy = round(float(rng.uniform(1.4, 1.6)), 4)
        nxy = 64
        sz = float(rng.choice([1.5, 2.0, 2.5]))
        nz = 48
    else:
        sxy = round(float(rng.uniform(1.1, 1.5)), 4)
        nxy = int(round(float(rng.uniform(292.0, 312.0)) / sxy))
        sz = float(rng.choice(SLICE_THICKNESSES))
        nz = int(round(float(rng.uniform(150.0, 200.0)) / sz))
    return sxy, nxy, sz, nz


def reconstruct(img: np.ndarray, rng: np.random.Generator, kernel_centre: float,
                noise_sigma: float) -> np.ndarray:
    """The scanner's image of the float32 HU volume `img` (which it overwrites): kernel blur and
    noise, clipped to the 12-bit HU range and rounded to int16."""
    buf = np.empty_like(img)
    # reconstruction kernel: a light in-plane blur
    blur3(img, 2, kernel_centre, buf)
    blur3(buf, 1, kernel_centre, img)
    # correlated noise: uniform noise smoothed in-plane is close to Gaussian
    noise = rng.random(img.shape, dtype=np.float32)
    noise -= 0.5
    c = 0.6
    blur3(noise, 2, c, buf)
    blur3(buf, 1, c, noise)
    per_axis = c * c + 2 * ((1 - c) / 2) ** 2  # variance gain of the 3-tap filter
    noise *= noise_sigma * float(np.sqrt(12.0)) / per_axis
    img += noise
    del noise, buf
    np.clip(img, HU_MIN, HU_MAX, out=img)
    np.rint(img, out=img)
    return img.astype(np.int16)
