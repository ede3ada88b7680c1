"""Lung nodules: how many, how large and of which attenuation; where they fit in the lung;
their lobulated or spiculated shapes, drawn with partial volume; and what is annotated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage, special

from pathosynth.data.nodules import ATTENUATIONS

from .geometry import Grid, unit

if TYPE_CHECKING:
    from .phantom import Phantom

_SQRT2 = float(np.sqrt(2.0))


@dataclass(frozen=True)
class Nodule:
    """One drawn nodule: world LPS centre in mm, effective diameter in mm, attenuation class."""

    world: tuple[float, float, float]
    diameter_mm: float
    attenuation: str


def place_nodules(ph: Phantom) -> None:
    """Draw 0-4 nodules into the lungs and append what was drawn to `ph.nodules`."""
    rng, g = ph.rng, ph.grid
    count = int(rng.choice([0, 1, 2, 3, 4], p=[0.12, 0.33, 0.27, 0.16, 0.12]))
    if count == 0:
        return
    # candidate centres come from a coarse distance-to-pleura map (cells of about 3 mm);
    # the exact check against the full-resolution lung mask follows
    f = np.maximum(1, np.rint(3.0 / g.spacing).astype(int))  # x, y, z steps
    coarse = ph.lung[::f[2], ::f[1], ::f[0]]
    if not coarse.any():
        return
    cell = g.spacing * f
    depth = ndimage.distance_transform_edt(coarse, sampling=(cell[2], cell[1], cell[0]))
    slack = float(np.linalg.norm(cell)) / 2
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(count):
        att = str(rng.choice(ATTENUATIONS, p=[0.5, 0.2, 0.3]))
        cls = int(rng.choice(3, p=[0.45, 0.35, 0.2]))
        diam = ph.uniform(*((4.0, 10.0), (10.0, 20.0), (20.0, 30.0))[cls])
        if att == "part-solid":
            diam = max(diam, ph.uniform(8, 12))
        elif att == "ggn":
            diam = max(diam, ph.uniform(5, 7))
        floor = 4.0 if att == "solid" else 5.0  # fainter and smaller would be invisible
        while diam >= floor:
            shape = _nodule_shape(ph, att, diam / 2)
            reach = shape["reach"]
            cand = np.flatnonzero(depth.ravel() >= reach + 1.5 + slack)
            nodule = None
            for _attempt in range(12 if len(cand) else 0):
                iz, iy, ix = np.unravel_index(cand[int(rng.integers(len(cand)))], depth.shape)
                c = g.origin + (np.array([ix, iy, iz]) + rng.uniform(-0.5, 0.5, 3)) * cell
                if any(np.linalg.norm(c - pc) < reach + pr + 3 for pc, pr in placed):
                    continue
                if not _ball_in_lung(g, ph.lung, c, reach + 1.5):
                    continue
                nodule = _draw_nodule(ph, c, shape)
                break
            if nodule is not None:
                ph.nodules.append(nodule)
                placed.append((c, reach))
                break
            diam *= 0.85  # it does not fit: try smaller


def _box(g: Grid, c: np.ndarray, radius: float):
    """Lower and upper (x, y, z) voxel indices of the box around a ball (not clipped)."""
    lo = np.floor(g.to_index(c - radius)).astype(int)
    hi = np.ceil(g.to_index(c + radius)).astype(int)
    return lo, hi


def _box_coords(g: Grid, lo, hi):
    """Local mm coordinates of the voxels of a box, as broadcastable z, y, x arrays."""
    x = g.X[lo[0]:hi[0] + 1].astype(float)[None, None, :]
    y = g.Y[lo[1]:hi[1] + 1].astype(float)[None, :, None]
    z = g.Z[lo[2]:hi[2] + 1].astype(float)[:, None, None]
    return z, y, x


def _ball_in_lung(g: Grid, lung: np.ndarray, c: np.ndarray, radius: float) -> bool:
    lo, hi = _box(g, c, radius)
    if np.any(lo < 0) or np.any(hi >= g.dims_xyz):
        return False
    sub = lung[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    zz, yy, xx = _box_coords(g, lo, hi)
    ball = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz - c[2]) ** 2 <= radius * radius
    return bool(sub[ball].all())


def _nodule_shape(ph: Phantom, att: str, r0: float) -> dict:
    """Random shape and density of one nodule of nominal radius r0; ``reach`` bounds it."""
    rng, U = ph.rng, ph.uniform
    lob = {"solid": U(0.08, 0.3), "part-solid": U(0.08, 0.22), "ggn": U(0.08, 0.22)}[att]
    waves = _waves(ph, lob)
    spikes = []
    if att == "solid" and rng.uniform() < 0.4 and r0 > 3:
        for _ in range(int(rng.integers(5, 14))):
            spikes.append((unit(rng.normal(0, 1, 3)), r0 * U(0.4, 1.2), U(40, 160)))
    edge = {"solid": 0.35 * ph.sxy, "part-solid": 0.6, "ggn": U(0.8, 1.6)}[att]
    hu = {"solid": U(20, 60), "part-solid": U(-500, -300), "ggn": U(-700, -400)}[att]
    shape = dict(att=att, r0=r0, waves=waves, spikes=spikes, edge=edge, hu=hu)
    if att == "part-solid":
        shape["core_r"] = r0 * U(0.25, 0.5)
        shape["core_waves"] = _waves(ph, U(0.1, 0.25))
        shape["core_off"] = unit(rng.normal(0, 1, 3)) * (r0 - shape["core_r"]) * U(0, 0.5)
        shape["core_hu"] = U(20, 50)
    spike = max((sp[1] for sp in spikes), default=0.0)
    shape["reach"] = r0 * (1 + 2.3 * lob) + spike + 3 * edge
    return shape


def _waves(ph: Phantom, amplitude: float) -> list:
    """Smooth random radial deformation: a few plane waves over the unit sphere."""
    waves = [(unit(ph.rng.normal(0, 1, 3)) * ph.uniform(1.5, 5.0), ph.uniform(0, 2 * np.pi),
              ph.normal(1)) for _ in range(5)]
    norm = float(np.sqrt(sum(a * a for _, _, a in waves))) or 1.0
    return [(w, phase, amplitude * a / norm) for w, phase, a in waves]


def _radius_field(ux, uy, uz, r0, waves, spikes):
    """Surface radius along unit directions (ux, uy, uz): lobulation waves, then spicules."""
    R = np.ones_like(ux)
    for w, phase, a in waves:
        R += a * np.cos(w[0] * ux + w[1] * uy + w[2] * uz + phase)
    R *= r0
    for sdir, length, power in spikes:
        R += length * np.maximum(0, sdir[0] * ux + sdir[1] * uy + sdir[2] * uz) ** power
    return R


def _draw_nodule(ph: Phantom, c: np.ndarray, shape: dict) -> Nodule | None:
    """Paint one nodule centred near c; return its annotation (None if nothing was drawn)."""
    rng, g = ph.rng, ph.grid
    lo, hi = _box(g, c, shape["reach"])
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, g.dims_xyz - 1)
    zz, yy, xx = _box_coords(g, lo, hi)
    dx, dy, dz = np.broadcast_arrays(xx - c[0], yy - c[1], zz - c[2])
    dist = np.sqrt(dx * dx + dy * dy + dz * dz)
    safe = np.maximum(dist, 1e-6)
    R = _radius_field(dx / safe, dy / safe, dz / safe, shape["r0"], shape["waves"],
                      shape["spikes"])
    occ = 0.5 * special.erfc((dist - R) / (_SQRT2 * shape["edge"]))
    occ[(occ < 1e-3) | (dist > shape["reach"])] = 0  # only inside the ball checked to be lung
    total = float(occ.sum())
    if total <= 0:
        return None
    diameter = (6 * total * float(np.prod(g.spacing)) / np.pi) ** (1 / 3)
    centroid = np.array([(occ * xx).sum(), (occ * yy).sum(), (occ * zz).sum()]) / total
    box = ph.img[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
    target = np.full(occ.shape, shape["hu"])
    if shape["att"] in ("ggn", "part-solid"):
        # hazy, heterogeneous ground glass; vessels stay visible through it
        het = np.zeros_like(dist)
        for _ in range(4):
            w = unit(rng.normal(0, 1, 3)) * ph.uniform(0.6, 1.4)
            het += np.cos(w[0] * dx + w[1] * dy + w[2] * dz + ph.uniform(0, 6.3))
        target += ph.uniform(20, 50) * het / 2
    elif shape["att"] == "solid":
        target += rng.normal(0, 6, occ.shape)
    np.maximum(box, box + occ * (target - box), out=box, casting="unsafe")
    if shape["att"] == "part-solid":
        cc = c + shape["core_off"]
        cx, cy, cz = np.broadcast_arrays(xx - cc[0], yy - cc[1], zz - cc[2])
        cd = np.sqrt(cx * cx + cy * cy + cz * cz)
        cs = np.maximum(cd, 1e-6)
        Rc = _radius_field(cx / cs, cy / cs, cz / cs, shape["core_r"], shape["core_waves"], [])
        core = 0.5 * special.erfc((cd - Rc) / (_SQRT2 * 0.35 * ph.sxy))
        np.maximum(box, box + core * (shape["core_hu"] - box), out=box, casting="unsafe")
    world = centroid - g.origin + np.asarray(ph.origin_xyz, dtype=float)
    return Nodule((float(world[0]), float(world[1]), float(world[2])), float(diameter),
                  shape["att"])
