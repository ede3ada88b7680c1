"""Cancellous bone of the proximal femur: its trabecular texture and how its density varies."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import fft as sfft

from pathosynth.data.phantoms.radiograph.shapes import sigmoid

if TYPE_CHECKING:
    from pathosynth.data.phantoms.radiograph.femur import Femur


def texture_field(rng: np.random.Generator, n: int, spacing: float, g: Femur, bmd: float) -> np.ndarray:
    """Trabecular texture on a square grid (mm) centred on the origin, in the femur's frame.

    Band-passed noise made straight in the frequency domain (a random half spectrum, one inverse
    real FFT per texture). The principal compressive group runs from the head
    into the medial neck, the tensile group arcs over the superior neck and thins first in
    osteoporosis (Singh index); a fine isotropic texture fills the rest.
    """
    FX = sfft.rfftfreq(n, d=spacing)[None, :]
    FY = sfft.fftfreq(n, d=spacing)[:, None]
    fr = np.hypot(FX, FY) + 1e-9
    f0 = 1.0 / rng.uniform(1.7, 2.4)
    band = np.exp(-0.5 * ((fr - f0) / (0.45 * f0)) ** 2)

    def oriented(direction: np.ndarray, spread: float) -> np.ndarray:
        # stripes along `direction` have their frequencies along its normal
        cos2 = ((FX * -direction[1] + FY * direction[0]) / fr) ** 2
        return band * np.exp(-(1.0 - cos2) / (2 * spread**2))

    def texture(filt: np.ndarray) -> np.ndarray:
        spectrum = (rng.standard_normal(filt.shape) + 1j * rng.standard_normal(filt.shape)) * filt
        out = sfft.irfft2(spectrum, s=(n, n), workers=1)
        return out / (out.std() + 1e-12)

    compressive = texture(oriented(np.array([0.26, 0.97]), 0.4))
    tensile = texture(oriented(g.e_s, 0.45))
    fine = texture(band)
    c = (np.arange(n) + 0.5) * spacing - n * spacing / 2
    dx = c[None, :] - g.H[0]
    dy = c[:, None] - g.H[1]
    s = dx * g.e_s[0] + dy * g.e_s[1]
    w = dx * g.e_w[0] + dy * g.e_w[1]
    R = g.R
    w_comp = np.exp(-((w - 0.15 * R) / (0.7 * R)) ** 2) * sigmoid((1.7 * R - s) / 4.0)
    w_tens = np.exp(-((w + 0.45 * R) / (0.45 * R)) ** 2) * sigmoid((2.2 * R - s) / 5.0) \
        * (0.3 + 0.9 * bmd)
    return 0.7 * (w_comp * compressive + w_tens * tensile + fine)


def trabecular_density(s: np.ndarray, w: np.ndarray, R: float, bmd: float) -> np.ndarray:
    """Relative cancellous density: denser along the compressive group, Ward's triangle sparse."""
    comp = np.exp(-((w - 0.15 * R) / (0.7 * R)) ** 2) * sigmoid((1.7 * R - s) / 4.0)
    ward = np.exp(-(((s - 1.35 * R) / (0.35 * R)) ** 2 + ((w - 0.05 * R) / (0.3 * R)) ** 2))
    return 1.0 + 0.3 * comp - (0.25 + 0.35 * (1.0 - bmd)) * ward
