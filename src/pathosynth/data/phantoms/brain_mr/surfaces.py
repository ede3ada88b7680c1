"""The brain's surfaces other than the convexity: tentorium, midline and Sylvian fissures, and the
gap between the temporal lobes over the skull base.

Each surface lowers ``d_brain`` (depth below the nearest brain surface, mm) where it comes
nearer than the convexity, and is worked out only on the subset of points it can reach. Points
are intracranial voxels in the brain frame: ``n = (nz, ny, nx)`` normalised by the brain's
semi-axes, ``bx`` the left-right coordinate in mm.
"""

from __future__ import annotations

import numpy as np

from pathosynth.data.phantoms.brain_mr.fields import F32, ellipsoid_r2
from pathosynth.data.phantoms.brain_mr.head import Head


def carve_fissures(head: Head, d_brain: np.ndarray, bx: np.ndarray, n):
    """Lower d_brain (in place) at every fissure; return the regions the fissures bound.

    Returns ``stem`` (the brainstem's normalised squared radius, < 1 inside, 1e3 above the low
    slices), the cerebellum and the falx-and-tentorium masks, ``d_mid`` (depth below the medial
    surface, mm) and the skull-base mask.
    """
    nz = n[0]
    lowz = np.nonzero(nz < 0.1)[0]
    stem, cerebellum, post, tentorium = _posterior_fossa(head, d_brain, n, lowz)
    d_mid, falx = _midline_fissure(head, bx, n, lowz, stem, cerebellum, post, tentorium)
    np.minimum(d_brain, d_mid, out=d_brain)
    _sylvian_fissures(head, d_brain, n)
    base = _skull_base_gap(d_brain, n, lowz, stem)
    return stem, cerebellum, falx, d_mid, base


def _posterior_fossa(head, d_brain, n, lowz):
    """Brainstem, and the tentorium over the cerebellum; returns stem, cerebellum, the posterior
    fossa points and the tentorium points."""
    nz, ny, nx = n
    stem = np.full(nz.size, 1e3, dtype=F32)
    ly, lx = ny[lowz], nx[lowz]
    stem[lowz] = ((ly - 0.08) * F32(1 / 0.17)) ** 2 + (lx * F32(1 / 0.2)) ** 2
    cerebellum = np.zeros(nz.size, dtype=bool)
    post = lowz[ly > 0.55 * np.abs(lx)]  # the posterior fossa and the tentorium above it
    del ly, lx
    tent_z = -0.18 - 0.32 * np.clip(ny[post], 0, 1) - 0.6 * nx[post] ** 2
    cerebellum[post] = (nz[post] < tent_z) & (stem[post] >= 1.0)
    d_tent = np.abs(nz[post] - tent_z) * F32(head.brain_axes[0]) - 0.8
    d_brain[post] = np.minimum(d_brain[post], d_tent)
    tentorium = post[d_tent < -0.45]
    return stem, cerebellum, post, tentorium


def _midline_fissure(head, bx, n, lowz, stem, cerebellum, post, tentorium):
    """Depth below the medial surface (mm) and the falx (with the tentorium) as a dura mask.

    The fissure runs shallower over the corpus callosum and diencephalon (the "bridge"), not at
    all through the brainstem and the vermis, and opens into the cisterns.
    """
    nz, ny, nx = n
    Bz, By, _ = head.brain_axes
    cc_top = 0.20 - 0.35 * ny * ny
    inward = np.minimum((0.40 - np.abs(ny + 0.02)) * F32(By), (cc_top - nz) * F32(Bz))
    del cc_top
    np.minimum(inward, (nz + 0.32) * F32(Bz), out=inward)
    np.maximum(inward, 0, out=inward)
    d_mid = np.abs(bx)
    falx = (d_mid < 0.45) & (inward <= 0)
    d_mid += 3.0 * inward - F32(0.9 + 0.8 * head.atrophy)
    del inward
    solid = lowz[(stem[lowz] < 1.0) & (nz[lowz] <= -0.32)]
    solid = np.concatenate([solid, post[cerebellum[post] & (ny[post] < 0.75)]])
    d_mid[solid] = 1e3
    falx[solid] = False
    cis = lowz[nz[lowz] < -0.32]
    cy = ny[cis]
    cis = cis[(cy < -0.05) & (cy > -0.32) & (np.abs(nx[cis]) < 0.07 + 0.2 * (cy + 0.32))]
    d_mid[cis] = -1.0
    falx[cis] = False
    falx[tentorium] = True
    return d_mid, falx


def _sylvian_fissures(head, d_brain, n):
    """Sylvian fissures and the insula around the basal ganglia."""
    nz, ny, nx = n
    _, By, Bx = head.brain_axes
    side_x = np.abs(nx)
    lat = np.nonzero((nz > -0.5) & (nz < -0.02) & (side_x > 0.44))[0]
    sy, sx, sz = ny[lat], side_x[lat], nz[lat]
    d_syl = np.abs(sy - (-0.08 + 0.45 * (sx - 0.55))) * F32(By) - (0.6 + 1.2 * head.atrophy)
    d_syl[~((sz < -0.08) & (sx > 0.5) & (sy > -0.45) & (sy < 0.25))] = 1e3
    # The insula bulges a little rather than running as a straight sheet.
    d_ins = np.abs(sx - 0.52 - 0.02 * np.cos(sy * F32(11.0) + sz * F32(7.0))) * F32(Bx) - 0.7
    d_ins[~((sz > -0.45) & (np.abs(sy + 0.05) < 0.28) & (sx < 0.62))] = 1e3
    d_brain[lat] = np.minimum(d_brain[lat], np.minimum(d_syl, d_ins))


def _skull_base_gap(d_brain, n, lowz, stem):
    """The basal cisterns and the skull base under the diencephalon; returns the base mask.

    Below the diencephalon the temporal lobes stand apart from the brainstem: between them lie
    the basal cisterns and, further forward, the skull base with the orbits and sinuses.
    """
    nz, ny, nx = n
    base = np.zeros(nz.size, dtype=bool)
    deep = lowz[nz[lowz] < -0.45]
    p = (nz[deep], ny[deep], nx[deep])
    low = -0.45 - p[0]
    gap = (stem[deep] >= 1.0) & ((p[1] * F32(1 / 0.24)) ** 2 + (p[2] / (0.15 + 0.7 * low)) ** 2
                                 < 1.0)
    d_brain[deep[gap]] = np.minimum(d_brain[deep[gap]], -1.0)
    in_base = ellipsoid_r2(p, (-1.0, -0.5, 0.0), (0.4, 0.6, 0.3)) < 1.0
    in_base |= ellipsoid_r2((p[0], p[1], np.abs(p[2])), (-0.98, -0.95, 0.42),
                            (0.33, 0.4, 0.32)) < 1
    base[deep[in_base]] = True
    d_brain[deep[in_base]] = -5.0
    return base
