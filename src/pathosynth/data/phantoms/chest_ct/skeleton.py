"""Bones: the thoracic spine, ribs with their cartilages, scapulae, sternum and clavicles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .body import cavity_radius_at
from .geometry import rasterize_tubes

if TYPE_CHECKING:
    from .phantom import Phantom


def draw_skeleton(ph: Phantom) -> None:
    """Paint the bones and keep their mask (`bone`) and the spine's position for later organs."""
    bone = np.zeros(ph.grid.shape, dtype=bool)
    marrow = ph.uniform(140, 280)
    cortex = ph.uniform(650, 950)
    _spine(ph, bone, marrow, cortex)
    _ribs_and_scapulae(ph, bone, marrow, cortex)
    _sternum_and_clavicles(ph, bone, marrow, cortex)
    ph.bone = bone


def _spine(ph: Phantom, bone: np.ndarray, marrow: float, cortex: float) -> None:
    """Vertebrae, discs and the spinal canal; the vertebral body bulges into the posterior
    cavity. Sets the midline `x_mid` and the spine landmarks used by the lungs."""
    g, k, kz, hab = ph.grid, ph.k, ph.kz, ph.habitus
    U = ph.uniform
    X, Y, Z = g.X, g.Y, g.Z
    zmid = int(np.argmin(np.abs(ph.s - 0.5)))
    ph.r_vb = r_vb = U(15, 19) * k
    R_post = cavity_radius_at(ph, np.pi / 2, zmid)
    ph.yv = yv = R_post - r_vb * 0.85
    ph.x_mid = U(0, 6) * k
    canal_y = yv + r_vb * 0.95 + 8 * k
    body_post = float(ph.gb[zmid]) * float(hab.body_radius(np.array(0.0), np.array(1.0)))
    fat_post = float(hab.fat_thickness(np.array(0.0), np.array(1.0)))
    spin_end = max(canal_y + 16 * k, min(ph.y_flat, body_post) - fat_post - 6 * k)
    # work in the spine's in-plane box only
    iy0 = max(0, int((yv - r_vb - 2 * k - g.origin[1]) / g.spacing[1]))
    iy1 = min(g.shape[1], int((spin_end + 2 * k - g.origin[1]) / g.spacing[1]) + 1)
    ix0 = max(0, int((-34 * k - g.origin[0]) / g.spacing[0]))
    ix1 = min(g.shape[2], int((34 * k - g.origin[0]) / g.spacing[0]) + 1)
    dx = X[ix0:ix1][None, :]
    yy = Y[iy0:iy1][:, None]
    e_vb = (dx / (1.08 * r_vb)) ** 2 + ((yy - yv) / r_vb) ** 2
    vb = e_vb < 1
    vb_rim = vb & (e_vb > (1 - 2.2 * k / r_vb) ** 2)
    e_canal = np.hypot(dx, yy - canal_y) / (7 * k)
    canal = e_canal < 1
    arch = (e_canal >= 1) & (e_canal < 1.65) & (yy > canal_y - 4 * k)

    def bar(x0, y0, x1, y1, half):
        """2D capsule between two points (posterior elements)."""
        vx, vy = x1 - x0, y1 - y0
        t = np.clip(((dx - x0) * vx + (yy - y0) * vy) / (vx * vx + vy * vy), 0, 1)
        return np.hypot(dx - x0 - t * vx, yy - y0 - t * vy) < half

    spinous = bar(0, canal_y + 9 * k, 0, spin_end, 2.8 * k)
    ph.tp = tp = U(22, 28) * k
    transverse = bar(-8 * k, canal_y, -tp, canal_y + 9 * k, 3.8 * k) | \
        bar(8 * k, canal_y, tp, canal_y + 9 * k, 3.8 * k)
    period = U(23, 27) * kz
    z_vert = Z - U(0, period)
    z_vert = z_vert - np.floor(z_vert / period) * period  # mm above the lower end plate
    disc = z_vert < 5 * kz
    plate = z_vert < 6.5 * kz
    post_el = (z_vert > 4 * kz) & (z_vert < 0.75 * period)
    sub = ph.img[:, iy0:iy1, ix0:ix1]
    bsub = bone[:, iy0:iy1, ix0:ix1]
    disc_hu = 80 + ph.normal(5)
    for zi in range(g.shape[0]):
        sl, bl = sub[zi], bsub[zi]
        if disc[zi]:
            sl[vb] = disc_hu
        else:
            sl[vb] = marrow
            sl[vb_rim] = cortex * 0.85
            if plate[zi]:
                sl[vb] = cortex * 0.75
        bl |= vb
        if post_el[zi]:
            pe = arch | spinous | transverse
            sl[pe] = cortex * 0.8
            bl |= pe
        sl[canal] = 25.0  # cord and CSF
    ph.canal_y = canal_y


