"""Per-patient head geometry: shape, pose, layer thicknesses and the head voxels.

The head voxels are kept as 1D arrays rather than 3D volumes: the label map and every sequence
only ever need values at the voxels inside the head, and the air around it is most of the field.
"""

from __future__ import annotations

import numpy as np

from pathosynth.data.phantoms.brain_mr.fields import F32, smooth_field

# The physical field the anatomy is laid out for, [z, y, x] mm. A smaller output shape gives the
# same anatomy at a coarser resolution.
FIELD_MM = (155.0, 240.0, 240.0)


class Head:
    """Per-patient geometry and the head voxels.

    ``flat`` indexes the head voxels in the crop (C order), ``u`` holds their head-frame
    coordinates in mm (superior, posterior, left of the head centre), ``depth`` their depth
    below the skin in mm, ``lr`` their index in a half-resolution crop (for smooth fields).
    """

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int], registered: bool = False):
        self.shape = shape
        self.vox = tuple(f / n for f, n in zip(FIELD_MM, shape))  # virtual mm per voxel
        u = rng.uniform
        self.axes = (u(84, 96), u(88, 101), u(69, 80))  # semi-axes (z, y, x), mm
        # The head's centre near slice 73, as in BraTS's atlas space: slices 30-130 then run from
        # the temporal lobes and cerebellum to the high convexity, as the papers' range does.
        self.centre = (u(70, 76), 120 + u(-8, 8), 120 + u(-6, 6))
        self.rot = rotation(np.deg2rad(u(-9, 9)), np.deg2rad(u(-7, 7)), np.deg2rad(u(-4, 4)))
        if registered:
            # Rigidly registered to an atlas, as BraTS is: the pose is drawn (the stream stays the
            # same) but the head is centred and upright; its size and shape still vary.
            self.centre, self.rot = (73.0, 120.0, 120.0), np.eye(3)
        self.egg = u(0.0, 0.08)  # wider at the back than at the front
        self.skin = u(1.4, 2.4)
        self.fat = u(2.0, 4.5)
        self.skull = u(4.5, 7.0)
        self.csf = u(1.2, 3.2)
        self.atrophy = u(0.0, 1.0) ** 2
        self.ventricle_scale = u(0.8, 1.15) + 0.6 * self.atrophy
        self.sulcus_depth = u(12.0, 18.0)
        self.gm_thickness = u(2.5, 3.1)
        self.gyrus_sigma = u(1.7, 2.2)  # folding scale, in sulcal-noise grid cells
        self.folium_mm = u(4.0, 5.5)
        outer = self.skin + self.fat + 1.0 + self.skull + self.csf + 0.8
        self.brain_axes = tuple(a - outer for a in self.axes)

        lo, hi = _crop_box(self.centre, self.axes, self.rot, self.vox, shape)
        self.start = lo
        self.crop_shape = tuple(int(b - a) for a, b in zip(lo, hi))
        # Candidates: a slightly inflated ellipsoid, to hold the egg shape and the lumps below.
        limit = (1.045 * (1.0 + self.egg)) ** 2
        rows, ix, counts, (uz, uy, ux) = _rows_inside(self, lo, hi, limit)
        self.half_shape = tuple((n + 1) // 2 for n in self.crop_shape)
        hz, hy = np.divmod(np.arange(counts.size), self.crop_shape[1])
        row_lr = ((hz // 2) * self.half_shape[1] + hy // 2) * self.half_shape[2]
        self.lr = np.repeat(row_lr, counts) + ix // 2

        # Normalised radius of the egg-shaped, slightly lumpy head; keep the voxels inside.
        az, ay, _ = self.axes
        lumps = self.field(rng, 45.0)
        rr = (uz * F32(1 / az)) ** 2
        rr += (uy * F32(1 / ay)) ** 2
        rr += (ux * self._inv_ax(uy)) ** 2
        np.sqrt(rr, out=rr)
        lumps *= F32(0.012)
        lumps += F32(1.0)
        rr *= lumps
        del lumps
        keep = np.nonzero(rr < 1.0)[0]
        rr = rr[keep]
        self.u = (uz[keep], uy[keep], ux[keep])
        self.flat = rows[keep] * self.crop_shape[2] + ix[keep]
        self.lr = self.lr[keep]
        del uz, uy, ux, rows, ix
        self.depth = self._depth_below_skin(rr)

    def _depth_below_skin(self, rr: np.ndarray) -> np.ndarray:
        """Depth below the skin (mm) of the head voxels, to first order: (1 - r) / |grad r|."""
        az, ay, _ = self.axes
        uz, uy, ux = self.u
        inv_ax = self._inv_ax(uy)
        grad = (uz * F32(1 / az ** 2)) ** 2
        grad += (uy * F32(1 / ay ** 2)) ** 2
        grad += (ux * inv_ax * inv_ax) ** 2
        np.sqrt(grad, out=grad)
        return (1.0 - rr) * rr / np.maximum(grad, F32(1e-9))

    def _inv_ax(self, uy: np.ndarray) -> np.ndarray:
        """1 / the left-right semi-axis at each point: the egg is wider at the back."""
        return F32(1.0 / self.axes[2]) / (1.0 + F32(self.egg / self.axes[1]) * uy)

    @property
    def size(self) -> int:
        return self.depth.size

    def field(self, rng: np.random.Generator, corr_mm: float) -> np.ndarray:
        """A smooth unit-variance field clipped to +-2 at the head voxels (half resolution)."""
        half_vox = tuple(2 * v for v in self.vox)
        f = smooth_field(rng, self.half_shape, half_vox, corr_mm)
        return np.clip(f, -2.0, 2.0, out=f).ravel()[self.lr]

    def direction(self, pts: np.ndarray) -> list[np.ndarray]:
        """Unit direction from the head centre in the head's normalised frame, at some points."""
        q = [self.u[0][pts] * F32(1 / self.axes[0]), self.u[1][pts] * F32(1 / self.axes[1])]
        q.append(self.u[2][pts] * self._inv_ax(self.u[1][pts]))
        norm = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2) + F32(1e-6)
        return [c / norm for c in q]

    def crop_index(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Crop (z, y, x) indices of some head points."""
        zy, x = np.divmod(self.flat[pts], self.crop_shape[2])
        z, y = np.divmod(zy, self.crop_shape[1])
        return z, y, x

    def output_index(self) -> np.ndarray:
        """Flat index of each head voxel in a C-ordered ``[x, y, z]`` array of the full shape."""
        nz, ny, _ = self.shape
        z, y, x = self.crop_index(slice(None))
        z += int(self.start[0])
        y += int(self.start[1])
        x += int(self.start[2])
        return (x * ny + y) * nz + z


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation acting on (z, y, x) vectors: yaw about z, pitch about x, roll about y."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[1, 0, 0], [0, cy, -sy], [0, sy, cy]])
    r_pitch = np.array([[cp, -sp, 0], [sp, cp, 0], [0, 0, 1]])
    r_roll = np.array([[cr, 0, -sr], [0, 1, 0], [sr, 0, cr]])
    return r_roll @ r_pitch @ r_yaw


def _crop_box(centre, axes, rot, vox, shape) -> tuple[np.ndarray, np.ndarray]:
    """First and past-the-end voxel index (z, y, x) of the rotated head's box, with a margin."""
    half = np.sqrt(((rot * np.asarray(axes)[:, None]) ** 2).sum(axis=0)) * 1.1 + 3.0
    lo = np.maximum(np.floor((np.asarray(centre) - half) / vox).astype(int), 0)
    hi = np.minimum(np.ceil((np.asarray(centre) + half) / vox).astype(int), shape)
    return lo, hi


def _rows_inside(head: Head, lo: np.ndarray, hi: np.ndarray, limit: float):
    """The crop voxels with p^T M p < limit (the rotated ellipsoid), in C order.

    Each x row crosses the ellipsoid in one interval, found from a quadratic, so no 3D array is
    needed. Returns each voxel's row (z * ny + y) and x index, the voxel count per row, and the
    voxels' head-frame coordinates (z, y, x) in mm.
    """
    rot, vox = head.rot, head.vox
    grids = [((np.arange(a, b) + 0.5) * v - c).astype(F32)
             for a, b, v, c in zip(lo, hi, vox, head.centre)]
    m = rot.T @ np.diag(1.0 / np.asarray(head.axes) ** 2) @ rot
    gz, gy, gx = grids
    zz, yy = gz[:, None].astype(float), gy[None, :].astype(float)
    a2 = m[0, 0] * zz ** 2 + 2 * m[0, 1] * zz * yy + m[1, 1] * yy ** 2
    b2 = 2 * (m[0, 2] * zz + m[1, 2] * yy)
    disc = np.maximum(b2 ** 2 - 4 * m[2, 2] * (a2 - limit), 0.0)
    x0 = float(head.centre[2]) / vox[2] - 0.5 - int(lo[2])
    i_lo = np.ceil((-b2 - np.sqrt(disc)) / (2 * m[2, 2]) / vox[2] + x0)
    i_hi = np.floor((-b2 + np.sqrt(disc)) / (2 * m[2, 2]) / vox[2] + x0) + 1
    i_lo = np.clip(i_lo, 0, head.crop_shape[2]).astype(np.int64).ravel()
    i_hi = np.clip(i_hi, 0, head.crop_shape[2]).astype(np.int64).ravel()
    counts = np.where(disc.ravel() > 0, np.maximum(i_hi - i_lo, 0), 0)
    rows = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    ix = np.arange(rows.size) - np.repeat(starts - i_lo, counts)
    row_u = [(rot[i, 0] * zz + rot[i, 1] * yy).astype(F32).ravel() for i in range(3)]
    px = gx[ix]
    u = tuple(np.repeat(row_u[i], counts) + F32(rot[i, 2]) * px for i in range(3))
    return rows, ix, counts, u
