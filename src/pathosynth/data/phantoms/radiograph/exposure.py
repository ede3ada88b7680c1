"""From line integrals to what a digital radiograph system displays: the tube's heel effect,
quantum noise, detector blur, dynamic range compression and a film-like look-up table."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

MAX_VALUE = 4095           # 12-bit detector range


def expose(A: np.ndarray, rng: np.random.Generator, px: float, mirrored: bool) -> np.ndarray:
    """Quantum noise, detector blur, dynamic range compression and a look-up table to 12 bits.

    `A` is a square image of line integrals with pixels `px` mm; `mirrored` turns the heel effect
    for a right hip that is displayed as a left one.
    """
    size = A.shape[0]
    # heel effect: the exposure falls off along the tube axis
    ramp = np.linspace(-1.0, 1.0, size)
    A = A + rng.uniform(-0.08, 0.08) * (-ramp if mirrored else ramp)[None, :] + rng.uniform(-0.05, 0.05) * ramp[:, None]
    sigma_ref = rng.uniform(0.004, 0.014) * size / 256.0  # bigger pixels catch more quanta
    noise = rng.standard_normal(A.shape)
    noise = ndimage.gaussian_filter(noise, 0.6) * 1.9
    A = A + sigma_ref * np.exp(np.clip(A - 4.0, -4.0, 2.0) / 2.0) * noise
    A = ndimage.gaussian_filter(A, 0.4)
    # dynamic range compression: take out part of the large-scale thickness variation
    beta = rng.uniform(0.45, 0.75)
    low = A
    width = max(1, int(round(2.0 * 30.0 / px)))  # three box passes make a Gaussian of sigma 30 mm
    for _ in range(3):
        low = ndimage.uniform_filter(low, width, mode="nearest")
    D = A - beta * (low - np.median(low))
    soft = np.percentile(D, 35)
    bone = np.percentile(D, 99.7)
    u = (D - soft) / max(bone - soft, 1e-6)
    level = rng.uniform(1200.0, 1800.0)
    top = rng.uniform(3500.0, 3950.0)
    floor = rng.uniform(60.0, 350.0)
    gamma = rng.uniform(0.8, 1.2)
    pos = np.clip(u, 0.0, None)
    neg = np.clip(u, None, 0.0)
    # a shoulder above the bone and a toe below the soft tissue, like film
    v = np.where(u >= 0, level + (top - level) * np.tanh(1.3 * pos**gamma) / math.tanh(1.3),
                 floor + (level - floor) * np.exp(neg / rng.uniform(0.8, 1.6)))
    return np.clip(np.rint(v), 0, MAX_VALUE).astype(np.uint16)
