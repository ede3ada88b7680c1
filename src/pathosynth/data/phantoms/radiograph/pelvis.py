"""The hemipelvis around a left acetabulum: iliac plate, pubo-ischial ring, acetabular walls,
roof and teardrop, as extra attenuation over soft tissue."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from pathosynth.data.phantoms.radiograph.femur import Femur
from pathosynth.data.phantoms.radiograph.patient import Patient
from pathosynth.data.phantoms.radiograph.shapes import (
    MU_CORTEX,
    MU_PLATE,
    MU_TRABECULAR,
    ellipse_q,
    sigmoid,
    smooth_union,
)


def pelvis_attenuation(X: np.ndarray, Y: np.ndarray, p: Patient, g: Femur, px: float, rng,
                       texture: np.ndarray) -> np.ndarray:
    """Extra attenuation (line integral) of the hemipelvis around a left acetabulum. The parts
    draw from `rng` in this order."""
    plate_att, cup = _ilium(X, Y, p, g, px, rng, texture)
    ring_att = _pubo_ischial_ring(X, Y, p, g, rng, texture)
    att = np.maximum(plate_att, ring_att) + 0.35 * np.minimum(plate_att, ring_att)
    return _add_acetabular_details(att, X, Y, p, g, px, cup)


def _ilium(X: np.ndarray, Y: np.ndarray, p: Patient, g: Femur, px: float, rng,
           texture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plate's attenuation, and the cup (inside the joint space's outer radius)."""
    H, R = g.H, g.R
    Rc = R + p.joint_space
    ce = math.radians(p.ce_angle)
    bmd_f = 0.6 + 0.5 * p.bmd
    rr = np.hypot(X - H[0], Y - H[1])
    # ilium, acetabular body and quadrilateral plate: a plate with rounded, corticated edges,
    # bounded laterally by a border rising from the lateral acetabular edge and medially by the
    # iliopectineal / ilioischial line; the cup is open above the head (the joint space)
    E = H + Rc * np.array([math.sin(ce), -math.cos(ce)])
    dlt = math.radians(rng.uniform(10.0, 28.0))
    plate = (X - E[0]) * math.cos(dlt) + (Y - E[1]) * math.sin(dlt) < 0.0
    ischium = H + np.array([-R - rng.uniform(16.0, 26.0), -rng.uniform(0.0, 0.5) * R])
    dm = math.radians(rng.uniform(20.0, 38.0))
    rise = np.clip(ischium[1] - Y, 0.0, None)
    medial_x = ischium[0] - rise * math.tan(dm) * np.clip(rise / 40.0, 0.0, 1.0)
    plate &= X > medial_x
    cup = rr < Rc
    # distances to the plate's outer borders only: the roof over the cup is dense to its edge, and
    # below the acetabulum the plate fades into the pubic and ischial rami
    inside = ndimage.distance_transform_edt(plate) * px
    plate &= ~cup
    fade = sigmoid((H[1] + 0.5 * R - Y) / (0.12 * R))
    fade = fade * (1.0 - sigmoid((X - H[0] + 0.3 * R) / (0.1 * R)) * sigmoid((Y - H[1]) / (0.1 * R)))
    thick = rng.uniform(18.0, 26.0) * bmd_f * (0.45 + 0.55 * np.exp(-np.clip(H[1] - Rc - Y, 0, None) / 45.0))
    edge = np.clip(inside / 7.0, 0.0, 1.0)
    plate_att = MU_PLATE * thick * np.sqrt(1.0 - (1.0 - edge) ** 2)
    plate_att = plate_att * (1.0 + 0.06 * texture)
    plate_att = (plate_att + MU_CORTEX * (1.0 + 1.5 * p.bmd) * np.exp(-inside / 1.0)) * plate * fade
    return plate_att, cup


