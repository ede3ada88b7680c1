"""Gliomas: where they are, how they push the brain aside, and their BraTS sub-regions.

A tumour is a sphere deformed by smooth noise with a necrotic or non-enhancing core, an
enhancing rim and vasogenic oedema that spreads only through white and deep grey matter.
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


def plan_tumours(rng, head: Head) -> list[dict]:
    """Centre (head frame, mm), size, type and look of each tumour; most patients have one."""
    count = int(rng.choice(4, p=[0.1, 0.66, 0.17, 0.07]))
    b_axes = np.asarray(head.brain_axes)
    min_r = min(max(2.5, 1.2 * max(head.vox)), 20.0)  # at least ~a voxel across
    tumours = []
    for _ in range(count):
        radius = float(np.exp(rng.uniform(np.log(min_r), np.log(25.0))))
        p = [0.55, 0.2, 0.25] if radius > 8 else [0.15, 0.55, 0.3]
        kind = ("gbm", "solid", "low")[int(rng.choice(3, p=p))]
        # Not in the lowest slices, and far enough inside the brain for the tumour to fit.
        q = rng.uniform(-1, 1, 3)
        while np.linalg.norm(q) > 1 or q[0] < -0.35:
            q = rng.uniform(-1, 1, 3)
        room = 1.0 - (radius + 8.0) / float(b_axes.min())
        centre = q * max(room, 0.15) * b_axes * np.array([0.85, 0.85, 0.9])
        oedema = min(radius * rng.uniform(1.1, 1.7) + rng.uniform(0.0, 8.0), 42.0)
        if rng.random() < 0.2:
            oedema = radius * rng.uniform(1.02, 1.2)
        contrast = rng.uniform(0.5, 1.0) if rng.random() < 0.8 else rng.uniform(0.2, 0.5)
        tumours.append(dict(centre=centre, radius=radius, kind=kind, oedema=oedema,
                            contrast=contrast, necrosis=rng.uniform(0.4, 0.75),
                            rough=rng.uniform(0.15, 0.4), push=rng.uniform(0.3, 0.8)))
    return tumours


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
        if t["kind"] == "gbm":
            # An irregular enhancing rim 2-5 mm thick around the necrotic core; it stays at least
            # ~1.6 voxels thick, so coarse shapes still show it.
            rim_mm = 2.0 + 3.0 * (0.75 - t["necrosis"]) / 0.35
            rim = np.maximum(rim_mm * (1.0 + 0.45 * f_tex), 1.6 * min_vox)
            necrosis = 1.0 - rim * F32(1 / t["radius"])
            kind = np.where(rho_core < necrosis, NECROSIS, ENHANCING).astype(np.uint8)
            tex = np.where(kind == NECROSIS, F32(0.16), F32(0.14)) * f_tex
            amount = t["contrast"]
        elif t["kind"] == "solid":
            kind = np.full(rho_core.size, ENHANCING, dtype=np.uint8)
            tex = 0.12 * f_tex
            amount = t["contrast"]
        else:  # low grade: mostly non-enhancing, with enhancing patches
            kind = np.where(f_tex > 1.4, ENHANCING, NONENH).astype(np.uint8)
            tex = 0.08 * f_tex
            amount = max(t["contrast"], 0.35)
        labels[pts[core]] = kind[core]
        contrast[pts[core]] = amount
        texture[pts[core]] = tex[core]
    idx = np.nonzero(labels >= OEDEMA)[0]
    return idx, normal[idx], contrast[idx], texture[idx]


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
