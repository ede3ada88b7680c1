"""Shared drawing tools: the voxel grid in the patient frame, tapered tubes drawn with partial
volume, smooth random fields and a 3-tap filter. Work arrays are float32 to halve memory."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def unit(v: np.ndarray) -> np.ndarray:
    """v scaled to length 1 along its last axis (zero vectors stay near zero)."""
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


def superellipse_radius(cos_t, sin_t, a, b_front, b_back, p):
    """Boundary radius along each ray of a superellipse with different front/back half-depths."""
    b = np.where(sin_t < 0, b_front, b_back)
    return (np.abs(cos_t / a) ** p + np.abs(sin_t / b) ** p) ** (-1.0 / p)


def tube_profile(d: np.ndarray, r: np.ndarray, sigma: float) -> np.ndarray:
    """Partial-volume occupancy of a tube of radius r at distance d from its axis: a smooth
    edge about 4 sigma wide; tubes thinner than the blur keep their cross-section area."""
    x = np.clip((r - d) * (1.0 / (4 * sigma)) + 0.5, 0, 1)
    sharp = x * x * (3 - 2 * x)
    thin = (r * r) * (1.0 / (2 * sigma * sigma)) * np.exp(d * d * (-1.0 / (2 * sigma * sigma)))
    return np.where(r < 1.5 * sigma, np.minimum(sharp, thin), sharp)


class Grid:
    """Voxel grid in the patient frame: local mm of voxel centres along x, y, z."""

    def __init__(self, shape_zyx, spacing_xyz, origin_local_xyz):
        self.shape = tuple(int(n) for n in shape_zyx)
        self.spacing = np.asarray(spacing_xyz, dtype=float)
        self.origin = np.asarray(origin_local_xyz, dtype=float)
        nz, ny, nx = self.shape
        self.X = (self.origin[0] + np.arange(nx) * self.spacing[0]).astype(np.float32)
        self.Y = (self.origin[1] + np.arange(ny) * self.spacing[1]).astype(np.float32)
        self.Z = (self.origin[2] + np.arange(nz) * self.spacing[2]).astype(np.float32)
        self.dims_xyz = np.array([nx, ny, nz])

    def to_index(self, p_xyz: np.ndarray) -> np.ndarray:
        """Continuous (x, y, z) indices of local mm points, shape (..., 3)."""
        return (np.asarray(p_xyz, dtype=float) - self.origin) / self.spacing

    def lookup(self, mask: np.ndarray, p_xyz: np.ndarray) -> np.ndarray:
        """mask at the voxels nearest to points (False outside the grid)."""
        idx = np.rint(self.to_index(p_xyz)).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < self.dims_xyz), axis=-1)
        out = np.zeros(idx.shape[:-1], dtype=bool)
        i = idx[inside]
        out[inside] = mask[i[:, 2], i[:, 1], i[:, 0]]
        return out


def rasterize_tubes(grid: Grid, p0, p1, r0, r1, out: np.ndarray, *, sigma: float,
                    margin: float = 0.0, hard: bool = False) -> tuple[slice, slice, slice] | None:
    """Draw tapered tube pieces into `out`: scatter-max of partial-volume occupancy (float32
    `out`), or, with ``hard``, set True where a voxel centre lies within radius + margin (bool).
    Returns the (z, y, x) slices of the box that holds everything drawn, or None."""
    p0 = np.atleast_2d(np.asarray(p0, dtype=float))
    p1 = np.atleast_2d(np.asarray(p1, dtype=float))
    r0 = np.broadcast_to(np.asarray(r0, dtype=float), (len(p0),)) + margin
    r1 = np.broadcast_to(np.asarray(r1, dtype=float), (len(p0),)) + margin
    if len(p0) == 0:
        return None
    reach = np.maximum(r0, r1) + (0.0 if hard else 2 * sigma)
    lo = np.ceil(grid.to_index(np.minimum(p0, p1) - reach[:, None])).astype(np.int64)
    hi = np.floor(grid.to_index(np.maximum(p0, p1) + reach[:, None])).astype(np.int64)
    dims = grid.dims_xyz
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, dims - 1)
    valid = np.all(hi >= lo, axis=1)
    if not valid.any():
        return None
    p0, p1, r0, r1, lo, hi = p0[valid], p1[valid], r0[valid], r1[valid], lo[valid], hi[valid]
    b_lo, b_hi = lo.min(0), hi.max(0) + 1
    bbox = (slice(b_lo[2], b_hi[2]), slice(b_lo[1], b_hi[1]), slice(b_lo[0], b_hi[0]))
    # round box sizes up so that few distinct shapes remain; keep the grown boxes in the grid
    size = hi - lo + 1
    size = np.minimum(np.where(size > 4, (size + 1) // 2 * 2, size), dims)
    lo = np.minimum(lo, dims - size)
    _, ny, nx = grid.shape
    flat_out = out.reshape(-1)
    shapes, inverse = np.unique(size, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    sp, org = grid.spacing, grid.origin
    corner = (org + lo * sp - p0).astype(np.float32)  # box corner relative to the piece start, mm
    v_all = (p1 - p0).astype(np.float32)
    vv_all = np.maximum((v_all * v_all).sum(1), 1e-6).astype(np.float32)
    base_all = ((lo[:, 2] * ny + lo[:, 1]) * nx + lo[:, 0]).astype(np.int64)
    # one batch of pieces per box shape, so that the distance maths runs on 2-D arrays;
    # in-place updates keep the temporaries to a few
    for g, (bx, by, bz) in enumerate(shapes):
        members = np.flatnonzero(inverse == g)
        k = int(bx * by * bz)
        oz, oy, ox = (a.reshape(-1) for a in np.meshgrid(np.arange(bz), np.arange(by),
                                                         np.arange(bx), indexing="ij"))
        off_flat = ((oz * ny + oy) * nx + ox)[None]
        ox_mm, oy_mm, oz_mm = ((o * sp[i]).astype(np.float32)[None]
                               for i, o in enumerate((ox, oy, oz)))
        chunk = max(1, 1_000_000 // k)
        for start in range(0, len(members), chunk):
            m = members[start:start + chunk]
            c, v = corner[m], v_all[m]
            vx, vy, vz = v[:, 0:1], v[:, 1:2], v[:, 2:3]
            dx = ox_mm + c[:, 0:1]
            dy = oy_mm + c[:, 1:2]
            dz = oz_mm + c[:, 2:3]
            t = dx * vx
            t += dy * vy
            t += dz * vz
            t *= (1.0 / vv_all[m])[:, None]
            np.clip(t, 0, 1, out=t)
            dx -= t * vx
            dy -= t * vy
            dz -= t * vz
            dx *= dx
            dy *= dy
            dz *= dz
            dx += dy
            dx += dz
            d = np.sqrt(dx, out=dx)
            r = r0[m, None].astype(np.float32) + t * (r1[m] - r0[m]).astype(np.float32)[:, None]
            flat = base_all[m, None] + off_flat
            if hard:
                flat_out[flat[d <= r]] = True
            else:
                occ = tube_profile(d, r, sigma)
                sel = occ > 2e-3
                np.maximum.at(flat_out, flat[sel], occ[sel])
    return bbox


def smooth_noise(rng: np.random.Generator, shape_zyx, spacing_zyx, scale_mm: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field with features about scale_mm across (float32)."""
    low = [int(np.ceil(n * s / scale_mm)) + 3 for n, s in zip(shape_zyx, spacing_zyx)]
    field = ndimage.gaussian_filter(rng.standard_normal(low), 0.7, mode="wrap").astype(np.float32)
    field -= field.mean()
    field /= max(float(field.std()), 1e-6)
    for axis in (2, 1, 0):
        n, s = shape_zyx[axis], spacing_zyx[axis]
        pos = np.arange(n) * (s / scale_mm) + 1.0
        i0 = np.floor(pos).astype(np.int64)
        w = (pos - i0).astype(np.float32)
        shp = [1, 1, 1]
        shp[axis] = n
        w = w.reshape(shp)
        field = np.take(field, i0, axis=axis) * (1 - w) + np.take(field, i0 + 1, axis=axis) * w
    return field


def blur3(vol: np.ndarray, axis: int, centre: float, buf: np.ndarray) -> np.ndarray:
    """3-tap [(1-c)/2, c, (1-c)/2] filter along one axis into `buf`; returns `buf`."""
    side = (1.0 - centre) / 2.0
    ndimage.correlate1d(vol, np.array([side, centre, side], dtype=np.float32), axis=axis,
                        output=buf, mode="nearest")
    return buf
