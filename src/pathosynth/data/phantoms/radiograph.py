"""A two-class hip radiograph phantom: AP hip crops with and without a proximal femoral fracture.

Each image is a projection: 2D path lengths through analytic shapes (a femur built from a sphere,
a tapered neck, trochanters and a tubular shaft with cortex, trabecular texture and a marrow canal;
a hemipelvis with acetabular roof, teardrop, pubic and ischial rami around the obturator foramen;
a soft-tissue body with a subcutaneous fat layer, fat planes and bowel gas) are turned into line
integrals of attenuation, then into a processed radiograph: quantum noise, detector blur, dynamic
range compression, a film-like look-up table and 12-bit detector values (0..4095), bone bright.

Every image shows a *left* hip in the usual display (patient's right on the viewer's left), so the
femoral head is on the left of the crop and the greater trochanter on the right; the right hip of a
patient is drawn as its mirror image, as hip-fracture papers do before training.

Fractures (femoral neck: subcapital to basicervical; intertrochanteric) are made by cutting the
femur along a jagged line into a proximal and a distal fragment and moving the distal one: a
displaced fracture (about 42%) shortens and angulates, an impacted one (28%) pushes the fragments
into each other (a sclerotic band), a subtle one (30%) leaves a hairline gap of a fraction of a
millimetre. A fracture plane oblique to the beam projects as a band rather than a line, so many
subtle fractures are barely visible. Normal hips carry look-alikes (the physeal scar, the
intertrochanteric crest, fat planes crossing the neck, the leg's rotation), so the label cannot be
read off one simple cue; a small CNN at 64 px finds most displaced and impacted fractures and few
of the subtle ones.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage

from pathosynth.data.writers import write_png

FOV_MM = 170.0              # the width and height of the crop, before the patient's own scale
_RENDER_MIN = 256           # smaller images are drawn at least this size and block-averaged down
_MAX_VALUE = 4095           # 12-bit detector range
_P_TWO_IMAGES = 0.7         # a patient gives a left and a right crop, otherwise one of them
_P_FRACTURE_PATIENT = 0.58  # a patient with a fracture has it on one side: about 34% of images

# extra attenuation over soft tissue, per mm of path (soft tissue ~0.020/mm at ~70 kVp)
_MU_MUSCLE = 0.020
_MU_FAT = 0.0165
_MU_CORTEX = 0.030
_MU_TRABECULAR = 0.011
_MU_PLATE = 0.012


def write_folder_layout(out_dir: Path, n_patients: int, seed: int, *, size: int = 256,
                        progress: Callable[[], object] | None = None) -> list[str]:
    """Write hip radiographs as PNG files plus out_dir/labels.csv; return the patient ids.

    ``out_dir/images/P0003_left.png`` etc. are 16-bit grey PNGs with 12-bit values (0..4095).
    ``labels.csv`` has the columns ``file,label,patient_id,boxes``: the file relative to out_dir,
    ``normal`` or ``fracture``, ``PHANTOM_HIP_0003``, and for fractures the box
    ``x0,y0,x1,y1`` (columns, rows; x1 and y1 exclusive) around the fracture line, several boxes
    separated by ``;``. Patient ``i`` draws only from ``np.random.default_rng([seed, i])``, so
    the same seed gives byte-identical files. ``progress`` is called with no arguments once per
    patient.
    """
    if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) or n_patients < 0:
        raise ValueError(f"n_patients must be a non-negative integer, got {n_patients!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer of at least 16 pixels, got {size!r}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    ids: list[str] = []
    for index in range(int(n_patients)):
        rng = np.random.default_rng([int(seed), index])
        patient_id = f"PHANTOM_HIP_{index:04d}"
        patient = _draw_patient(rng)
        sides = ["left", "right"] if rng.random() < _P_TWO_IMAGES else [str(rng.choice(["left", "right"]))]
        fractured_side = str(rng.choice(sides)) if rng.random() < _P_FRACTURE_PATIENT else None
        for side in sides:
            image, boxes = _render_hip(rng, patient, side, side == fractured_side, int(size))
            name = f"images/P{index:04d}_{side}.png"
            write_png(out_dir / name, image)
            label = "fracture" if boxes else "normal"
            rows.append((name, label, patient_id, ";".join(",".join(str(v) for v in b) for b in boxes)))
        ids.append(patient_id)
        if progress is not None:
            progress()
    with open(out_dir / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "label", "patient_id", "boxes"])
        writer.writerows(rows)
    return ids


# ----------------------------------------------------------------------------------- parameters

@dataclass
class _Patient:
    head_radius: float      # mm
    offset: float           # femoral offset: head centre to shaft axis, mm
    neck_shaft: float       # degrees
    shaft_tilt: float       # anatomical axis against the image vertical, degrees
    bmd: float              # 0.2 (severe osteoporosis) .. 1.0 (young, dense)
    fat: float              # subcutaneous fat, mm
    body_depth: float       # AP soft-tissue thickness at the hip, mm
    lateral_skin: float     # skin this far lateral of the greater trochanter, mm
    ce_angle: float         # centre-edge angle of the acetabulum, degrees
    joint_space: float      # mm


def _draw_patient(rng: np.random.Generator) -> _Patient:
    return _Patient(
        head_radius=float(np.clip(rng.normal(23.0, 1.6), 19.5, 27.0)),
        offset=float(np.clip(rng.normal(40.0, 3.5), 31.0, 49.0)),
        neck_shaft=float(np.clip(rng.normal(129.0, 4.5), 117.0, 142.0)),
        shaft_tilt=float(np.clip(rng.normal(7.0, 1.5), 3.0, 11.0)),
        bmd=float(rng.uniform(0.2, 1.0)),
        fat=float(rng.uniform(6.0, 40.0)),
        body_depth=float(rng.uniform(170.0, 250.0)),
        lateral_skin=float(rng.uniform(45.0, 100.0)),
        ce_angle=float(np.clip(rng.normal(31.0, 5.0), 18.0, 42.0)),
        joint_space=float(rng.uniform(2.0, 5.0)),
    )


@dataclass
class _Femur:
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


def _femur_geometry(p: _Patient, rng: np.random.Generator, rotation: float) -> _Femur:
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
    return _Femur(H=H, R=R, J=J, e_s=e_s, e_w=e_w, L=L, d=d, lat=lat, r_shaft=r_shaft,
                  tc_shaft=tc_shaft, tc_neck=0.7 + 1.0 * p.bmd, tc_calcar=1.5 + 3.0 * p.bmd,
                  gt=gt, gt_axes=gt_axes, lt=lt, lt_axes=lt_axes, lt_level=lt_level,
                  density=0.45 + 0.75 * p.bmd)


# -------------------------------------------------------------------------------------- shapes

def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _ellipse_q(X, Y, c, axis, a, b, shrink=0.0):
    """Normalised squared radius of an ellipse with semi-axis `a` along unit `axis`, `b` across."""
    u = (X - c[0]) * axis[0] + (Y - c[1]) * axis[1]
    v = -(X - c[0]) * axis[1] + (Y - c[1]) * axis[0]
    return (u / (a - shrink)) ** 2 + (v / (b - shrink)) ** 2


def _smooth_union(fs: list[np.ndarray], depths: list, k: float) -> np.ndarray:
    """Half-thickness of a smooth union of ellipsoid-like solids, f = 1 - q for each."""
    stack = np.stack(fs)
    top = stack.max(axis=0)
    w = np.exp(k * (stack - top))
    total = w.sum(axis=0)
    F = top + np.log(total) / k
    D = sum(wi * np.asarray(di) for wi, di in zip(w, depths)) / total
    return D * np.sqrt(np.clip(F, 0.0, None))


def _femur_paths(X: np.ndarray, Y: np.ndarray, g: _Femur):
    """Cortical and cancellous path lengths (mm) through the femur, and its outer half-thickness."""
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
    tc_n = g.tc_neck + g.tc_calcar * _sigmoid((w - 0.3 * r_neck) / 1.5) * _sigmoid((s - 0.8 * R) / 3.0)
    f_neck = 1.0 - (dist / r_neck) ** 2
    fi_neck = 1.0 - (dist / np.maximum(r_neck - tc_n, 1.0)) ** 2
    # metaphysis between neck, trochanters and shaft
    c_it = g.J + 0.3 * R * g.lat + 0.2 * R * g.d
    a_it, b_it, dep_it = 1.1 * R, 1.0 * R, 0.8 * R
    f_it = 1.0 - _ellipse_q(X, Y, c_it, g.d, a_it, b_it)
    fi_it = 1.0 - _ellipse_q(X, Y, c_it, g.d, a_it, b_it, shrink=1.3)
    # greater trochanter, its tip leaning medially
    ax = g.d * math.cos(0.12) + g.lat * math.sin(0.12)
    a_gt, b_gt, dep_gt = g.gt_axes
    f_gt = 1.0 - _ellipse_q(X, Y, g.gt, ax, a_gt, b_gt)
    fi_gt = 1.0 - _ellipse_q(X, Y, g.gt, ax, a_gt, b_gt, shrink=1.1)
    # shaft: a tube flaring into the metaphysis, cortex thinning towards it
    px_, py_ = X - g.J[0], Y - g.J[1]
    along = px_ * g.d[0] + py_ * g.d[1]
    across = px_ * g.lat[0] + py_ * g.lat[1]
    a_pos = np.clip(along, 0.0, None)
    dist_s = np.hypot(along - a_pos, across)
    # the lesser trochanter: a bump on the medial side of the shaft
    a_lt, b_lt, _ = g.lt_axes
    lt_bump = b_lt * np.exp(-(((along - g.lt_level) / a_lt) ** 2)) * _sigmoid(-across / 2.0)
    r_s = g.r_shaft + 0.35 * R * np.exp(-a_pos / (0.9 * R)) + lt_bump
    tc_s = g.tc_shaft * (1.0 - 0.7 * np.exp(-a_pos / (1.6 * R)))
    f_sh = 1.0 - (dist_s / r_s) ** 2
    fi_sh = 1.0 - (dist_s / (r_s - tc_s)) ** 2

    k = 7.0
    h_out = _smooth_union([f_head, f_neck, f_it, f_gt, f_sh],
                          [R, r_neck, dep_it, dep_gt, r_s - 0.6 * lt_bump], k)
    h_in = _smooth_union([fi_head, fi_neck, fi_it, fi_gt, fi_sh],
                         [R - tc_head, r_neck - tc_n, dep_it - 1.3, dep_gt - 1.1,
                          r_s - tc_s - 0.6 * lt_bump], k)
    h_in = np.minimum(h_in, h_out)
    cortex = 2.0 * (h_out - h_in)
    # cancellous bone fills the proximal femur; below the lesser trochanter the canal holds marrow
    cancellous = 0.06 + 0.94 * _sigmoid((g.lt_level + 0.6 * R - along) / 6.0)
    trab = 2.0 * h_in * cancellous
    return cortex, trab, h_out, s, w


def _texture_field(rng: np.random.Generator, n: int, spacing: float, g: _Femur, bmd: float) -> np.ndarray:
    """Trabecular texture on a square grid (mm) centred on the origin, in the femur's frame.

    Band-passed noise made straight in the frequency domain (a random half spectrum, one inverse
    real FFT per texture). The principal compressive group runs from the head
    into the medial neck, the tensile group arcs over the superior neck and thins first in
    osteoporosis (Singh index); a fine isotropic texture fills the rest.
    """
    from scipy import fft as sfft

    FX = sfft.rfftfreq(n, d=spacing)[None, :]
    FY = sfft.fftfreq(n, d=spacing)[:, None]
    fr = np.hypot(FX, FY) + 1e-9
    f0 = 1.0 / rng.uniform(1.7, 2.4)
    band = np.exp(-0.5 * ((fr - f0) / (0.45 * f0)) ** 2)

    def oriented(direction: np.ndarray, spread: float) -> np.ndarray:
        # stripes along `direction` have their frequencies along its normal
        cos2 = ((FX * -direction[1] + FY * direction[0]) / fr) ** 2
        return band * np.exp(-(1.0 - cos2) / (2 * spread**2))

    def texture(filt: np.ndarray) -> np.ndarray:
        spectrum = (rng.standard_normal(filt.shape) + 1j * rng.standard_normal(filt.shape)) * filt
        out = sfft.irfft2(spectrum, s=(n, n), workers=1)
        return out / (out.std() + 1e-12)

    compressive = texture(oriented(np.array([0.26, 0.97]), 0.4))
    tensile = texture(oriented(g.e_s, 0.45))
    fine = texture(band)
    c = (np.arange(n) + 0.5) * spacing - n * spacing / 2
    dx = c[None, :] - g.H[0]
    dy = c[:, None] - g.H[1]
    s = dx * g.e_s[0] + dy * g.e_s[1]
    w = dx * g.e_w[0] + dy * g.e_w[1]
    R = g.R
    w_comp = np.exp(-((w - 0.15 * R) / (0.7 * R)) ** 2) * _sigmoid((1.7 * R - s) / 4.0)
    w_tens = np.exp(-((w + 0.45 * R) / (0.45 * R)) ** 2) * _sigmoid((2.2 * R - s) / 5.0) \
        * (0.3 + 0.9 * bmd)
    return 0.7 * (w_comp * compressive + w_tens * tensile + fine)


def _density(s: np.ndarray, w: np.ndarray, R: float, bmd: float) -> np.ndarray:
    """Relative cancellous density: denser along the compressive group, Ward's triangle sparse."""
    comp = np.exp(-((w - 0.15 * R) / (0.7 * R)) ** 2) * _sigmoid((1.7 * R - s) / 4.0)
    ward = np.exp(-(((s - 1.35 * R) / (0.35 * R)) ** 2 + ((w - 0.05 * R) / (0.3 * R)) ** 2))
    return 1.0 + 0.3 * comp - (0.25 + 0.35 * (1.0 - bmd)) * ward


