"""Gliomas: where they are; and for every brain tumour, how it pushes the brain aside and its
BraTS sub-regions.

A tumour is a sphere deformed by smooth noise with a necrotic or non-enhancing core, an
enhancing rim and vasogenic oedema that spreads only through white and deep grey matter.
``metastases.plan_metastases`` plans the other cohort's lesions; both are painted here.
"""

from __future__ import annotations

import numpy as np

from pathosynth.data.phantoms.brain_mr.fields import F32, points_near, smooth_field
from pathosynth.data.phantoms.brain_mr.head import Head
from pathosynth.data.phantoms.brain_mr.tissues import (
    DGM,
    ENHANCING,
    NECROSIS,
    NONENH,
    OEDEMA,
    WM,
    WMH,
)


def plan_gliomas(rng, head: Head) -> list[dict]:
    """High-grade gliomas as in BraTS HGG: one per patient (sometimes a second, multifocal one).

    Tumour-core radius log-normal around 21 mm (5-95%: about 12-32 mm), so that the volumes are
    BraTS HGG's (medians: whole tumour ~90 cm^3, core ~45, enhancing ~25); mostly
    glioblastoma-like (necrotic core, thick enhancing rim), some solid or weakly enhancing; oedema
    reaching 1.15-1.45 core radii plus 2-9 mm, a tenth with little oedema; a tenth faint. Anywhere
    in one hemisphere from the temporal lobe to the high convexity, so that no slice level is
    always tumour (a classifier would learn the level instead of the lesion).
    """
    count = 1 + int(rng.choice(3, p=[0.85, 0.12, 0.03]))
    b_axes = np.asarray(head.brain_axes)
    smallest = max(5.0, 1.2 * max(head.vox))  # and at least ~a voxel across
    tumours = []
    for index in range(count):
        median = 21.0 if index == 0 else 8.0  # a multifocal tumour's satellites are smaller
        radius = float(np.clip(median * np.exp(0.33 * rng.standard_normal()), smallest, 32.0))
        kind = ("gbm", "solid", "low")[int(rng.choice(3, p=[0.78, 0.12, 0.10]))]
        # Keep the core about 8 mm inside the brain's envelope along every axis.
        room = np.maximum(b_axes - radius - 8.0, 0.15 * b_axes)
        centre = _hemisphere_point(rng) * room
        oedema = min(radius * rng.uniform(1.15, 1.45) + rng.uniform(2.0, 9.0), 50.0)
        if rng.random() < 0.1:
            oedema = radius * rng.uniform(1.02, 1.15)
        contrast = rng.uniform(0.8, 1.0) if rng.random() < 0.9 else rng.uniform(0.3, 0.6)
        tumours.append(dict(centre=centre, radius=radius, kind=kind, oedema=oedema,
                            contrast=contrast, necrosis=rng.uniform(0.4, 0.75),
                            rough=rng.uniform(0.15, 0.4), push=rng.uniform(0.3, 0.8)))
    return tumours


def _hemisphere_point(rng) -> np.ndarray:
    """A point of the unit ball (z, y, x) in one cerebral hemisphere, off the midline: above the
    tentorium, or low down in the front and side (the temporal lobe)."""
    while True:
        q = rng.uniform(-1, 1, 3)
        temporal = abs(q[2]) >= 0.45 and q[1] < 0.35
        if np.linalg.norm(q) <= 1 and abs(q[2]) >= 0.2 and q[0] >= (-0.8 if temporal else -0.4):
            return q


def mass_effect(t: dict, ub, b) -> None:
    """Warp brain coordinates b so the anatomy is pushed radially away from the tumour centre.

    ub are the unwarped coordinates; b (the same points) is updated in place. The warp displaces
    the volume of ``push`` x the tumour's sphere and fades out beyond about two radii.
    """
    if t["radius"] < 6.0:
        return
    pts = points_near(ub, t["centre"], 3.0 * t["radius"] + 10.0)
    c = t["centre"]
    deltas = [ub[i][pts] - F32(c[i]) for i in range(3)]
    d = np.sqrt(deltas[0] ** 2 + deltas[1] ** 2 + deltas[2] ** 2) + F32(1e-3)
    d0 = np.cbrt(np.maximum(d ** 3 - F32(t["push"] * t["radius"] ** 3), 0.0))
    taper = np.exp(-((d * F32(1.0 / (2.2 * t["radius"] + 6.0))) ** 2))
    f = (d - taper * (d - d0)) / d
    for arr, delta, cc in zip(b, deltas, c):
        arr[pts] = F32(cc) + delta * f