def _pubo_ischial_ring(X: np.ndarray, Y: np.ndarray, p: Patient, g: Femur, rng, texture: np.ndarray) -> np.ndarray:
    R = g.R
    H = g.H
    bmd_f = 0.6 + 0.5 * p.bmd
    # pubo-ischial ring around the obturator foramen, round in cross-section: thick superior ramus
    # and ischium, a thin inferior ramus; the superior ramus runs on medially out of the crop
    cf = H + R * np.array([rng.uniform(-2.0, -1.6), rng.uniform(2.0, 2.35)])
    tilt = math.radians(rng.uniform(-25.0, 5.0))
    axis = np.array([math.sin(tilt), math.cos(tilt)])               # long axis, nearly vertical
    af, bf = R * rng.uniform(0.9, 1.1), R * rng.uniform(0.6, 0.78)
    fx, fy = X - cf[0], Y - cf[1]
    u = fx * axis[0] + fy * axis[1]
    v = -fx * axis[1] + fy * axis[0]
    q = np.sqrt((u / af) ** 2 + (v / bf) ** 2) + 1e-9
    theta = np.arctan2(v, u)                                        # 0 down the long axis
    rho = 1.0 / np.sqrt((np.cos(theta) / af) ** 2 + (np.sin(theta) / bf) ** 2)
    radial = (q - 1.0) * rho                                         # mm outside the foramen
    lateral_side = np.cos(theta - math.pi / 2 + tilt)                # +1 towards the acetabulum
    wob = rng.normal(0.0, 0.03, size=4)
    band = R * (0.36 + 0.09 * lateral_side - 0.12 * np.cos(theta) + wob[0] * np.cos(2 * theta)
                + wob[1] * np.sin(2 * theta) + wob[2] * np.cos(3 * theta) + wob[3] * np.sin(3 * theta))
    # the ischial tuberosity thickens the ring below and lateral to the foramen
    theta_tub = 0.45 * (math.pi / 2 - tilt)
    offset = (theta - theta_tub + math.pi) % (2 * math.pi) - math.pi
    band = band + R * rng.uniform(0.12, 0.22) * np.exp(-(offset / 0.55) ** 2)
    centre = radial - band
    tc_r = 1.0 + 1.2 * p.bmd
    f_ring = 1.0 - (centre / band) ** 2
    fi_ring = 1.0 - (centre / (band - tc_r)) ** 2
    a = cf + R * np.array([0.0, -1.0 - 0.45]) - R * np.array([0.3, 0.0])
    b = a + R * np.array([-3.5, rng.uniform(0.2, 0.7)])
    rs = 0.42 * R
    t = np.clip(((X - a[0]) * (b - a)[0] + (Y - a[1]) * (b - a)[1]) / np.dot(b - a, b - a), 0.0, 1.0)
    dist = np.hypot(X - a[0] - t * (b - a)[0], Y - a[1] - t * (b - a)[1])
    f_sup, fi_sup = 1.0 - (dist / rs) ** 2, 1.0 - (dist / (rs - tc_r)) ** 2
    h_out = smooth_union([f_ring, f_sup], [band, rs], 4.0)
    h_in = np.minimum(smooth_union([fi_ring, fi_sup], [band - tc_r, rs - tc_r], 4.0), h_out)
    ring_att = MU_CORTEX * 2 * (h_out - h_in) + 0.8 * MU_TRABECULAR * bmd_f * 2 * h_in * (1.0 + 0.1 * texture)
    return ring_att


def _add_acetabular_details(att: np.ndarray, X: np.ndarray, Y: np.ndarray, p: Patient, g: Femur, px: float,
                            cup: np.ndarray) -> np.ndarray:
    """`att` with the acetabular walls over the head, the sclerotic roof and the teardrop."""
    H, R = g.H, g.R
    Rc = R + p.joint_space
    ce = math.radians(p.ce_angle)
    bmd_f = 0.6 + 0.5 * p.bmd
    dx, dy = X - H[0], Y - H[1]
    rr = np.hypot(dx, dy)
    psi = np.arctan2(dx, -dy)                                       # 0 up, positive lateral
    # the acetabular walls project over the head: their rims cross it obliquely
    pw = (X - (H[0] - 0.45 * R)) ** 2 + (Y - (H[1] + 0.35 * R)) ** 2 < (0.95 * Rc) ** 2
    aw = (X - (H[0] - 0.85 * R)) ** 2 + (Y - (H[1] - 0.1 * R)) ** 2 < (0.75 * Rc) ** 2
    for wall, amount in ((pw & cup, 0.5), (aw & cup, 0.35)):
        din = ndimage.distance_transform_edt(wall) * px
        att = att + amount * (MU_PLATE * 20.0 * bmd_f * (1.0 - np.exp(-din / 4.0))
                              + MU_CORTEX * 1.2 * np.exp(-din / 1.0) * wall)
    # the sclerotic roof (sourcil) over the head
    roof = np.exp(-((rr - Rc - 1.8) / 1.6) ** 2) * sigmoid((ce - psi) / 0.06) \
        * sigmoid((psi + 1.1) / 0.15)
    att = att + MU_CORTEX * (3.0 + 3.0 * p.bmd) * roof
    # the teardrop, medial to the cup
    T = H + np.array([-Rc - 5.0, 0.35 * R])
    q = ellipse_q(X, Y, T, np.array([0.0, 1.0]), 10.0, 4.5)
    tear = np.exp(-((np.sqrt(q) - 1.0) / 0.18) ** 2) * (Y > T[1] - 4.0)
    att = att + MU_CORTEX * 2.0 * tear
    return att