def _sample(field: np.ndarray, spacing: float, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    n = field.shape[0]
    rows = (Y + n * spacing / 2) / spacing - 0.5
    cols = (X + n * spacing / 2) / spacing - 0.5
    return ndimage.map_coordinates(field, [rows, cols], order=1, mode="nearest")


# --------------------------------------------------------------------------------------- pelvis

def _pelvis(X: np.ndarray, Y: np.ndarray, p: _Patient, g: _Femur, px: float, rng,
            texture: np.ndarray) -> np.ndarray:
    """Extra attenuation (line integral) of the hemipelvis around a left acetabulum."""
    H, R = g.H, g.R
    Rc = R + p.joint_space
    ce = math.radians(p.ce_angle)
    bmd_f = 0.6 + 0.5 * p.bmd
    dx, dy = X - H[0], Y - H[1]
    rr = np.hypot(dx, dy)
    psi = np.arctan2(dx, -dy)                                       # 0 up, positive lateral
    # ilium, acetabular body and quadrilateral plate: a plate with rounded, corticated edges,
    # bounded laterally by a border rising from the lateral acetabular edge and medially by the
    # iliopectineal / ilioischial line; the cup is open above the head (the joint space)
    E = H + Rc * np.array([math.sin(ce), -math.cos(ce)])
    dlt = math.radians(rng.uniform(10.0, 28.0))
    plate = (X - E[0]) * math.cos(dlt) + (Y - E[1]) * math.sin(dlt) < 0.0
    I = H + np.array([-R - rng.uniform(16.0, 26.0), -rng.uniform(0.0, 0.5) * R])
    dm = math.radians(rng.uniform(20.0, 38.0))
    rise = np.clip(I[1] - Y, 0.0, None)
    medial_x = I[0] - rise * math.tan(dm) * np.clip(rise / 40.0, 0.0, 1.0)
    plate &= X > medial_x
    cup = rr < Rc
    # distances to the plate's outer borders only: the roof over the cup is dense to its edge, and
    # below the acetabulum the plate fades into the pubic and ischial rami
    inside = ndimage.distance_transform_edt(plate) * px
    plate &= ~cup
    fade = _sigmoid((H[1] + 0.5 * R - Y) / (0.12 * R))
    fade = fade * (1.0 - _sigmoid((X - H[0] + 0.3 * R) / (0.1 * R)) * _sigmoid((Y - H[1]) / (0.1 * R)))
    thick = rng.uniform(18.0, 26.0) * bmd_f * (0.45 + 0.55 * np.exp(-np.clip(H[1] - Rc - Y, 0, None) / 45.0))
    edge = np.clip(inside / 7.0, 0.0, 1.0)
    plate_att = _MU_PLATE * thick * np.sqrt(1.0 - (1.0 - edge) ** 2)
    plate_att = plate_att * (1.0 + 0.06 * texture)
    plate_att = (plate_att + _MU_CORTEX * (1.0 + 1.5 * p.bmd) * np.exp(-inside / 1.0)) * plate * fade

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
    band = band + R * rng.uniform(0.12, 0.22) * np.exp(-(((theta - theta_tub + math.pi) % (2 * math.pi) - math.pi) / 0.55) ** 2)
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
    h_out = _smooth_union([f_ring, f_sup], [band, rs], 4.0)
    h_in = np.minimum(_smooth_union([fi_ring, fi_sup], [band - tc_r, rs - tc_r], 4.0), h_out)
    ring_att = _MU_CORTEX * 2 * (h_out - h_in) + 0.8 * _MU_TRABECULAR * bmd_f * 2 * h_in * (1.0 + 0.1 * texture)
    att = np.maximum(plate_att, ring_att) + 0.35 * np.minimum(plate_att, ring_att)

    # the acetabular walls project over the head: their rims cross it obliquely
    pw = (X - (H[0] - 0.45 * R)) ** 2 + (Y - (H[1] + 0.35 * R)) ** 2 < (0.95 * Rc) ** 2
    aw = (X - (H[0] - 0.85 * R)) ** 2 + (Y - (H[1] - 0.1 * R)) ** 2 < (0.75 * Rc) ** 2
    for wall, amount in ((pw & cup, 0.5), (aw & cup, 0.35)):
        din = ndimage.distance_transform_edt(wall) * px
        att = att + amount * (_MU_PLATE * 20.0 * bmd_f * (1.0 - np.exp(-din / 4.0))
                              + _MU_CORTEX * 1.2 * np.exp(-din / 1.0) * wall)
    # the sclerotic roof (sourcil) over the head
    roof = np.exp(-((rr - Rc - 1.8) / 1.6) ** 2) * _sigmoid((ce - psi) / 0.06) \
        * _sigmoid((psi + 1.1) / 0.15)
    att = att + _MU_CORTEX * (3.0 + 3.0 * p.bmd) * roof
    # the teardrop, medial to the cup
    T = H + np.array([-Rc - 5.0, 0.35 * R])
    q = _ellipse_q(X, Y, T, np.array([0.0, 1.0]), 10.0, 4.5)
    tear = np.exp(-((np.sqrt(q) - 1.0) / 0.18) ** 2) * (Y > T[1] - 4.0)
    att = att + _MU_CORTEX * 2.0 * tear
    return att


def _fat_stripes(X, Y, g: _Femur, rng) -> np.ndarray:
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
        window = _sigmoid((half - np.abs(along)) / 4.0)
        out += rng.uniform(0.01, 0.05) * np.exp(-((dist / rng.uniform(0.6, 1.8)) ** 2)) * window
    return out


def _bowel_gas(X, Y, g: _Femur, rng) -> np.ndarray:
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
            q = _ellipse_q(X, Y, cc, axis, rng.uniform(3.0, 12.0), rng.uniform(2.5, 7.0))
            gas = gas + rng.uniform(3.0, 12.0) * np.clip(1.0 - q, 0.0, None) ** 0.7
    return gas



# ----------------------------------------------------------------------------------- soft tissue

def _soft_tissue(X, Y, p: _Patient, g: _Femur, rng) -> tuple[np.ndarray, np.ndarray]:
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
    above = _sigmoid((crotch - Y) / 22.0)
    total = body * above + thigh * (1.0 - above)
    muscle = body_m * above + thigh_m * (1.0 - above)
    return muscle, total - muscle


# -------------------------------------------------------------------------------------- fracture

@dataclass
class _Cut:
    origin: np.ndarray      # a point on the fracture line
    normal: np.ndarray      # unit, pointing into the distal fragment
    jag: list[tuple[float, float, float]]   # (amplitude, wavelength, phase) along the line
    rot: float              # distal fragment: rotation (rad) about `origin`
    shift: np.ndarray       # then this translation (mm)
    lt_gain: float          # the distal fragment's lesser trochanter grows (external rotation)
    blur: float             # mm: a fracture plane oblique to the beam projects as a band this wide
    kind: str               # displaced, impacted or subtle

    def signed(self, X, Y):
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


def _draw_cut(rng: np.random.Generator, g: _Femur) -> _Cut:
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
    return _Cut(origin=origin, normal=normal, jag=jag, rot=rot, shift=shift, lt_gain=float(lt_gain),
                blur=float(blur), kind=str(kind))


# ------------------------------------------------------------------------------------- rendering

def _render_hip(rng: np.random.Generator, patient: _Patient, side: str, fractured: bool,
               size: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """One crop as uint16 (12-bit values) and its fracture boxes (empty for a normal hip)."""
    factor = max(1, math.ceil(_RENDER_MIN / size))
    n = size * factor
    px = FOV_MM / n
    rotation = float(np.clip(rng.normal(4.0, 7.0), -10.0, 22.0))
    g = _femur_geometry(patient, rng, rotation)
    # positioning: the image frame is the anatomy scaled, turned and shifted
    scale = rng.uniform(0.9, 1.1) * 23.0 / patient.head_radius * rng.uniform(0.97, 1.03)
    turn = math.radians(rng.normal(0.0, 2.5))
    shift = np.clip(rng.normal(0.0, 6.0, size=2), -14.0, 14.0)
    c = (np.arange(n) + 0.5) * px - FOV_MM / 2
    XI, YI = np.meshgrid(c, c)
    cs, sn = math.cos(turn), math.sin(turn)
    X = (cs * (XI - shift[0]) + sn * (YI - shift[1])) / scale
    Y = (-sn * (XI - shift[0]) + cs * (YI - shift[1])) / scale
    px_a = px / scale

    # trabecular texture lives on a fixed grid in the femur's frame
    tex_spacing = max(px_a, 0.45)
    from scipy.fft import next_fast_len

    tex_n = next_fast_len(int(math.ceil(240.0 / tex_spacing)))
    tex = _texture_field(rng, tex_n, tex_spacing, g, patient.bmd)
    tex_amp = 0.08 + 0.14 * patient.bmd
    scar = rng.random() < 0.6
    scar_amp = rng.uniform(0.2, 0.9) if scar else 0.0
    scar_s, scar_tilt = rng.uniform(0.55, 0.8) * g.R, rng.uniform(-0.35, 0.15)
    crest_amp = rng.uniform(0.0, 0.7)

    def femur_att(Xb, Yb, geo):
        cortex, trab, h_out, s, w = _femur_paths(Xb, Yb, geo)
        t = _sample(tex, tex_spacing, Xb, Yb)
        dens = _density(s, w, geo.R, patient.bmd)
        trab_mu = _MU_TRABECULAR * geo.density * dens * np.clip(1.0 + tex_amp * t, 0.05, None)
        # normal look-alikes: the physeal scar across the head, the intertrochanteric crest
        band = np.exp(-((s - scar_s - scar_tilt * w - 0.15 * w**2 / geo.R) / 0.9) ** 2) * (h_out > 0)
        dxj, dyj = Xb - geo.J[0], Yb - geo.J[1]
        crest_line = (dxj * geo.e_s[0] + dyj * geo.e_s[1]) + 0.15 * geo.R
        crest_across = (dxj * geo.e_w[0] + dyj * geo.e_w[1]) / geo.R
        crest = np.exp(-(crest_line / 1.5) ** 2 - (crest_across / 0.8) ** 4) * (h_out > 0)
        att = _MU_CORTEX * cortex + trab_mu * trab
        att = att + _MU_TRABECULAR * (scar_amp * band * 2 * np.sqrt(np.clip(geo.R**2 - (s**2 + w**2), 0, None)) * 0.25
                                      + crest_amp * crest * 6.0)
        return att, h_out

    boxes: list[tuple[int, int, int, int]] = []
    if fractured:
        cut = _draw_cut(rng, g)
        soft_edge = max(0.6 * px_a, cut.blur)
        near = max(1.2, 0.8 * px_a, 0.5 * cut.blur)
        # proximal fragment stays with the head in the acetabulum
        sd_p = cut.signed(X, Y)
        att_p, h_p = femur_att(X, Y, g)
        keep_p = np.clip(0.5 - sd_p / soft_edge, 0.0, 1.0)
        # the distal fragment moves
        Xd, Yd = cut.to_body(X, Y)
        g_d = g
        if cut.lt_gain != 1.0:
            # external rotation of the shaft shows more of the lesser trochanter
            g_d = replace(g, lt_axes=(g.lt_axes[0], g.lt_axes[1] * cut.lt_gain, g.lt_axes[2]))
        sd_d = cut.signed(Xd, Yd)
        att_d, h_d = femur_att(Xd, Yd, g_d)
        keep_d = np.clip(0.5 + sd_d / soft_edge, 0.0, 1.0)
        bone_att = att_p * keep_p + att_d * keep_d
        line = ((np.abs(sd_p) < near) & (h_p > 1.0)) | ((np.abs(sd_d) < near) & (h_d > 1.0))
        if not line.any():  # cannot happen for the shapes above; keep a box all the same
            line = (np.abs(sd_p) < near) | (np.abs(sd_d) < near)
        boxes = [_box(line, factor, size, pad=max(2, int(round(3.0 / (px * factor)))))]
    else:
        bone_att, _ = femur_att(X, Y, g)

    muscle, fat = _soft_tissue(X, Y, patient, g, rng)
    gas = np.minimum(_bowel_gas(X, Y, g, rng), 0.8 * muscle)
    pelvis = _pelvis(X, Y, patient, g, px_a, rng, _sample(tex, tex_spacing, X + 37.0, Y - 21.0))
    A = bone_att + pelvis + _MU_MUSCLE * (muscle - gas) + _MU_FAT * fat - _fat_stripes(X, Y, g, rng)
    if factor > 1:
        A = A.reshape(size, factor, size, factor).mean(axis=(1, 3))
    # the right hip is shown mirrored, as a left one: only the tube's heel effect is mirrored
    image = _expose(A, rng, size, mirrored=side == "right")
    return image, boxes


def _box(mask: np.ndarray, factor: int, size: int, pad: int) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0, 0, size, size)
    y0, y1 = rows[0] // factor, -(-(rows[-1] + 1) // factor)
    x0, x1 = cols[0] // factor, -(-(cols[-1] + 1) // factor)
    return (int(max(x0 - pad, 0)), int(max(y0 - pad, 0)), int(min(x1 + pad, size)), int(min(y1 + pad, size)))


def _expose(A: np.ndarray, rng: np.random.Generator, size: int, mirrored: bool) -> np.ndarray:
    """Quantum noise, detector blur, dynamic range compression and a look-up table to 12 bits."""
    px = FOV_MM / size
    # heel effect: the exposure falls off along the tube axis
    ramp = np.linspace(-1.0, 1.0, size)
    A = A + rng.uniform(-0.08, 0.08) * (-ramp if mirrored else ramp)[None, :] + rng.uniform(-0.05, 0.05) * ramp[:, None]
    sigma_ref = rng.uniform(0.004, 0.014) * size / 256.0  # bigger pixels catch more quanta
    noise = rng.standard_normal(A.shape)
    noise = ndimage.gaussian_filter(noise, 0.6) * 1.9
    A = A + sigma_ref * np.exp(np.clip(A - 4.0, -4.0, 2.0) / 2.0) * noise
    A = ndimage.gaussian_filter(A, 0.4)
    # dynamic range compression: take out part of the large-scale thickness variation
    beta = rng.uniform(0.45, 0.75)
    low = A
    width = max(1, int(round(2.0 * 30.0 / px)))  # three box passes make a Gaussian of sigma 30 mm
    for _ in range(3):
        low = ndimage.uniform_filter(low, width, mode="nearest")
    D = A - beta * (low - np.median(low))
    soft = np.percentile(D, 35)
    bone = np.percentile(D, 99.7)
    u = (D - soft) / max(bone - soft, 1e-6)
    level = rng.uniform(1200.0, 1800.0)
    top = rng.uniform(3500.0, 3950.0)
    floor = rng.uniform(60.0, 350.0)
    gamma = rng.uniform(0.8, 1.2)
    pos = np.clip(u, 0.0, None)
    neg = np.clip(u, None, 0.0)
    # a shoulder above the bone and a toe below the soft tissue, like film
    v = np.where(u >= 0, level + (top - level) * np.tanh(1.3 * pos**gamma) / math.tanh(1.3),
                 floor + (level - floor) * np.exp(neg / rng.uniform(0.8, 1.6)))
    return np.clip(np.rint(v), 0, _MAX_VALUE).astype(np.uint16)
