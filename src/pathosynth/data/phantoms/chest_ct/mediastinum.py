"""Where the mediastinal organs go: diaphragm domes, heart, central airways, esophagus and the
great vessels, as analytic shapes and tube pieces in the patient frame. Nothing is painted
here; the lungs are carved around these shapes and the cavity painter fills them in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .phantom import Phantom


def lay_out_mediastinum(ph: Phantom) -> None:
    """Set `dome`, `heart`, `main_bronchi`, `central_air`, `esophagus`, `great_vessels`,
    `hila`, `left_atrium` and `aorta`. Tube pieces are (p0, p1, r0, r1), airways with a wall
    thickness after the radii. The parts are drawn in this order from the phantom's RNG."""
    _domes_and_heart(ph)
    trachea = _airways(ph)
    _great_vessels(ph, trachea)


def _domes_and_heart(ph: Phantom) -> None:
    k, kz, Lz = ph.k, ph.kz, ph.Lz
    U = ph.uniform
    # diaphragm domes: z of the lung base, a paraboloid per side
    zR = U(0.12, 0.22) * Lz
    zL = zR - U(6, 18) * kz
    ph.dome = dict(zR=zR, zL=zL, xR=-U(35, 55) * k, xL=U(40, 60) * k, y=-U(0, 20) * k,
                   c=U(50, 70) * kz / (85 * k) ** 2)
    # heart: a rotated ellipsoid on the diaphragm, left of the midline
    A, B, C = U(48, 58) * k, U(33, 40) * k, U(0.18, 0.23) * Lz
    hz = max(zR, zL) + C * U(0.35, 0.55)
    y_back = ph.yv - ph.r_vb - U(12, 18) * k  # the heart's back lies in front of the esophagus
    ph.heart = dict(x=ph.x_mid + U(15, 25) * k, y=y_back - B * U(1.0, 1.15), z=hz, A=A, B=B, C=C,
                    psi=float(np.radians(U(28, 42))), tilt=U(0.15, 0.35), fat=U(2, 8) * k)


def _airways(ph: Phantom) -> tuple[float, float]:
    """Trachea, carina, main bronchi and the esophagus; returns the trachea's y and the carina's z."""
    k, kz, Lz = ph.k, ph.kz, ph.Lz
    U = ph.uniform
    xm, yv, r_vb = ph.x_mid, ph.yv, ph.r_vb
    r_es = U(6.5, 8.5) * k
    y_es = yv - r_vb - r_es - U(1, 3) * k
    r_tr = U(8, 11) * k
    y_tr = y_es - r_es - r_tr - U(0, 2) * k
    x_tr = xm - U(2, 6) * k
    z_car = U(0.6, 0.7) * Lz
    carina = np.array([x_tr, y_tr, z_car])
    rmb = carina + np.array([-U(26, 32) * k, U(2, 8) * k, -U(18, 26) * kz])
    lmb = carina + np.array([U(36, 44) * k, U(6, 12) * k, -U(26, 34) * kz])
    ph.main_bronchi = {"R": rmb, "L": lmb}
    ph.central_air = [
        (np.array([x_tr, y_tr, Lz + 10]), carina, r_tr, r_tr, U(1.5, 2.5) * k),
        (carina, rmb, 0.75 * r_tr, 0.7 * r_tr, 1.6 * k),
        (carina, lmb, 0.68 * r_tr, 0.62 * r_tr, 1.6 * k),
    ]
    ph.esophagus = (np.array([xm + 2 * k, y_es, Lz + 10]),
                    np.array([xm + 12 * k, y_es - 6 * k, -10.0]), r_es)
    return y_tr, z_car


