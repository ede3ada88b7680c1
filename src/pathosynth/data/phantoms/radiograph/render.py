"""One hip crop: position the anatomy, add up its line integrals and expose them."""
from __future__ import annotations

import math

import numpy as np

from pathosynth.data.phantoms.radiograph.exposure import expose
from pathosynth.data.phantoms.radiograph.femur import draw_femur_look, femur_attenuation, femur_geometry
from pathosynth.data.phantoms.radiograph.fracture import fractured_femur
from pathosynth.data.phantoms.radiograph.patient import Patient
from pathosynth.data.phantoms.radiograph.pelvis import pelvis_attenuation
from pathosynth.data.phantoms.radiograph.shapes import MU_FAT, MU_MUSCLE, sample_field
from pathosynth.data.phantoms.radiograph.soft_tissue import bowel_gas, fat_stripes, soft_tissue

FOV_MM = 170.0              # the width and height of the crop, before the patient's own scale
_RENDER_MIN = 256           # smaller images are drawn at least this size and block-averaged down


def render_hip(rng: np.random.Generator, patient: Patient, side: str, fractured: bool,
               size: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """One crop as uint16 (12-bit values) and its fracture boxes (empty for a normal hip)."""
    factor = max(1, math.ceil(_RENDER_MIN / size))
    n = size * factor
    px = FOV_MM / n
    rotation = float(np.clip(rng.normal(4.0, 7.0), -10.0, 22.0))
    g = femur_geometry(patient, rng, rotation)
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

    look = draw_femur_look(rng, g, patient.bmd, px_a)
    boxes: list[tuple[int, int, int, int]] = []
    if fractured:
        bone_att, line = fractured_femur(rng, X, Y, g, look, px_a)
        boxes = [_box(line, factor, size, pad=max(2, int(round(3.0 / (px * factor)))))]
    else:
        bone_att, _ = femur_attenuation(X, Y, g, look)

    muscle, fat = soft_tissue(X, Y, patient, g, rng)
    gas = np.minimum(bowel_gas(X, Y, g, rng), 0.8 * muscle)
    # the pelvis reuses the femur's texture grid, shifted so that the two patterns do not line up
    pelvis = pelvis_attenuation(X, Y, patient, g, px_a, rng,
                                sample_field(look.texture, look.spacing, X + 37.0, Y - 21.0))
    A = bone_att + pelvis + MU_MUSCLE * (muscle - gas) + MU_FAT * fat - fat_stripes(X, Y, g, rng)
    if factor > 1:
        A = A.reshape(size, factor, size, factor).mean(axis=(1, 3))
    # the right hip is shown mirrored, as a left one: only the tube's heel effect is mirrored
    image = expose(A, rng, FOV_MM / size, mirrored=side == "right")
    return image, boxes


def _box(mask: np.ndarray, factor: int, size: int, pad: int) -> tuple[int, int, int, int]:
    """The padded box (x0, y0, x1, y1; exclusive ends) around a mask drawn `factor` times finer."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0, 0, size, size)
    y0, y1 = rows[0] // factor, -(-(rows[-1] + 1) // factor)
    x0, x1 = cols[0] // factor, -(-(cols[-1] + 1) // factor)
    return (int(max(x0 - pad, 0)), int(max(y0 - pad, 0)), int(min(x1 + pad, size)), int(min(y1 + pad, size)))
