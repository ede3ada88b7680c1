"""The lungs: the cavity minus the diaphragm, mediastinum and spine, domed at the apices, and
the interlobar fissures painted into the parenchyma."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .geometry import rasterize_tubes
from .mediastinum import heart_field, heart_level

if TYPE_CHECKING:
    from .phantom import Phantom


def carve_lungs(ph: Phantom) -> None:
    """Set the lung mask `lung`, the diaphragm surface `z_dia` with the mask `above` it, the
    heart field (`heart_e` on `heart_slab`) and the `paraspinal` gutters."""
    g, k, kz, hab = ph.grid, ph.k, ph.kz, ph.habitus
    U = ph.uniform
    X, Y, Z, s = g.X, g.Y, g.Z, ph.s
    # the diaphragm: lungs lie above two paraboloid domes; posterior recesses go deeper
    d = ph.dome
    yy2 = ((Y - d["y"]) ** 2)[:, None]
    zdR = d["zR"] - d["c"] * ((X[None, :] - d["xR"]) ** 2 + yy2)
    zdL = d["zL"] - d["c"] * ((X[None, :] - d["xL"]) ** 2 + yy2)
    z_dia = np.where(X[None, :] < ph.x_mid, zdR, zdL)
    z_dia -= 8 * kz * np.clip(Y[:, None] / (60 * k), 0, 1)
    ph.z_dia = z_dia.astype(np.float32)
    ph.above = Z[:, None, None] > ph.z_dia[None]
    lung = ph.cav_depth > U(1.0, 2.5) * k  # pleura and extrapleural fat
    lung &= ph.above
    lung &= ~ph.bone
    # mediastinal envelope: heart and pericardial fat, great vessels, airways, spine
    ph.heart_e, ph.heart_slab = heart_field(ph)
    lung[ph.heart_slab] &= ph.heart_e > heart_level(ph.heart, ph.heart["fat"] + 1.5 * k)
    env = np.zeros(g.shape, dtype=bool)
    ves = ph.great_vessels
    rasterize_tubes(g, [v[0] for v in ves], [v[1] for v in ves], [v[2] for v in ves],
                    [v[3] for v in ves], env, sigma=1, margin=U(3, 6) * k, hard=True)
    air = ph.central_air
    rasterize_tubes(g, [a[0] for a in air], [a[1] for a in air], [a[2] for a in air],
                    [a[3] for a in air], env, sigma=1, margin=2.5 * k, hard=True)
    e0, e1, r_es = ph.esophagus
    rasterize_tubes(g, e0, e1, r_es, r_es, env, sigma=1, margin=3 * k, hard=True)
    lung &= ~env
    del env
    # a central column between the lungs (anterior junction, retrosternal fat)
    w_col = (U(1.5, 3.5) + 5 * np.clip((s - 0.75) / 0.25, 0, 1)) * k
    ix = np.abs(X - ph.x_mid)
    front = Y < ph.yv
    for zi in range(g.shape[0]):
        cols = ix < w_col[zi]
        lung[zi][np.ix_(front, cols)] = False
    spine = (X[None, :] / (ph.r_vb + 4 * k)) ** 2 + \
        ((Y[:, None] - ph.yv) / (ph.r_vb + 3 * k)) ** 2 < 1
    spine |= (np.abs(X[None, :]) < ph.r_vb * 0.95) & (Y[:, None] > ph.yv)
    # the gutters beside the spine end at the rib heads and transverse processes
    para = (X[None, :] / (ph.tp + 10 * k)) ** 2 + \
        ((Y[:, None] - ph.canal_y - 20 * k) / (22 * k)) ** 2 < 1
    ph.paraspinal = para
    spine |= para
    lung &= ~spine[None]
    # lung apices: each lung ends in a dome over its posterolateral centre
    s_t, s_apex = U(0.45, 0.55), U(0.98, 1.05)
    frac = np.clip((s - s_t) / (s_apex - s_t), 0, 1)
    z0 = int(np.searchsorted(frac, 1e-6))
    for sgn in (-1, 1):
        xc, yc = sgn * 0.45 * hab.half_width, 0.1 * hab.half_depth_back
        e2 = ((X[None, :] - xc) / (0.52 * hab.half_width)) ** 2 + \
            ((Y[:, None] - yc) / (0.8 * hab.half_depth_front)) ** 2
        side = (X[None, :] < ph.x_mid) if sgn < 0 else (X[None, :] >= ph.x_mid)
        for zi in range(z0, g.shape[0]):
            lung[zi] &= ~side | (e2 < 1 - frac[zi])  # a paraboloid dome
    ph.lung = drop_crumbs(lung)


def drop_crumbs(lung: np.ndarray) -> np.ndarray:
    """Remove the crumbs of lung that the analytic shapes leave between organs: connected
    pieces smaller than 0.1% of the largest (pockets of a few ml stay, as lung tongues)."""
    box = ndimage.find_objects(lung.view(np.uint8))
    if not box:
        return lung
    sub = lung[box[0]]
    lab, n = ndimage.label(sub)
    if n <= 2:
        return lung
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    small = sizes < 0.001 * sizes.max()
    for i, piece in enumerate(ndimage.find_objects(lab), start=1):
        if small[i] and piece is not None:
            sub[piece][lab[piece] == i] = False
    return lung


def draw_fissures(ph: Phantom) -> None:
    """Oblique fissures in both lungs and the horizontal fissure on the right: faint sheets
    added to the painted parenchyma."""
    g, k, kz = ph.grid, ph.k, ph.kz
    U = ph.uniform
    X, Y, Z = g.X, g.Y, g.Z
    amp, sig = U(80, 160), 0.5
    zs = np.flatnonzero(ph.lung.any(axis=(1, 2)))
    for side, sgn in (("R", -1), ("L", 1)):
        hil = ph.hila[side]
        m = U(0.7, 1.1) * kz / k  # rises posteriorly
        curv = U(-0.004, 0.004) / k
        F = (hil[2] + m * (Y[:, None] - hil[1]) + curv * (X[None, :] - hil[0]) ** 2
             ).astype(np.float32)
        norm = float(np.sqrt(1 + m * m))
        zh = hil[2] + U(0, 15) * kz
        tilt = U(0.15, 0.3) * kz / k
        sidecols = (X < ph.x_mid) if sgn < 0 else (X >= ph.x_mid)
        for zi in zs:
            dist = (Z[zi] - F) / norm
            sheet = np.abs(dist) < 3 * sig
            if side == "R":
                dh = Z[zi] - zh - tilt * (Y - hil[1])
                hor = (np.abs(dh) < 3 * sig)[:, None] & (Z[zi] < F - 2)
                sheet |= hor
            sel = sheet & ph.lung[zi] & sidecols[None, :]
            if not sel.any():
                continue
            val = np.exp(-(dist * dist) / (2 * sig * sig))
            if side == "R":
                val = np.maximum(val, 0.5 * np.exp(-(dh * dh) / (2 * sig * sig))[:, None] * hor)
            ph.img[zi][sel] += amp * val[sel]
