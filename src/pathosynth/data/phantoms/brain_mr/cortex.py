"""The folded cortex: white matter under a grey-matter ribbon cut by CSF-filled sulci.

Sulci are the zero sheets of a noise field stretched along the radius, so they run roughly
perpendicular to the brain surface; in the cerebellum they become thin folia parallel to it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pathosynth.data.phantoms.brain_mr.fields import F32
from pathosynth.data.phantoms.brain_mr.head import Head
from pathosynth.data.phantoms.brain_mr.tissues import CSF, GM, WM


def paint_cortex(rng, head: Head, lab, d_brain, d_env, d_mid, cerebellum, ic, bx, field_50mm):
    """Label the intracranial voxels CSF, white matter and cortex; return the brain mask.

    ``lab`` and the other arrays are over the intracranial voxels ``ic``; ``d_env`` and
    ``d_mid`` are the depths below the convexity and below the medial surface.
    """
    brain = d_brain > 0
    lab[:] = CSF
    lab[brain] = WM
    band = np.nonzero(brain & (d_brain < head.sulcus_depth * 1.3 + head.gm_thickness))[0]
    db = d_brain[band]
    cb = cerebellum[band]
    # Nearest surface: the interhemispheric fissure or the convexity. Sulci of the two patterns
    # close a little before the seam between them (grey matter, no CSF) rather than meeting in
    # a spurious sheet.
    m_band = d_mid[band]
    e_band = d_env[band]
    medial = m_band < e_band
    seam = np.abs(m_band - e_band) < 2.0
    del m_band
    to_sheet = sulcal_distance(rng, head, ic[band], np.maximum(e_band, 0), db, cb, medial,
                               bx[band])
    sulcus_depth = head.sulcus_depth * (1.0 + 0.12 * field_50mm[ic[band]])
    sulcus_depth[cb] *= 0.6
    # Sulci open wider near the surface, and more so in an atrophic brain.
    # The width varies from sulcus to sulcus with a smooth field.
    open_mm = np.clip(1.0 - db / sulcus_depth, 0, 1) * (1.0 + 0.45 * field_50mm[ic[band]])
    half_cleft = 0.5 + (0.45 + 0.8 * head.atrophy) * open_mm
    half_cleft[cb] = 0.3
    thick = np.full(db.size, head.gm_thickness, dtype=F32)
    thick[cb] = 0.7 * head.gm_thickness
    band_lab = np.full(db.size, WM, dtype=np.uint8)
    band_lab[(db < thick) | ((db < sulcus_depth + thick) & (to_sheet < half_cleft + thick))] = GM
    # Cerebellar folia: CSF only between the outer leaves, grey matter deeper down.
    open_csf = (db < sulcus_depth) & (to_sheet < half_cleft)
    open_csf[cb] &= db[cb] < 0.35 * sulcus_depth[cb]
    open_csf[seam] = False
    band_lab[open_csf] = CSF
    lab[band] = band_lab
    return brain


def sulcal_distance(rng, head: Head, pts, d_env, d_brain, cerebellar, medial, bx):
    """Approximate distance (mm) from each cortical-band point to the nearest sulcal sheet.

    The sheets are the zero set of a smooth noise field G, sampled at the point's projection on
    its nearest surface pushed back along the surface normal by 0.65 x its depth below that
    surface, so the sheets run roughly perpendicular to the surface (stretched 1.5x). On the
    convexity the projection is the direction from the head centre and the depth is d_env; on
    the medial surface the projection is the point's (z, y) with x = +-1.1 and the depth |x|.
    G / |grad G| is the first-order distance to the zero set, so sulci keep an even
    width instead of swelling where the field is flat. In the cerebellum the sheets are folia
    parallel to the surface instead.
    """
    m = 80
    sigma = head.gyrus_sigma
    grid = ndimage.gaussian_filter(rng.standard_normal((m, m, m), dtype=F32), sigma, mode="wrap")
    gz, gy, gx = np.gradient(grid)
    norm = np.sqrt(gz * gz + gy * gy + gx * gx)
    norm += F32(0.15) * norm.mean()
    grid /= norm
    del gz, gy, gx, norm
    span = 2.5  # the grid covers directions (unit vector * radius) in [-span/2, span/2]
    b_mean = float(np.mean(head.brain_axes))
    cell_mm = span * b_mean / (m - 1)
    radius = 1.0 - d_env * F32(0.65 / b_mean)
    coords = np.empty((3, d_env.size), dtype=F32)
    for i, q in enumerate(head.direction(pts)):
        coords[i] = q * radius
    if medial.any():
        mi = np.nonzero(medial)[0]
        coords[0, mi] = head.u[0][pts[mi]] * F32(1.0 / b_mean)
        coords[1, mi] = head.u[1][pts[mi]] * F32(1.0 / b_mean)
        coords[2, mi] = np.where(bx[mi] > 0, F32(1.1), F32(-1.1)) \
            * (1.0 - np.abs(bx[mi]) * F32(0.65 / b_mean))
    coords *= F32((m - 1) / span)
    coords += F32((m - 1) / 2)
    del radius
    dist = ndimage.map_coordinates(grid, coords, order=1, mode="grid-wrap")
    del coords
    if cerebellar.any():
        # Cerebellar folia: thin leaves parallel to the surface, every ~5 mm, wavy with the noise.
        ci = np.nonzero(cerebellar)[0]
        wave = F32(head.folium_mm / (2 * np.pi))
        phase = d_brain[ci] / wave + F32(3.5) * dist[ci]
        dist[ci] = np.cos(phase) * (wave / F32(cell_mm))
    np.abs(dist, out=dist)
    dist *= F32(cell_mm)
    return dist