def _great_vessels(ph: Phantom, trachea: tuple[float, float]) -> None:
    """Aorta and its arch, pulmonary arteries, veins; tubes run 10 mm past the scan ends so no
    end cap shows."""
    k, kz, Lz = ph.k, ph.kz, ph.Lz
    U = ph.uniform
    xm, yv, r_vb, h = ph.x_mid, ph.yv, ph.r_vb, ph.heart
    y_tr, z_car = trachea
    hz, C = h["z"], h["C"]
    ves = []
    r_aa, r_da = U(13, 17) * k, U(10.5, 13) * k
    x_aa, y_aa = xm - U(12, 20) * k, y_tr - U(20, 28) * k
    z_arch = min(U(0.78, 0.86) * Lz, Lz - 14 * kz)
    x_da, y_da = xm + r_vb * 0.55 + r_da, yv - r_vb * 0.35
    aa0 = np.array([x_aa + 6 * k, y_aa + 4 * k, hz + 0.3 * C])
    ves.append((aa0, np.array([x_aa, y_aa, z_arch]), r_aa, r_aa))
    h_arch = U(14, 22) * kz
    arch = []
    for phi in np.linspace(0, 1, 11):
        arch.append(np.array([x_aa + (x_da - x_aa) * phi + 6 * k * np.sin(np.pi * phi),
                              y_aa + (y_da - y_aa) * phi,
                              z_arch + h_arch * np.sin(np.pi * phi)]))
    for i in range(10):
        ves.append((arch[i], arch[i + 1], r_aa + (r_da - r_aa) * i / 10,
                    r_aa + (r_da - r_aa) * (i + 1) / 10))
    ves.append((arch[-1], np.array([x_da - 10 * k, y_da - 4 * k, -10.0]), r_da, r_da * 0.95))
    for i, dx, r in ((2, -6, 6.5), (4, 2, 4.5), (6, 14, 5.5)):  # arch branches
        a = arch[i]
        ves.append((a, np.array([a[0] + dx * k, a[1] + 4 * k, Lz + 10]), r * k, r * k * 0.9))
    # pulmonary trunk and arteries
    r_pa = U(12, 15) * k
    pa0 = np.array([h["x"] + 6 * k, h["y"] - 24 * k, hz + 0.45 * C])
    bif = np.array([xm + 10 * k, y_tr - 12 * k, z_car - 10 * kz])
    ves.append((pa0, bif, r_pa, r_pa))
    ph.hila = {"R": np.array([-U(40, 48) * k, y_tr + U(-6, 2) * k, z_car - 16 * kz]),
               "L": np.array([U(40, 48) * k, y_tr + U(-2, 6) * k, z_car - 8 * kz])}
    ves.append((bif, ph.hila["R"], 0.75 * r_pa, 0.65 * r_pa))
    lpa_mid = np.array([xm + 28 * k, y_tr - 2 * k, z_car - 2 * kz])
    ves.append((bif, lpa_mid, 0.72 * r_pa, 0.68 * r_pa))
    ves.append((lpa_mid, ph.hila["L"], 0.68 * r_pa, 0.6 * r_pa))
    ves += _veins(ph, x_aa, y_aa, r_aa, z_car)
    ph.left_atrium = np.array([h["x"] - 8 * k, h["y"] + h["B"] * 0.75, hz + 0.35 * C])
    ph.great_vessels = ves
    ph.aorta = (arch, r_aa, r_da)


def _veins(ph: Phantom, x_aa: float, y_aa: float, r_aa: float, z_car: float) -> list:
    """SVC, left brachiocephalic vein, azygos."""
    k, kz, Lz = ph.k, ph.kz, ph.Lz
    U = ph.uniform
    xm, yv, r_vb, h = ph.x_mid, ph.yv, ph.r_vb, ph.heart
    ves = []
    r_svc = U(8, 11) * k
    svc_x, svc_y = x_aa - r_aa - r_svc + 2 * k, y_aa + U(2, 8) * k
    ves.append((np.array([svc_x, svc_y, Lz + 10]),
                np.array([svc_x + 4 * k, svc_y - 2 * k, h["z"] + 0.55 * h["C"]]), r_svc, r_svc))
    z_bcv = Lz - U(6, 16) * kz
    ves.append((np.array([xm + 45 * k, y_aa - 12 * k, z_bcv + 8 * kz]),
                np.array([svc_x, svc_y, z_bcv]), 6 * k, 6.5 * k))
    az = np.array([xm - r_vb * 0.6, yv - r_vb * 0.9, z_car + 4 * kz])
    ves.append((np.array([az[0], az[1] + 2 * k, -10.0]), az, 3.5 * k, 3.5 * k))
    ves.append((az, np.array([svc_x, svc_y + 3 * k, z_car + 8 * kz]), 3.5 * k, 4 * k))
    return ves


def heart_field(ph: Phantom) -> tuple[np.ndarray, slice]:
    """Normalised ellipsoid radius^2 of the heart (float32) on the slab of slices around it,
    and that slab; the field is computed once and thresholded for heart, fat and envelope."""
    g, h = ph.grid, ph.heart
    reach = h["C"] + h["fat"] + 4 * ph.k
    z0 = int(np.searchsorted(g.Z, h["z"] - reach))
    z1 = int(np.searchsorted(g.Z, h["z"] + reach)) + 1
    dx = g.X[None, :] - np.float32(h["x"])
    dy = g.Y[:, None] - np.float32(h["y"])
    c, s_ = float(np.cos(h["psi"])), float(np.sin(h["psi"]))
    uu = c * dx - s_ * dy  # long axis: towards the left and anterior
    vv = s_ * dx + c * dy
    dz = g.Z[z0:z1] - np.float32(h["z"])
    e = (uu[None] + (h["tilt"] * dz)[:, None, None]) ** 2
    e *= 1.0 / (h["A"] ** 2)
    e += ((vv / h["B"]) ** 2)[None]
    e += ((dz / h["C"]) ** 2)[:, None, None]
    return e, slice(z0, z1)


def heart_level(heart: dict, extra: float) -> float:
    """Threshold on the heart field for the ellipsoid grown by about `extra` mm."""
    mean = (heart["A"] + heart["B"] + heart["C"]) / 3
    return (1 + extra / mean) ** 2
