"""The proximal femur: its geometry in the crop, its projected cortex and cancellous bone, and
what it looks like on film, including the look-alikes that normal hips share with fractures."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len

from pathosynth.data.phantoms.radiograph.patient import Patient
from pathosynth.data.phantoms.radiograph.shapes import (
    MU_CORTEX, MU_TRABECULAR, ellipse_q, sample_field, sigmoid, smooth_union)
from pathosynth.data.phantoms.radiograph.trabecular import texture_field, trabecular_density


@dataclass
class Femur:
    H: np.ndarray           # head centre
    R: float                # head radius
    J: np.ndarray           # neck axis meets shaft axis
    e_s: np.ndarray         # unit, head -> J along the neck
    e_w: np.ndarray         # unit, perpendicular to the neck, pointing inferior
    L: float                # |J - H|
    d: np.ndarray           # unit, shaft axis pointing distal
    lat: np.ndarray         # unit, perpendicular to the shaft, pointing lateral
    r_shaft: float
    tc_shaft: float
    tc_neck: float
    tc_calcar: float
    gt: np.ndarray          # greater trochanter centre
    gt_axes: tuple[float, float, float]
    lt: np.ndarray          # lesser trochanter centre
    lt_axes: tuple[float, float, float]
    lt_level: float         # distance of the lesser trochanter along the shaft from J
    density: float          # trabecular density factor


def femur_geometry(p: Patient, rng: np.random.Generator, rotation: float) -> Femur:
    """A left femur in the crop's frame (mm, x right, y down); `rotation` > 0 is external."""
    R = p.head_radius * rng.normal(1.0, 0.01)
    H = np.array([-20.0, -24.0])
    phi = math.radians(p.shaft_tilt + rng.normal(0.0, 0.6))
    d = np.array([-math.sin(phi), math.cos(phi)])
    lat = np.array([math.cos(phi), math.sin(phi)])
    # external rotation foreshortens the neck and opens the apparent neck-shaft angle
    alpha = math.radians(p.neck_shaft + 0.3 * rotation + rng.normal(0.0, 1.0))
    n = np.array([d[0] * math.cos(alpha) - d[1] * math.sin(alpha),
                  d[0] * math.sin(alpha) + d[1] * math.cos(alpha)])
    if n[0] > 0:  # rotate the other way: the neck points medially (left) and up
        n = np.array([d[0] * math.cos(-alpha) - d[1] * math.sin(-alpha),
                      d[0] * math.sin(-alpha) + d[1] * math.cos(-alpha)])
    offset = p.offset * math.cos(math.radians(max(rotation, 0.0)) * 0.9)
    L = offset / max(math.sin(math.pi - alpha), 0.3)
    J = H - L * n
    e_s = -n
    e_w = np.array([-e_s[1], e_s[0]])
    if e_w[1] < 0:
        e_w = -e_w
    r_shaft = 0.6 * R * rng.normal(1.0, 0.03)
    tc_shaft = r_shaft * (0.16 + 0.2 * p.bmd)
    up = -d
    gt = J + up * (0.6 * R) + lat * (0.52 * R)
    gt_axes = (1.0 * R, 0.55 * R, 0.6 * R)  # along the shaft, across, depth
    lt_level = 1.25 * R
    lt_out = 0.25 * R * (0.7 + 1.1 * max(math.sin(math.radians(rotation + 12.0)), 0.05))
    lt = J + d * lt_level - lat * (r_shaft + 0.5 * lt_out)
    lt_axes = (0.42 * R, lt_out, 0.35 * R)  # along the shaft, how far it stands out, depth
    return Femur(H=H, R=R, J=J, e_s=e_s, e_w=e_w, L=L, d=d, lat=lat, r_shaft=r_shaft,
                 tc_shaft=tc_shaft, tc_neck=0.7 + 1.0 * p.bmd, tc_calcar=1.5 + 3.0 * p.bmd,
                 gt=gt, gt_axes=gt_axes, lt=lt, lt_axes=lt_axes, lt_level=lt_level,
                 density=0.45 + 0.75 * p.bmd)