def paint_tumours(rng, head: Head, labels, ic, ub, d_brain, tumours):
    """Paint oedema, then cores; return (voxels, normal label, contrast, texture) for blending.

    The blend lets a faint tumour (low contrast) show partly the normal tissue it replaced.
    """
    if not tumours:
        return None
    normal = labels.copy()
    contrast = np.zeros(labels.size, dtype=F32)
    texture = np.zeros(labels.size, dtype=F32)
    inside = np.zeros(labels.size, dtype=bool)
    inside[ic[d_brain > -2.0]] = True  # the brain and its sulci, fissures and ventricles
    min_vox = max(head.vox)
    cores = []
    for t in tumours:
        reach = 1.45 * max(t["oedema"], t["radius"]) + 3.0
        near = points_near(ub, t["centre"], reach)
        pts = ic[near]
        c = t["centre"]
        d = np.sqrt(sum((ub[i][near] - F32(c[i])) ** 2 for i in range(3)))
        f_core, f_oed, f_tex = _local_fields(rng, head, pts, t)
        # The outline factors stay >= 0.7 so the shapes end inside the box of `reach`.
        rho_core = d * F32(1 / t["radius"]) * np.maximum(1.0 + F32(t["rough"]) * f_core, 0.7)
        rho_oed = d * F32(1 / t["oedema"]) * np.maximum(1.0 + 0.35 * f_oed, 0.7)
        sub = labels[pts]
        spread = np.isin(sub, (WM, DGM, WMH, OEDEMA)) & (rho_oed < 1.0)
        labels[pts[spread]] = OEDEMA
        contrast[pts[spread]] = t["contrast"]
        texture[pts[spread]] = 0.06 * f_tex[spread]
        cores.append((pts, rho_core, f_tex))
    for t, (pts, rho_core, f_tex) in zip(tumours, cores):
        core = (rho_core < 1.0) & inside[pts]
        kind, tex, amount = _core_look(t, rho_core, f_tex, min_vox)
        labels[pts[core]] = kind[core]
        contrast[pts[core]] = amount
        texture[pts[core]] = tex[core]
    idx = np.nonzero(labels >= OEDEMA)[0]
    return idx, normal[idx], contrast[idx], texture[idx]


def _core_look(t: dict, rho_core, f_tex, min_vox: float):
    """Sub-region label, texture and contrast of a tumour core's points."""
    if t["kind"] in ("gbm", "ring"):
        # A necrotic centre inside an irregular enhancing rim: 4-9 mm for a glioblastoma (thicker
        # with less necrosis; BraTS HGG enhancing volumes need it, and a thinner rim fades at the
        # classifier's 64 px), the drawn ``rim_mm`` for a ring-enhancing metastasis; at least ~1.6
        # voxels thick, so coarse shapes still show it.
        rim_mm = t.get("rim_mm", 4.0 + 5.0 * (0.75 - t["necrosis"]) / 0.35)
        rim = np.maximum(rim_mm * (1.0 + 0.45 * f_tex), 1.6 * min_vox)
        necrosis = 1.0 - rim * F32(1 / t["radius"])
        kind = np.where(rho_core < necrosis, NECROSIS, ENHANCING).astype(np.uint8)
        tex = np.where(kind == NECROSIS, F32(0.16), F32(0.14)) * f_tex
        return kind, tex, t["contrast"]
    if t["kind"] == "solid":
        return np.full(rho_core.size, ENHANCING, dtype=np.uint8), 0.12 * f_tex, t["contrast"]
    # low grade or weakly enhancing: mostly non-enhancing, with enhancing patches
    kind = np.where(f_tex > 1.4, ENHANCING, NONENH).astype(np.uint8)
    return kind, 0.08 * f_tex, max(t["contrast"], 0.35)


def _local_fields(rng, head: Head, pts, t: dict):
    """Smooth fields at a tumour's points: core outline, oedema outline and texture.

    They are drawn on the crop box around the points only, which is far cheaper than the head.
    """
    iz, iy, ix = head.crop_index(pts)
    lo = [int(a.min()) if pts.size else 0 for a in (iz, iy, ix)]
    hi = [int(a.max()) + 1 if pts.size else 1 for a in (iz, iy, ix)]
    box = tuple(high - low for low, high in zip(lo, hi))
    local = ((iz - lo[0]) * box[1] + iy - lo[1]) * box[2] + ix - lo[2]
    del iz, iy, ix
    f_core = smooth_field(rng, box, head.vox, max(3.0, 0.6 * t["radius"])).ravel()[local]
    f_oed = smooth_field(rng, box, head.vox, max(4.0, 0.5 * t["oedema"])).ravel()[local]
    f_tex = smooth_field(rng, box, head.vox, 3.0).ravel()[local]
    return f_core, f_oed, f_tex
