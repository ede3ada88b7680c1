"""From tissue labels to scanner values: per-sequence contrast, blur, bias field and noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pathosynth.data.phantoms.brain_mr.fields import F32
from pathosynth.data.phantoms.brain_mr.head import Head

SEQUENCES = ("t1", "t1ce", "t2", "flair")

# Relative signal of each tissue per sequence (white matter on T1 = 1), in tissue-label order.
# T1c (what the brain sets write): grey/white 0.80 and CSF/white 0.27, as the spin-echo signal
# equation gives with textbook relaxation times at 1.5 T; oedema (0.64) and necrosis (0.32) dark
# with their long T1; the enhancing tumour 1.9x white matter after gadolinium (1.5-2x seen).
CONTRAST = {
    #        air  skin  fat   musc  bone  marr  csf   gm    wm    dgm
    "t1":    [0.0, 0.78, 1.45, 0.50, 0.05, 1.05, 0.25, 0.72, 1.00, 0.80,
              # dura sinus chor  wmh   oed   enh   nec   nonenh
              0.28, 0.45, 0.62, 0.86, 0.66, 0.74, 0.34, 0.62],
    "t1ce":  [0.0, 0.82, 1.40, 0.58, 0.05, 1.02, 0.27, 0.80, 1.00, 0.86,
              0.70, 1.45, 1.30, 0.87, 0.64, 1.90, 0.32, 0.64],
    "t2":    [0.0, 0.72, 1.00, 0.40, 0.04, 0.72, 1.75, 0.80, 0.56, 0.68,
              0.22, 0.12, 1.10, 0.95, 1.22, 0.95, 1.50, 1.12],
    "flair": [0.0, 0.70, 1.05, 0.45, 0.04, 0.78, 0.10, 0.86, 0.68, 0.78,
              0.28, 0.25, 0.55, 1.12, 1.35, 1.12, 0.70, 1.18],
}
# Scanner-unit scale of white matter per sequence (low, high), drawn per patient.
SCALE = {"t1": (350.0, 1100.0), "t1ce": (450.0, 1500.0), "t2": (250.0, 900.0),
         "flair": (250.0, 800.0)}
# In-plane partial-volume blur (sigma, mm) and the amplitude of the fine tissue texture.
BLUR_MM = 0.75
GRAIN = 0.035
# One buffer of white noise per patient; each sequence reads two windows of it at different lags.
NOISE_LAGS = 1 << 16


def sequence_params(rng: np.random.Generator) -> dict[str, dict]:
    """Per-sequence contrast jitter, bias weights, noise and scale.

    Drawn for all four sequences in order whichever are written, so that a subset of sequences
    gives the same images.
    """
    params = {}
    for name in SEQUENCES:
        lut = np.asarray(CONTRAST[name], dtype=np.float64)
        lut = lut * (1.0 + 0.05 * rng.standard_normal(lut.size))
        params[name] = dict(lut=lut.astype(F32), bias=rng.normal(0.0, 0.09, 2),
                            noise=rng.uniform(0.012, 0.045), scale=rng.uniform(*SCALE[name]),
                            offsets=rng.choice(NOISE_LAGS, 2, replace=False))
    return params


def sequence_values(p: dict, labels3: np.ndarray, labels: np.ndarray, blend, head: Head,
                    bias: list[np.ndarray], texture: np.ndarray, noise: np.ndarray,
                    grain: np.ndarray) -> np.ndarray:
    """The sequence's scanner values at the head voxels (1D int16).

    ``labels3`` is the label map on the crop box (for the in-plane partial-volume blur),
    ``labels`` the same at the head voxels; ``blend`` comes from the tumour painting.
    """
    lut = p["lut"]
    img = lut[labels3]
    flat = img.ravel()
    if blend is not None:
        idx, normal, contrast, tumour_texture = blend
        flat[head.flat[idx]] = ((1.0 - contrast) * lut[normal]
                                + contrast * lut[labels[idx]] * (1.0 + tumour_texture))
    img *= 1.0 + F32(GRAIN) * grain
    sigma_yx = tuple(BLUR_MM / v for v in head.vox[1:])
    img = ndimage.gaussian_filter(img, (0.0, *sigma_yx), truncate=2.5)
    v = img.ravel()[head.flat]
    del img
    v *= 1.0 + F32(p["bias"][0]) * bias[0] + F32(p["bias"][1]) * bias[1] + F32(0.025) * texture
    # Rician noise: the magnitude of the signal plus complex Gaussian noise.
    n = v.size
    o1, o2 = (int(o) for o in p["offsets"])
    sigma = F32(p["noise"])
    v += sigma * noise[o1:o1 + n]
    v *= v
    v += (sigma * noise[o2:o2 + n]) ** 2
    np.sqrt(v, out=v)
    v *= F32(p["scale"])
    np.rint(v, out=v)
    np.minimum(v, 32767, out=v)
    return v.astype(np.int16)
