"""Soft tissue over the hip: the body and thigh with their fat layer, fat planes and bowel gas."""
from __future__ import annotations

import math

import numpy as np

from pathosynth.data.phantoms.radiograph.femur import Femur
from pathosynth.data.phantoms.radiograph.patient import Patient
from pathosynth.data.phantoms.radiograph.shapes import ellipse_q, sigmoid


def fat_stripes(X, Y, g: Femur, rng) -> np.ndarray:
    """Fat planes between the hip muscles (gluteal, iliopsoas): thin lucent arcs, in attenuation.

    Some cross the femoral neck, where they look like a hairline fracture: they are drawn alike on
    normal and fractured hips.
    """
    out = np.zeros_like(X)
    for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.25, 0.35, 0.25, 0.15]))):
        p0 = g.H + g.e_s * rng.uniform(0.3, 2.4) * g.R + g.e_w * rng.uniform(-1.0, 1.0) * g.R
        ang = rng.uniform(0.0, math.pi)
        tang = np.array([math.cos(ang), math.sin(ang)])
        rho = rng.uniform(40.0, 220.0)
        centre = p0 + rho * np.array([-tang[1], tang[0]]) * rng.choice([-1.0, 1.0])
        dist = np.hypot(X - centre[0], Y - centre[1]) - rho
        along = (X - p0[0]) * tang[0] + (Y - p0[1]) * tang[1]
        half = rng.uniform(15.0, 60.0)
        window = sigmoid((half - np.abs(along)) / 4.0)
        out += rng.uniform(0.01, 0.05) * np.exp(-((dist / rng.uniform(0.6, 1.8)) ** 2)) * window
    return out


def bowel_gas(X, Y, g: Femur, rng) -> np.ndarray:
    """Gas in the bowel over the pelvis: path length (mm) with no soft tissue."""
    gas = np.zeros_like(X)
    if rng.random() < 0.35:
        return gas
    for _ in range(int(rng.integers(1, 4))):
        c = g.H + np.array([rng.uniform(-90.0, 10.0), rng.uniform(-90.0, -g.R)])
        for _ in range(int(rng.integers(2, 7))):
            cc = c + rng.normal(0.0, 7.0, size=2)
            ang = rng.uniform(0, math.pi)
            axis = np.array([math.cos(ang), math.sin(ang)])
            q = ellipse_q(X, Y, cc, axis, rng.uniform(3.0, 12.0), rng.uniform(2.5, 7.0))
            gas = gas + rng.uniform(3.0, 12.0) * np.clip(1.0 - q, 0.0, None) ** 0.7
    return gas


def soft_tissue(X, Y, p: Patient, g: Femur, rng) -> tuple[np.ndarray, np.ndarray]:
    """Muscle and fat path lengths (mm): the pelvis above, the thigh below the crotch."""
    midline = g.H[0] - rng.uniform(80.0, 100.0)
    half_width = (g.gt[0] + p.lateral_skin) - midline
    b = p.body_depth / 2
    qb = ((X - midline) / half_width) ** 2
    body = 2 * b * np.sqrt(np.clip(1.0 - qb, 0.0, None))
    qm = ((X - midline) / (half_width - p.fat)) ** 2
    body_m = 2 * (b - p.fat) * np.sqrt(np.clip(1.0 - qm, 0.0, None))
    # the thigh: a cylinder around an axis parallel to the shaft
    thigh_r = max(g.gt[0] + p.lateral_skin - g.J[0], 80.0) * rng.uniform(0.95, 1.05)
    c0 = g.J + g.d * 40.0 - g.lat * rng.uniform(0.0, 10.0)
    across = (X - c0[0]) * g.lat[0] + (Y - c0[1]) * g.lat[1]
    bt = b * rng.uniform(0.72, 0.88)
    thigh = 2 * bt * np.sqrt(np.clip(1.0 - (across / thigh_r) ** 2, 0.0, None))
    thigh_m = 2 * (bt - p.fat) * np.sqrt(np.clip(1.0 - (across / (thigh_r - p.fat)) ** 2, 0.0, None))
    # below the perineum only the thigh remains; the fold runs down and laterally
    crotch = g.H[1] + rng.uniform(4.2, 6.0) * g.R + rng.uniform(0.1, 0.3) * (X - c0[0])
    above = sigmoid((crotch - Y) / 22.0)
    total = body * above + thigh * (1.0 - above)
    muscle = body_m * above + thigh_m * (1.0 - above)
    return muscle, total - muscle
