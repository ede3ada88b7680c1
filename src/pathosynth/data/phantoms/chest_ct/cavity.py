"""Paint what fills the chest cavity: mediastinal fat, the upper abdomen under the diaphragm,
the heart, lung parenchyma with its fissures, blood vessels, esophagus and airways."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .acquisition import AIR_HU
from .geometry import rasterize_tubes, smooth_noise, unit
from .lungs import draw_fissures
from .mediastinum import heart_level

if TYPE_CHECKING:
    from .phantom import Phantom


def blend(img: np.ndarray, occ: np.ndarray, value: float, box,
          within: np.ndarray | None = None) -> None:
    """img <- img + occ * (value - img) inside box; occ is cleared there afterwards, so one
    scratch volume serves every tube set."""
    if box is None:
        return
    o = occ[box]
    if within is not None:
        o *= within[box]
    im = img[box]
    im += o * (value - im)
    o[...] = 0


def paint_cavity(ph: Phantom) -> None:
    cavity = ph.cav_depth > 0
    cavity &= ~ph.bone
    del ph.cav_depth  # a full float volume: free it before the texture and tube volumes
    ph.img[cavity] = ph.fat_hu + 8  # mediastinal and extrapleural fat
    ph.img[cavity & ph.paraspinal[None]] = ph.muscle_hu
    _upper_abdomen(ph, cavity)
    _heart(ph, cavity)
    _parenchyma(ph)
    draw_fissures(ph)
    _tubes(ph, cavity)


def _upper_abdomen(ph: Phantom, cavity: np.ndarray) -> None:
    """Below the diaphragm: liver on the right, spleen and stomach on the left; then the
    diaphragm muscle itself."""
    g, k, kz = ph.grid, ph.k, ph.kz
    U = ph.uniform
    X, Y, Z = g.X, g.Y, g.Z
    z1 = int(np.searchsorted(Z, float(ph.z_dia.max()) + 4 * k)) + 1
    zs = slice(0, z1)
    sub, Zs = ph.img[zs], Z[zs]
    below = cavity[zs] & ~ph.above[zs]
    sub[below] = ph.fat_hu + 20
    liver_edge = ph.x_mid + 15 * k - 0.45 * Y  # the left lobe crosses the midline anteriorly
    liver = below & (X[None, :] < liver_edge[:, None])[None]
    sub[liver] = U(50, 65)
    left = below & ~liver
    sub[left & ((Y[:, None] > 5 * k) & (X[None, :] > 50 * k))[None]] = U(40, 50)  # spleen
    st = (45 * k, -25 * k, ph.dome["zL"] - 25 * kz)
    e_st = (((X - st[0]) / (40 * k)) ** 2)[None, None, :] + \
        (((Y - st[1]) / (35 * k)) ** 2)[None, :, None] + \
        (((Zs - st[2]) / (30 * kz)) ** 2)[:, None, None]
    stomach = left & (e_st < 1)
    sub[stomach] = 38
    inner = stomach & (e_st < 0.8)
    sub[inner] = 12
    level = st[1] - U(0, 25) * k  # air-fluid level: a coronal plane when supine
    sub[inner & (Y < level)[None, :, None]] = AIR_HU + 15
    del below, liver, left, stomach, inner, e_st
    dia = cavity[zs] & ph.above[zs] & ~ph.lung[zs]
    dia &= Zs[:, None, None] < ph.z_dia[None] + 4 * k
    sub[dia] = ph.muscle_hu
    del ph.above


def _heart(ph: Phantom, cavity: np.ndarray) -> None:
    """The heart in its pericardial fat."""
    h, he, hs = ph.heart, ph.heart_e, ph.heart_slab
    sub, cav_h = ph.img[hs], cavity[hs]
    sub[(he < heart_level(h, h["fat"])) & cav_h] = ph.fat_hu + 5  # epicardial fat
    sub[(he < 1) & cav_h] = 40 + ph.normal(3)
    del ph.heart_e


def _parenchyma(ph: Phantom) -> None:
    """Lung parenchyma: denser in the dependent (posterior) lung, with a smooth texture."""
    g, k = ph.grid, ph.k
    U = ph.uniform
    hab = ph.habitus
    base, grad = U(-880, -840), U(40, 80)
    yn = np.clip((g.Y + 0.8 * hab.half_depth_front)
                 / (0.8 * hab.half_depth_front + 0.8 * hab.half_depth_back), 0, 1)
    tex = smooth_noise(ph.rng, g.shape, ph.spacing_zyx, 7 * max(k, 0.5))
    tex *= U(8, 16)
    tex += (base + grad * yn ** 2)[None, :, None]
    np.copyto(ph.img, tex, where=ph.lung)


def _tubes(ph: Phantom, cavity: np.ndarray) -> None:
    """Blood in the great vessels and pulmonary trees, aortic calcification, the esophagus and
    the airways, drawn with partial volume through one scratch volume."""
    g, k = ph.grid, ph.k
    U = ph.uniform
    img, psf = ph.img, ph.psf_sigma
    occ = np.zeros(g.shape, dtype=np.float32)
    # blood: great vessels and the pulmonary trees, about +40 HU
    ves = ph.great_vessels
    lv = ph.lung_vessels
    box = rasterize_tubes(g, np.concatenate([[v[0] for v in ves], lv[0]]),
                          np.concatenate([[v[1] for v in ves], lv[1]]),
                          np.concatenate([[v[2] for v in ves], lv[2]]),
                          np.concatenate([[v[3] for v in ves], lv[3]]), occ, sigma=psf)
    blend(img, occ, 40 + ph.normal(3), box, cavity)
    # aortic wall calcification in some patients
    if ph.rng.uniform() < 0.4:
        arch, r_aa, r_da = ph.aorta
        pts = []
        for _ in range(int(ph.rng.integers(2, 7))):
            i = int(ph.rng.integers(0, len(arch)))
            dirn = unit(ph.rng.normal(0, 1, 3) * np.array([1, 1, 0.3]))
            pts.append(arch[i] + dirn * (r_aa + (r_da - r_aa) * i / 10) * 0.95)
        pts = np.array(pts)
        box = rasterize_tubes(g, pts, pts + ph.rng.normal(0, 1.5 * k, pts.shape), 1.2 * k,
                              1.0 * k, occ, sigma=psf)
        blend(img, occ, U(300, 700), box)
    # esophagus: a muscular tube, sometimes with a little air
    e0, e1, r_es = ph.esophagus
    blend(img, occ, 35, rasterize_tubes(g, e0, e1, r_es, r_es, occ, sigma=psf))
    if ph.rng.uniform() < 0.5:
        box = rasterize_tubes(g, e0, e1, 2 * k, 2 * k, occ, sigma=psf)
        blend(img, occ, AIR_HU, box)
    # airways: walls, then the lumen
    ca, la = ph.central_air, ph.lung_airways
    p0, p1, r0, r1, wall = (np.concatenate([[a[i] for a in ca], la[i]]) for i in range(5))
    blend(img, occ, U(20, 60), rasterize_tubes(g, p0, p1, r0, r1, occ, sigma=psf))
    blend(img, occ, AIR_HU + 20, rasterize_tubes(g, p0, p1, r0 - wall, r1 - wall, occ,
                                                  sigma=psf))

