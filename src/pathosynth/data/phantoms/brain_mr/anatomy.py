"""The tissue label of every head voxel: scalp, skull and everything inside it.

Depths are signed distances in mm, positive inward: ``depth`` below the skin, ``d_env`` below
the brain's outer envelope, ``d_brain`` below the nearest brain surface (envelope or fissure).
"""

from __future__ import annotations

import numpy as np

from pathosynth.data.phantoms.brain_mr.cortex import paint_cortex
from pathosynth.data.phantoms.brain_mr.deep import paint_deep_structures
from pathosynth.data.phantoms.brain_mr.fields import F32, ellipsoid_r2, points_near
from pathosynth.data.phantoms.brain_mr.head import Head
from pathosynth.data.phantoms.brain_mr.surfaces import carve_fissures
from pathosynth.data.phantoms.brain_mr.tissues import (
    AIR,
    BONE,
    CSF,
    DURA,
    FAT,
    MARROW,
    MUSCLE,
    SINUS,
    SKIN,
)
from pathosynth.data.phantoms.brain_mr.metastases import plan_metastases
from pathosynth.data.phantoms.brain_mr.tumours import mass_effect, paint_tumours, plan_gliomas

DISEASES = {"glioma": plan_gliomas, "metastases": plan_metastases}


def label_map(rng: np.random.Generator, head: Head, disease: str = "glioma"):
    """Tissue label of every head voxel (1D, uint8), the tumour blending data, and the brain.

    ``stripped`` marks the head voxels a skull-stripping tool keeps: inside the dura, less the
    bone, air and orbital fat of the skull base.
    """
    depth = head.depth
    uz, uy, ux = head.u
    field_50mm = head.field(rng, 50.0)
    field_20mm = head.field(rng, 20.0)
    labels, t_skull, t_csf = _scalp_and_skull(head, field_50mm, field_20mm)

    # Everything inside the dura: 1D arrays over the intracranial voxels.
    ic = np.nonzero(depth > t_skull + 0.7)[0]
    Bz, By, Bx = head.brain_axes
    tumours = DISEASES[disease](rng, head)
    ub = (uz[ic], uy[ic], ux[ic])  # unwarped
    bz, by, bx = (a.copy() for a in ub)
    for t in tumours:
        mass_effect(t, ub, (bz, by, bx))
    nz, ny, nx = bz * F32(1 / Bz), by * F32(1 / By), bx * F32(1 / Bx)
    lab = labels[ic]
    d_env = depth[ic] - t_csf[ic]
    d_brain = d_env.copy()
    stem, cerebellum, falx, d_mid, base = carve_fissures(head, d_brain, bx, (nz, ny, nx))
    brain = paint_cortex(rng, head, lab, d_brain, d_env, d_mid, cerebellum, ic, bx, field_50mm)
    del d_mid, d_env

    lab[falx & ~brain] = DURA
    sss = (np.abs(bx) < 2.5 + 0.6 * (t_csf[ic] - depth[ic])) & (d_brain < 0) \
        & (depth[ic] < t_csf[ic] + 0.5) & (nz > -0.35) & ~base
    lab[sss] = SINUS
    del sss, falx

    paint_deep_structures(rng, head, lab, brain, (bz, by, bx), (nz, ny, nx), stem, cerebellum)
    _skull_base(lab, base, nz, ny, nx, field_20mm[ic])
    labels[ic] = lab
    _orbits(head, labels)
    blend = paint_tumours(rng, head, labels, ic, ub, d_brain, tumours)
    stripped = np.zeros(labels.size, dtype=bool)
    stripped[ic] = True
    stripped &= ~np.isin(labels, (AIR, SKIN, FAT, MUSCLE, BONE, MARROW))  # skull base, orbital fat
    return labels, blend, stripped


def _scalp_and_skull(head: Head, field_50mm: np.ndarray, field_20mm: np.ndarray):
    """Label the layers from the skin down to the CSF under the dura.

    Each boundary is a depth that varies smoothly; returns the labels and the depths of the
    inner skull surface and of the brain envelope.
    """
    depth = head.depth
    uz, _, ux = head.u
    labels = np.full(head.size, SKIN, dtype=np.uint8)
    # The temporalis muscle: thick over the sides of the head, low down.
    lateral = np.clip((np.abs(ux) * F32(1 / head.axes[2]) - 0.55) * F32(1 / 0.4), 0, 1)
    lateral *= np.clip((0.3 - uz * F32(1 / head.axes[0])) * F32(1 / 0.6), 0, 1)
    t_skin = head.skin + 0.25 * field_20mm
    t_fat = t_skin + head.fat * (1.0 + 0.15 * field_50mm) * (1.0 - 0.6 * lateral)
    t_muscle = t_fat + 0.8 + 10.0 * lateral
    t_skull = t_muscle + head.skull * (1.0 + 0.1 * field_20mm)
    t_csf = t_skull + 0.7 + head.csf * (1.0 + 0.2 * field_50mm)
    labels[depth > t_skin] = FAT
    labels[depth > t_fat] = MUSCLE
    labels[depth > t_muscle] = BONE
    diploe = ((depth > t_muscle + 1.5) & (depth < t_skull - 1.3)
              & (field_20mm > -0.3))
    labels[diploe] = MARROW
    labels[depth > t_skull] = DURA
    labels[depth > t_skull + 0.7] = CSF
    return labels, t_skull, t_csf


def _skull_base(lab, base, nz, ny, nx, field_20mm):
    """Bone under the frontal lobes and around the sella, with marrow and a sphenoid sinus."""
    pts = np.nonzero(base)[0]
    sub = np.full(pts.size, BONE, dtype=np.uint8)
    sub[field_20mm[pts] > 1.0] = MARROW
    p = (nz[pts], ny[pts], nx[pts])
    sub[ellipsoid_r2(p, (-0.72, -0.3, 0.0), (0.16, 0.2, 0.17)) < 1.0] = AIR  # sphenoid sinus
    sub[ellipsoid_r2(p, (-0.75, -0.8, 0.0), (0.2, 0.3, 0.12)) < 1.0] = AIR  # ethmoid cells
    lab[pts] = sub


def _orbits(head: Head, labels):
    """Eyes in orbital fat, just behind the skin at the front of the lowest slices."""
    Bz, _, Bx = head.brain_axes
    az, ay, ax = head.axes
    uz, uy, ux = head.u
    for side in (-1.0, 1.0):
        cz, cx = -0.8 * Bz, side * 0.42 * Bx
        inside = 1.0 - (cz / az) ** 2 - (cx / ax) ** 2
        if inside < 0.15:  # the head is too small there for an orbit
            continue
        c = (cz, -ay * np.sqrt(inside) + 14.0, cx)
        pts = points_near(head.u, (c[0], c[1] + 10.0, c[2]), 26.0)
        if pts.size == 0:
            continue
        p = (uz[pts], uy[pts], ux[pts])
        fat = ellipsoid_r2(p, (c[0], c[1] + 9.0, c[2]), (11.0, 19.0, 12.0)) < 1.0
        eye = ellipsoid_r2(p, c, (11.5, 12.0, 11.5)) < 1.0
        sub = labels[pts]
        sub[fat & (sub != AIR) & (sub != SKIN)] = FAT
        sub[eye] = CSF
        labels[pts] = sub