def _ribs_and_scapulae(ph: Phantom, bone: np.ndarray, marrow: float, cortex: float) -> None:
    """Ribs slope down from the spine to the sternum; scapulae lie over the upper posterior
    ribs. Both live in a ring of pixels just outside the cavity, so the work runs on those
    pixels only, as (slice, ring pixel) arrays."""
    g, k, kz = ph.grid, ph.k, ph.kz
    U = ph.uniform
    X, Z = g.X, g.Z
    nz = g.shape[0]
    a_r = U(3.0, 4.0) * k
    rho_c = 1.2 * k + a_r
    rho_lo, rho_hi = rho_c - a_r - 0.5, rho_c + a_r + 16 * k
    gcgb = ph.gc * ph.gb
    R2, T2 = ph.R2d, ph.T2d
    near = (ph.r2 - (float(gcgb.max()) * R2 - float(ph.gc.min()) * T2) <= rho_hi) & \
           (ph.r2 - (float(gcgb.min()) * R2 - float(ph.gc.max()) * T2) >= rho_lo)
    ring = np.flatnonzero(near)
    # rho: distance outside the cavity surface, per slice and ring pixel
    rho = ph.r2.ravel()[ring][None] - (gcgb[:, None] * R2.ravel()[ring][None]
                                       - ph.gc[:, None] * T2.ravel()[ring][None])
    img2 = ph.img.reshape(nz, -1)
    bone2 = bone.reshape(nz, -1)
    sub = img2[:, ring]
    bsub = np.zeros(sub.shape, dtype=bool)
    sin_r = ph.sin_t.ravel()[ring]
    cos_r = ph.cos_t.ravel()[ring]
    x_r = np.broadcast_to(X[None, :], ph.r2.shape).ravel()[ring]
    pitch = U(22, 26) * kz
    drop = U(2.8, 3.8) * pitch
    phi = np.arccos(np.clip(sin_r, -1, 1)) / np.pi  # 0 at the spine, 1 at the sternum
    h = Z[:, None] + (drop * phi ** 1.6)[None]
    h -= U(0, pitch)
    h /= pitch
    h -= np.rint(h)  # signed fraction of a pitch from the nearest rib's centre line
    h *= pitch
    b_r = ((5.0 + 2.5 * np.maximum(0, -sin_r)) * kz).astype(np.float32)
    e_r = (h / b_r[None]) ** 2 + ((rho - rho_c) / a_r) ** 2
    medial_post = (np.abs(x_r) < ph.r_vb + 8 * k) & (sin_r > 0)
    ribs = (e_r < 1) & ~medial_post[None]
    cartilage = ((np.abs(x_r) < U(28, 42) * k) & (sin_r < 0))[None]
    sub[ribs & ~cartilage] = marrow
    sub[ribs & ~cartilage & (e_r > 0.45)] = cortex
    sub[ribs & cartilage] = U(90, 160)
    bsub |= ribs
    # scapulae: thin curved plates in the posterolateral wall of the upper chest
    ang = np.degrees(np.arctan2(sin_r, np.abs(cos_r)))  # 90 = posterior, 0 = lateral
    lo_a, hi_a = U(28, 36), U(62, 72)
    thick = (np.where(ang < lo_a + 8, 5.5, 2.5) * k).astype(np.float32)
    # between the ribs and the subcutaneous fat, a little nearer the ribs
    room = ph.W2d.ravel()[ring] - (rho_c + a_r)
    sc0 = rho_c + a_r + np.minimum(0.35 * (room - thick), 16 * k - thick)
    fits = (room > thick + 3 * k) & (ang > lo_a) & (ang < hi_a)
    scap = fits[None] & (rho > sc0[None]) & (rho < (sc0 + thick)[None])
    scap &= (ph.s > U(0.4, 0.5))[:, None]
    sub[scap] = cortex * 0.7
    bsub |= scap
    img2[:, ring] = sub
    bone2[:, ring] = bsub


def _sternum_and_clavicles(ph: Phantom, bone: np.ndarray, marrow: float, cortex: float) -> None:
    g, k, kz, s = ph.grid, ph.k, ph.kz, ph.s
    U = ph.uniform
    X, Y = g.X, g.Y
    nz = g.shape[0]
    img = ph.img
    # sternum: anterior midline, just outside the cavity
    R_ant = np.array([cavity_radius_at(ph, -np.pi / 2, zi) for zi in range(nz)])
    y_st = -R_ant - 5 * k
    half_w = np.where(s > 0.82, 24 * k, 13 * k) * U(0.85, 1.15)  # the manubrium is wider
    inz = (s > 0.12) & (s < 0.97)
    for zi in np.flatnonzero(inz):
        iy0 = max(0, int((y_st[zi] - 7 * k - g.origin[1]) / g.spacing[1]))
        iy1 = min(g.shape[1], int((y_st[zi] + 7 * k - g.origin[1]) / g.spacing[1]) + 2)
        e_st = (X[None, :] / half_w[zi]) ** 2 + ((Y[iy0:iy1, None] - y_st[zi]) / (5.5 * k)) ** 2
        sl = img[zi, iy0:iy1]
        sl[e_st < 1] = cortex
        sl[e_st < 0.5] = marrow
        bone[zi, iy0:iy1] |= e_st < 1
    # clavicles: only scans that reach the top of the chest show them
    if s[-1] > 0.88:
        p0, p1 = [], []
        for sgn in (-1, 1):
            zc = ph.Lz * U(0.9, 0.97)
            p0.append([sgn * 18 * k, y_st[-1] - 3 * k, zc])
            p1.append([sgn * 95 * k, y_st[-1] + 10 * k, zc + 12 * kz])
        clav = np.zeros(g.shape, dtype=np.float32)
        rasterize_tubes(g, p0, p1, 6.5 * k, 5.5 * k, clav, sigma=ph.psf_sigma)
        img += clav * (cortex * 0.8 - img)
        bone |= clav > 0.5
