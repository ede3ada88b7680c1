"""One phantom patient: the draws that fix its scan and build, and the order in which the
anatomy is drawn. Every random number comes from the patient's one generator, in a fixed
order, so reordering any step changes every image after it."""

from __future__ import annotations

import numpy as np

from .acquisition import AIR_HU, draw_sampling, reconstruct
from .body import Habitus, draw_body, draw_table
from .cavity import paint_cavity
from .geometry import Grid
from .lungs import carve_lungs
from .mediastinum import lay_out_mediastinum
from .nodules import Nodule, place_nodules
from .skeleton import draw_skeleton
from .trees import grow_trees


class Phantom:
    """One patient. Lengths are mm; `k` scales in-plane anatomy and `kz` through-plane anatomy
    (both 1 for a 300 mm field of view and 175 mm of z coverage).

    The drawing steps are functions in the sibling modules; each reads what earlier steps left
    on the phantom (masks, landmarks, tube pieces) and adds its own."""

    def __init__(self, rng: np.random.Generator, size: str):
        self.rng = rng
        self.nodules: list[Nodule] = []
        U = self.uniform
        sxy, nxy, sz, nz = draw_sampling(rng, size)
        self.sxy = sxy
        self.spacing_zyx = (sz, sxy, sxy)
        fov = nxy * sxy
        self.k = k = fov / 300.0
        self.Lz = nz * sz
        self.kz = self.Lz / 175.0
        self.habitus = hab = Habitus.draw(rng, k)

        # world placement: FOV centre, body centre, table below the body
        cxw, cyw = round(U(-25, 25), 1), round(U(-25, 25), 1)
        ox = round(cxw - (nxy - 1) / 2 * sxy, 2)
        oy = round(cyw - (nxy - 1) / 2 * sxy, 2)
        oz = round(U(-380, -120), 2)
        self.origin_xyz = (ox, oy, oz)
        half = fov / 2
        max_off = max(0.0, half - 6 * k - hab.half_width)
        bx = cxw + U(-1, 1) * min(6 * k, max_off)
        y_lo = -half + 6 * k + hab.half_depth_front
        y_hi = half - 34 * k - hab.half_depth_back
        by = cyw + (U(y_lo, y_hi) if y_hi > y_lo else (y_lo + y_hi) / 2)
        # the patient frame has the body axis at x = y = 0 and z = 0 at the lowest slice
        self.grid = Grid((nz, nxy, nxy), (sxy, sxy, sz), (ox - bx, oy - by, 0.0))

        # acquisition
        self.noise_sigma = U(10, 30)
        self.kernel_centre = U(0.45, 0.65)
        self.psf_sigma = 0.45 * sxy

    def uniform(self, a: float, b: float) -> float:
        return float(self.rng.uniform(a, b))

    def normal(self, sd: float) -> float:
        return float(self.rng.normal(0.0, sd))

    def build(self) -> np.ndarray:
        """Draw the patient and return the scanner's int16 HU volume (z, y, x)."""
        self.img = np.full(self.grid.shape, AIR_HU, dtype=np.float32)
        draw_body(self)
        draw_table(self)
        draw_skeleton(self)
        lay_out_mediastinum(self)
        carve_lungs(self)
        grow_trees(self)
        paint_cavity(self)
        place_nodules(self)
        return reconstruct(self.img, self.rng, self.kernel_centre, self.noise_sigma)
