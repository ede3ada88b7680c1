"""Proximal femoral fractures: a jagged cut through the femur and the distal fragment moved.

The proximal fragment stays with the head in the acetabulum; the distal one is drawn from the same
femur seen through the inverse of its movement, so both fragments keep one texture and one set of
look-alikes and meet along the same jagged line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from pathosynth.data.phantoms.radiograph.femur import Femur, FemurLook, femur_attenuation


@dataclass
class Cut:
    origin: np.ndarray      # a point on the fracture line
    normal: np.ndarray      # unit, pointing into the distal fragment
    jag: list[tuple[float, float, float]]   # (amplitude, wavelength, phase) along the line
    rot: float              # distal fragment: rotation (rad) about `origin`
    shift: np.ndarray       # then this translation (mm)
    lt_gain: float          # the distal fragment's lesser trochanter grows (external rotation)
    blur: float             # mm: a fracture plane oblique to the beam projects as a band this wide
    kind: str               # displaced, impacted or subtle

    def signed(self, X, Y):
        """Signed distance (mm) from the jagged fracture line, positive in the distal fragment."""
        dx, dy = X - self.origin[0], Y - self.origin[1]
        along = -dx * self.normal[1] + dy * self.normal[0]
        across = dx * self.normal[0] + dy * self.normal[1]
        for amp, wl, ph in self.jag:
            across = across - amp * np.sin(2 * math.pi * along / wl + ph)
        return across

    def to_body(self, X, Y):
        """Where a point of the image lies on the distal fragment before it moved."""
        c, s = math.cos(self.rot), math.sin(self.rot)
        dx = X - self.origin[0] - self.shift[0]
        dy = Y - self.origin[1] - self.shift[1]
        return self.origin[0] + c * dx + s * dy, self.origin[1] - s * dx + c * dy


def draw_cut(rng: np.random.Generator, g: Femur) -> Cut:
    """Where the fracture runs, how jagged it is, and how the distal fragment moved."""
    R = g.R
    if rng.random() < 0.62:          # femoral neck: subcapital .. basicervical
        s0 = rng.uniform(0.8, 1.75) * R
        beta = math.radians(rng.uniform(-25.0, 25.0))
        normal = g.e_s * math.cos(beta) + g.e_w * math.sin(beta)
        origin = g.H + s0 * g.e_s + rng.uniform(-0.1, 0.1) * R * g.e_w
    else:                            # intertrochanteric: greater towards lesser trochanter
        a = g.J - g.d * rng.uniform(0.2, 0.6) * R + g.lat * rng.uniform(0.55, 0.8) * R
        b = g.lt - g.d * rng.uniform(0.0, 0.35) * R + g.lat * 0.1 * R
        tang = (b - a) / np.linalg.norm(b - a)
        normal = np.array([-tang[1], tang[0]])
        if np.dot(g.J + g.d * 3 * R - a, normal) < 0:
            normal = -normal
        origin = 0.5 * (a + b)
    wavelengths = rng.uniform(4.0, 25.0, size=4)
    jag = [(float(0.022 * wl * rng.uniform(0.3, 1.0)), float(wl), float(rng.uniform(0, 2 * math.pi)))
           for wl in wavelengths]
    tang = np.array([-normal[1], normal[0]])
    kind = rng.choice(["displaced", "impacted", "subtle"], p=[0.42, 0.28, 0.30])
    if kind == "displaced":
        shift = (-g.d * rng.uniform(3.0, 14.0) + g.lat * rng.uniform(-3.0, 6.0)
                 + normal * rng.uniform(-1.0, 3.0))
        rot = math.radians(rng.uniform(-16.0, 8.0))
        lt_gain = rng.uniform(1.0, 1.7)
        blur = rng.uniform(0.0, 4.0)
    elif kind == "impacted":
        shift = -normal * rng.uniform(1.0, 4.0) + tang * rng.normal(0.0, 1.0)
        rot = math.radians(rng.uniform(-3.0, 8.0))
        lt_gain = 1.0
        blur = rng.uniform(0.0, 5.0)
    else:
        shift = normal * rng.uniform(0.1, 0.9) + tang * rng.uniform(-0.6, 0.6)
        rot = math.radians(rng.normal(0.0, 0.4))
        lt_gain = 1.0
        blur = 10.0 * rng.uniform(0.0, 1.0) ** 1.3
    return Cut(origin=origin, normal=normal, jag=jag, rot=rot, shift=shift, lt_gain=float(lt_gain),
               blur=float(blur), kind=str(kind))


def fractured_femur(rng: np.random.Generator, X: np.ndarray, Y: np.ndarray, g: Femur,
                    look: FemurLook, px: float) -> tuple[np.ndarray, np.ndarray]:
    """Attenuation of a fractured femur, and a mask of the fracture line where it crosses bone.

    `px` is the pixel size in the anatomy's millimetres: the fragments' edges are kept at least
    that soft so the cut does not alias.
    """
    cut = draw_cut(rng, g)
    soft_edge = max(0.6 * px, cut.blur)
    near = max(1.2, 0.8 * px, 0.5 * cut.blur)
    sd_p = cut.signed(X, Y)
    att_p, h_p = femur_attenuation(X, Y, g, look)
    keep_p = np.clip(0.5 - sd_p / soft_edge, 0.0, 1.0)
    Xd, Yd = cut.to_body(X, Y)
    g_d = g
    if cut.lt_gain != 1.0:
        # external rotation of the shaft shows more of the lesser trochanter
        g_d = replace(g, lt_axes=(g.lt_axes[0], g.lt_axes[1] * cut.lt_gain, g.lt_axes[2]))
    sd_d = cut.signed(Xd, Yd)
    att_d, h_d = femur_attenuation(Xd, Yd, g_d, look)
    keep_d = np.clip(0.5 + sd_d / soft_edge, 0.0, 1.0)
    bone_att = att_p * keep_p + att_d * keep_d
    line = ((np.abs(sd_p) < near) & (h_p > 1.0)) | ((np.abs(sd_d) < near) & (h_d > 1.0))
    if not line.any():  # cannot happen for the shapes above; keep a box all the same
        line = (np.abs(sd_p) < near) | (np.abs(sd_d) < near)
    return bone_att, line
