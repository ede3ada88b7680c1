"""Structures inside the brain: deep grey nuclei, the ventricles with the choroid plexus, the
brainstem with the fourth ventricle, and small white-matter hyperintensities.

Shapes are laid out in the brain frame normalised by the brain's semi-axes (``nz, ny, nx``), so
they scale with the head; the mass effect of a tumour has already warped that frame.
"""

from __future__ import annotations

import numpy as np

from pathosynth.data.phantoms.brain_mr.fields import F32, ellipsoid_r2
from pathosynth.data.phantoms.brain_mr.head import Head
from pathosynth.data.phantoms.brain_mr.tissues import CHOROID, CSF, DGM, WM, WMH


def paint_deep_structures(rng, head: Head, lab, brain, b, n, stem, cerebellum):
    """Label the deep structures in ``lab`` (intracranial voxels); b is the brain frame in mm."""
    nz, ny, nx = n
    central = np.nonzero(brain & (np.abs(nz + 0.1) < 0.6) & (np.abs(ny) < 0.7)
                         & (np.abs(nx) < 0.6))[0]
    sub = lab[central]
    _nuclei_and_ventricles(head, sub, nz[central], ny[central], nx[central])
    lab[central] = sub
    _brainstem(lab, brain, n, stem, cerebellum)
    _wm_hyperintensities(rng, head, lab, b)


def _nuclei_and_ventricles(head: Head, sub, cz, cy, cx):
    """Deep grey nuclei, lateral and third ventricles and choroid plexus in the central brain."""
    vs = head.ventricle_scale
    # Deep grey nuclei (paired ellipsoids): caudate head, thalamus, lentiform nucleus.
    wm = sub == WM
    for c, s in (((0.08, -0.22, 0.19), (0.22, 0.13, 0.08)),
                 ((-0.12, 0.10, 0.14), (0.17, 0.17, 0.13)),
                 ((-0.14, -0.05, 0.36), (0.18, 0.22, 0.085))):
        for side in (-1.0, 1.0):
            ell = ellipsoid_r2((cz, cy, cx), (c[0], c[1], side * c[2] * (0.88 + 0.12 * vs)), s)
            sub[(ell < 1.0) & wm] = DGM
    # Lateral ventricles: two bananas bowed outwards at the back, frontal horns near the midline.
    t = (cy + 0.40) * F32(1 / 0.80)
    tc = np.clip(t, 0, 1)
    taper = np.sqrt(np.clip(1.0 - (2.0 * tc - 1.0) ** 8, 0, 1))
    zc = 0.14 - 0.30 * tc * tc
    wz = (0.10 * vs) * taper * (0.9 + 0.4 * tc)
    wx = (0.045 + 0.06 * tc) * vs * taper
    inrange = (t > 0) & (t < 1)
    sz = ((cz - zc) / (wz + 1e-3)) ** 2
    for side in (-1.0, 1.0):
        xc = side * (0.13 + 0.15 * tc * tc) * (0.85 + 0.15 * vs)
        lat = inrange & ((((cx - xc) / (wx + 1e-3)) ** 2 + sz) < 1.0) & (sub != DGM)
        sub[lat] = CSF
        plexus = lat & (((cy - 0.30) * F32(1 / 0.08)) ** 2
                        + ((cx - xc) / (0.6 * wx + 1e-3)) ** 2
                        + ((cz - zc) / (0.6 * wz + 1e-3)) ** 2 < 1.0)
        sub[plexus] = CHOROID
    third = ((np.abs(cx) < F32((0.6 + 1.0 * vs) / head.brain_axes[2]))
             & (np.abs(cy - 0.03) < 0.14) & (cz > -0.34) & (cz < -0.04))
    sub[third] = CSF


def _brainstem(lab, brain, n, stem, cerebellum):
    """Brainstem (grey rim) and fourth ventricle in the posterior fossa."""
    nz, ny, nx = n
    low = np.nonzero(brain & (nz < -0.32))[0]
    s = stem[low]
    sl = lab[low]
    sl[s < 1.0] = WM
    sl[(s < 1.0) & (s > 0.8)] = DGM
    vent4 = (((ny[low] - 0.28) * F32(1 / 0.06)) ** 2 + (nx[low] * F32(1 / 0.08)) ** 2 < 1.0) \
        & (nz[low] < -0.5) & (nz[low] > -0.8)
    sl[vent4] = CSF
    sl[(s >= 1.0) & (s < 1.2) & (ny[low] < 0.12) & ~cerebellum[low]] = CSF
    lab[low] = sl


def _wm_hyperintensities(rng, head: Head, lab, b):
    """Small white-matter spots, more with atrophy: look-alikes for oedema on FLAIR."""
    bz, by, bx = b
    Bz, By, Bx = head.brain_axes
    for _ in range(rng.poisson(0.5 + 4.0 * head.atrophy)):
        c = (rng.uniform(-0.15, 0.4) * Bz, rng.uniform(-0.5, 0.5) * By,
             rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.5) * Bx)
        r = rng.uniform(1.5, 4.5)
        pts = np.nonzero((np.abs(bz - F32(c[0])) < r) & (np.abs(by - F32(c[1])) < 2 * r))[0]
        spot = ellipsoid_r2((bz[pts], by[pts], bx[pts]), c, (r, 1.6 * r, r)) < 1.0
        spot &= lab[pts] == WM
        lab[pts[spot]] = WMH