def femur_paths(X: np.ndarray, Y: np.ndarray, g: Femur):
    """Cortical and cancellous path lengths (mm) through the femur, its outer half-thickness, and
    each point's coordinates along (s) and across (w) the neck from the head centre."""
    R = g.R
    # head: a sphere with a thin subchondral plate
    dx, dy = X - g.H[0], Y - g.H[1]
    r2 = dx * dx + dy * dy
    tc_head = 0.8
    f_head, fi_head = 1.0 - r2 / R**2, 1.0 - r2 / (R - tc_head) ** 2
    # neck: tapered along the axis, thin cortex above, the thick calcar below
    s = dx * g.e_s[0] + dy * g.e_s[1]
    w = dx * g.e_w[0] + dy * g.e_w[1]
    t = np.clip(s / g.L, 0.0, 1.0)
    dist = np.hypot(s - t * g.L, w)
    waist = 0.38
    r_neck = R * np.where(t > waist, 0.67 + 1.5 * (t - waist) ** 2, 0.67 + 0.8 * (waist - t) ** 2)
    tc_n = g.tc_neck + g.tc_calcar * sigmoid((w - 0.3 * r_neck) / 1.5) * sigmoid((s - 0.8 * R) / 3.0)
    f_neck = 1.0 - (dist / r_neck) ** 2
    fi_neck = 1.0 - (dist / np.maximum(r_neck - tc_n, 1.0)) ** 2
    # metaphysis between neck, trochanters and shaft
    c_it = g.J + 0.3 * R * g.lat + 0.2 * R * g.d
    a_it, b_it, dep_it = 1.1 * R, 1.0 * R, 0.8 * R
    f_it = 1.0 - ellipse_q(X, Y, c_it, g.d, a_it, b_it)
    fi_it = 1.0 - ellipse_q(X, Y, c_it, g.d, a_it, b_it, shrink=1.3)
    # greater trochanter, its tip leaning medially
    ax = g.d * math.cos(0.12) + g.lat * math.sin(0.12)
    a_gt, b_gt, dep_gt = g.gt_axes
    f_gt = 1.0 - ellipse_q(X, Y, g.gt, ax, a_gt, b_gt)
    fi_gt = 1.0 - ellipse_q(X, Y, g.gt, ax, a_gt, b_gt, shrink=1.1)
    # shaft: a tube flaring into the metaphysis, cortex thinning towards it
    px_, py_ = X - g.J[0], Y - g.J[1]
    along = px_ * g.d[0] + py_ * g.d[1]
    across = px_ * g.lat[0] + py_ * g.lat[1]
    a_pos = np.clip(along, 0.0, None)
    dist_s = np.hypot(along - a_pos, across)
    # the lesser trochanter: a bump on the medial side of the shaft
    a_lt, b_lt, _ = g.lt_axes
    lt_bump = b_lt * np.exp(-(((along - g.lt_level) / a_lt) ** 2)) * sigmoid(-across / 2.0)
    r_s = g.r_shaft + 0.35 * R * np.exp(-a_pos / (0.9 * R)) + lt_bump
    tc_s = g.tc_shaft * (1.0 - 0.7 * np.exp(-a_pos / (1.6 * R)))
    f_sh = 1.0 - (dist_s / r_s) ** 2
    fi_sh = 1.0 - (dist_s / (r_s - tc_s)) ** 2

    k = 7.0
    h_out = smooth_union([f_head, f_neck, f_it, f_gt, f_sh],
                         [R, r_neck, dep_it, dep_gt, r_s - 0.6 * lt_bump], k)
    h_in = smooth_union([fi_head, fi_neck, fi_it, fi_gt, fi_sh],
                        [R - tc_head, r_neck - tc_n, dep_it - 1.3, dep_gt - 1.1,
                         r_s - tc_s - 0.6 * lt_bump], k)
    h_in = np.minimum(h_in, h_out)
    cortex = 2.0 * (h_out - h_in)
    # cancellous bone fills the proximal femur; below the lesser trochanter the canal holds marrow
    cancellous = 0.06 + 0.94 * sigmoid((g.lt_level + 0.6 * R - along) / 6.0)
    trab = 2.0 * h_in * cancellous
    return cortex, trab, h_out, s, w


@dataclass
class FemurLook:
    """What a femur looks like on one image besides its shape; both fragments of a fracture share it."""
    bmd: float
    texture: np.ndarray     # trabecular texture, on a grid fixed in the femur's frame
    spacing: float          # of that grid, mm
    texture_amp: float
    scar_amp: float         # physeal scar across the head; 0 when there is none
    scar_s: float
    scar_tilt: float
    crest_amp: float        # intertrochanteric crest


def draw_femur_look(rng: np.random.Generator, g: Femur, bmd: float, px: float) -> FemurLook:
    """The texture and the normal look-alikes for one image with pixels `px` mm in the anatomy."""
    spacing = max(px, 0.45)
    texture = texture_field(rng, next_fast_len(int(math.ceil(240.0 / spacing))), spacing, g, bmd)
    scar = rng.random() < 0.6
    scar_amp = rng.uniform(0.2, 0.9) if scar else 0.0
    scar_s, scar_tilt = rng.uniform(0.55, 0.8) * g.R, rng.uniform(-0.35, 0.15)
    crest_amp = rng.uniform(0.0, 0.7)
    return FemurLook(bmd=bmd, texture=texture, spacing=spacing, texture_amp=0.08 + 0.14 * bmd,
                     scar_amp=scar_amp, scar_s=scar_s, scar_tilt=scar_tilt, crest_amp=crest_amp)


def femur_attenuation(X: np.ndarray, Y: np.ndarray, g: Femur, look: FemurLook):
    """Extra attenuation (line integral) of the femur, and its outer half-thickness."""
    cortex, trab, h_out, s, w = femur_paths(X, Y, g)
    t = sample_field(look.texture, look.spacing, X, Y)
    dens = trabecular_density(s, w, g.R, look.bmd)
    trab_mu = MU_TRABECULAR * g.density * dens * np.clip(1.0 + look.texture_amp * t, 0.05, None)
    # normal look-alikes: the physeal scar across the head, the intertrochanteric crest
    band = np.exp(-((s - look.scar_s - look.scar_tilt * w - 0.15 * w**2 / g.R) / 0.9) ** 2) * (h_out > 0)
    dxj, dyj = X - g.J[0], Y - g.J[1]
    crest_line = (dxj * g.e_s[0] + dyj * g.e_s[1]) + 0.15 * g.R
    crest_across = (dxj * g.e_w[0] + dyj * g.e_w[1]) / g.R
    crest = np.exp(-(crest_line / 1.5) ** 2 - (crest_across / 0.8) ** 4) * (h_out > 0)
    att = MU_CORTEX * cortex + trab_mu * trab
    att = att + MU_TRABECULAR * (look.scar_amp * band * 2 * np.sqrt(np.clip(g.R**2 - (s**2 + w**2), 0, None)) * 0.25
                                 + look.crest_amp * crest * 6.0)
    return att, h_out
