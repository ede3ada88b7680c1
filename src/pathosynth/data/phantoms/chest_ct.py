"""A built-in chest CT phantom with lung nodules, written the way LUNA16 ships its data.

`write_luna16_layout` writes ``subset0/<seriesuid>.mhd`` + ``.raw`` (MetaImage, int16 Hounsfield
units, uncompressed, identity TransformMatrix) and ``annotations.csv`` with the LUNA16 columns
``seriesuid,coordX,coordY,coordZ,diameter_mm`` plus ``attenuation`` (``solid``, ``part-solid`` or
``ggn``). Coordinates are world LPS millimetres of the nodule centre (the centroid of what was
drawn); ``diameter_mm`` is the diameter of the sphere with the drawn nodule's volume.

The anatomy is analytic and vectorised. Everything is built in a patient frame in millimetres,
``x`` towards the patient's left, ``y`` posterior, ``z`` superior (LPS axes), with the body axis at
``x = y = 0`` and ``z = 0`` at the lowest slice; only the final image is placed in world space.
Each patient draws everything from ``np.random.default_rng([seed, patient])``, so the same seed
writes byte-identical files.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage, special

from pathosynth.data.image import MedicalImage
from pathosynth.data.writers import write_sitk

ATTENUATIONS = ("solid", "part-solid", "ggn")
ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "attenuation")
UID_ROOT = "1.3.6.1.4.1.99999"
SIZES = ("default", "tiny")
SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5)
AIR_HU = -1000.0
HU_MIN, HU_MAX = -1024, 3071

_F = np.float32
_SQRT2 = float(np.sqrt(2.0))


@dataclass(frozen=True)
class Nodule:
    """One drawn nodule: world LPS centre in mm, effective diameter in mm, attenuation class."""

    world: tuple[float, float, float]
    diameter_mm: float
    attenuation: str


def series_uid(patient: int, seed: int) -> str:
    """The deterministic DICOM-style series uid of one phantom patient."""
    return f"{UID_ROOT}.{int(patient)}.{int(seed)}"


def write_luna16_layout(out_dir: Path, n_patients: int, seed: int, *, size: str = "default",
                        progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Write n_patients chest CT scans as LUNA16 does; return the series uids.

    ``progress``, when given, is called as ``progress(done, n_patients)`` after each patient.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if n_patients < 0:
        raise ValueError(f"n_patients must be >= 0, got {n_patients}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    out_dir = Path(out_dir)
    subset = out_dir / "subset0"
    subset.mkdir(parents=True, exist_ok=True)
    uids: list[str] = []
    rows: list[tuple[str, ...]] = []
    for patient in range(n_patients):
        uid = series_uid(patient, seed)
        image, nodules = make_chest_ct(seed, patient, size=size)
        write_sitk(subset / f"{uid}.mhd", image)
        for nodule in nodules:
            x, y, z = nodule.world
            rows.append((uid, f"{x:.4f}", f"{y:.4f}", f"{z:.4f}", f"{nodule.diameter_mm:.3f}",
                         nodule.attenuation))
        uids.append(uid)
        if progress is not None:
            progress(patient + 1, n_patients)
    with open(out_dir / "annotations.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ANNOTATION_COLUMNS)
        writer.writerows(rows)
    return uids


def make_chest_ct(seed: int, patient: int,
                  size: str = "default") -> tuple[MedicalImage, list[Nodule]]:
    """One phantom patient: an int16 HU `MedicalImage` (identity direction) and its nodules."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    phantom = _Phantom(np.random.default_rng([int(seed), int(patient)]), size)
    array = phantom.build()
    image = MedicalImage(array, spacing=phantom.spacing_zyx, origin=phantom.origin_xyz)
    return image, phantom.nodules


# ----------------------------------------------------------------------------------------------
# geometry helpers


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


def _superellipse_radius(cos_t, sin_t, a, b_front, b_back, p):
    """Boundary radius along each ray of a superellipse with different front/back half-depths."""
    b = np.where(sin_t < 0, b_front, b_back)
    return (np.abs(cos_t / a) ** p + np.abs(sin_t / b) ** p) ** (-1.0 / p)


def _tube_profile(d: np.ndarray, r: np.ndarray, sigma: float) -> np.ndarray:
    """Partial-volume occupancy of a tube of radius r at distance d from its axis: a smooth
    edge about 4 sigma wide; tubes thinner than the blur keep their cross-section area."""
    x = np.clip((r - d) * (1.0 / (4 * sigma)) + 0.5, 0, 1)
    sharp = x * x * (3 - 2 * x)
    thin = (r * r) * (1.0 / (2 * sigma * sigma)) * np.exp(d * d * (-1.0 / (2 * sigma * sigma)))
    return np.where(r < 1.5 * sigma, np.minimum(sharp, thin), sharp)


class _Grid:
    """Voxel grid in the patient frame: local mm of voxel centres along x, y, z."""

    def __init__(self, shape_zyx, spacing_xyz, origin_local_xyz):
        self.shape = tuple(int(n) for n in shape_zyx)
        self.spacing = np.asarray(spacing_xyz, dtype=float)
        self.origin = np.asarray(origin_local_xyz, dtype=float)
        nz, ny, nx = self.shape
        self.X = (self.origin[0] + np.arange(nx) * self.spacing[0]).astype(_F)
        self.Y = (self.origin[1] + np.arange(ny) * self.spacing[1]).astype(_F)
        self.Z = (self.origin[2] + np.arange(nz) * self.spacing[2]).astype(_F)
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


def _rasterize_tubes(grid: _Grid, p0, p1, r0, r1, out: np.ndarray, *, sigma: float,
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
    nz, ny, nx = grid.shape
    flat_out = out.reshape(-1)
    shapes, inverse = np.unique(size, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    sp, org = grid.spacing, grid.origin
    corner = (org + lo * sp - p0).astype(_F)  # box corner relative to the piece start, mm
    v_all = (p1 - p0).astype(_F)
    vv_all = np.maximum((v_all * v_all).sum(1), 1e-6).astype(_F)
    base_all = ((lo[:, 2] * ny + lo[:, 1]) * nx + lo[:, 0]).astype(np.int64)
    for g, (bx, by, bz) in enumerate(shapes):
        members = np.flatnonzero(inverse == g)
        k = int(bx * by * bz)
        oz, oy, ox = (a.reshape(-1) for a in np.meshgrid(np.arange(bz), np.arange(by),
                                                         np.arange(bx), indexing="ij"))
        off_flat = ((oz * ny + oy) * nx + ox)[None]
        ox_mm, oy_mm, oz_mm = ((o * sp[i]).astype(_F)[None] for i, o in enumerate((ox, oy, oz)))
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
            r = r0[m, None].astype(_F) + t * (r1[m] - r0[m]).astype(_F)[:, None]
            flat = base_all[m, None] + off_flat
            if hard:
                flat_out[flat[d <= r]] = True
            else:
                occ = _tube_profile(d, r, sigma)
                sel = occ > 2e-3
                np.maximum.at(flat_out, flat[sel], occ[sel])
    return bbox


def _smooth_noise(rng: np.random.Generator, shape_zyx, spacing_zyx, scale_mm: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field with features about scale_mm across (float32)."""
    low = [int(np.ceil(n * s / scale_mm)) + 3 for n, s in zip(shape_zyx, spacing_zyx)]
    field = ndimage.gaussian_filter(rng.standard_normal(low), 0.7, mode="wrap").astype(_F)
    field -= field.mean()
    field /= max(float(field.std()), 1e-6)
    for axis in (2, 1, 0):
        n, s = shape_zyx[axis], spacing_zyx[axis]
        pos = np.arange(n) * (s / scale_mm) + 1.0
        i0 = np.floor(pos).astype(np.int64)
        w = (pos - i0).astype(_F)
        shp = [1, 1, 1]
        shp[axis] = n
        w = w.reshape(shp)
        field = np.take(field, i0, axis=axis) * (1 - w) + np.take(field, i0 + 1, axis=axis) * w
    return field


def _blur3(vol: np.ndarray, axis: int, centre: float, buf: np.ndarray) -> np.ndarray:
    """3-tap [(1-c)/2, c, (1-c)/2] filter along one axis into `buf`; returns `buf`."""
    side = (1.0 - centre) / 2.0
    ndimage.correlate1d(vol, np.array([side, centre, side], dtype=_F), axis=axis, output=buf,
                        mode="nearest")
    return buf


# ----------------------------------------------------------------------------------------------
# the phantom


class _Phantom:
    """One patient. Lengths are mm; `k` scales in-plane anatomy and `kz` through-plane anatomy
    (both 1 for a 300 mm field of view and 175 mm of z coverage)."""

    def __init__(self, rng: np.random.Generator, size: str):
        self.rng = rng
        self.nodules: list[Nodule] = []
        U = self._u
        if size == "tiny":
            sxy = round(U(1.4, 1.6), 4)
            nxy = 64
            sz = float(rng.choice([1.5, 2.0, 2.5]))
            nz = 48
        else:
            sxy = round(U(1.1, 1.5), 4)
            nxy = int(round(U(292.0, 312.0) / sxy))
            sz = float(rng.choice(SLICE_THICKNESSES))
            nz = int(round(U(150.0, 200.0) / sz))
        self.sxy, self.sz = sxy, sz
        self.spacing_zyx = (sz, sxy, sxy)
        fov = nxy * sxy
        self.k = k = fov / 300.0
        self.Lz = nz * sz
        self.kz = self.Lz / 175.0

        # habitus: one latent "build" drives body size and subcutaneous fat
        build = U(0, 1)

        def jitter(sd):
            return min(1.0, max(0.0, build + self._n(sd)))

        self.a_b = (118 + 22 * jitter(0.15)) * k
        self.b_a = (94 + 16 * jitter(0.2)) * k
        self.b_p = (90 + 16 * jitter(0.2)) * k
        self.p_b = U(2.0, 2.6)
        self.wobble = [(self._n(0.012), m, U(0, 2 * np.pi)) for m in range(2, 6)]
        self.t_fat0 = (4 + 22 * build ** 1.3 + U(0, 4)) * k
        self.fat_wobble = (U(0, 0.2), U(0, 2 * np.pi))
        self.pect = U(4, 10)
        self.back = U(26, 34)

        # world placement: FOV centre, body centre, table below the body
        cxw, cyw = round(U(-25, 25), 1), round(U(-25, 25), 1)
        ox = round(cxw - (nxy - 1) / 2 * sxy, 2)
        oy = round(cyw - (nxy - 1) / 2 * sxy, 2)
        oz = round(U(-380, -120), 2)
        self.origin_xyz = (ox, oy, oz)
        half = fov / 2
        max_off = max(0.0, half - 6 * k - self.a_b)
        bx = cxw + U(-1, 1) * min(6 * k, max_off)
        y_lo, y_hi = -half + 6 * k + self.b_a, half - 34 * k - self.b_p
        by = cyw + (U(y_lo, y_hi) if y_hi > y_lo else (y_lo + y_hi) / 2)
        self.grid = _Grid((nz, nxy, nxy), (sxy, sxy, sz), (ox - bx, oy - by, 0.0))

        # acquisition
        self.noise_sigma = U(10, 30)
        self.kernel_centre = U(0.45, 0.65)
        self.psf_sigma = 0.45 * sxy

    def _u(self, a: float, b: float) -> float:
        return float(self.rng.uniform(a, b))

    def _n(self, sd: float) -> float:
        return float(self.rng.normal(0.0, sd))

    # -- shape functions of the polar angle around the body axis -------------------------------

    def _body_radius(self, cos_t, sin_t):
        R = _superellipse_radius(cos_t, sin_t, self.a_b, self.b_a, self.b_p, self.p_b)
        th = np.arctan2(sin_t, cos_t)
        w = 1.0
        for amp, m, ph in self.wobble:
            w = w + amp * np.cos(m * th + ph)
        return R * w

    def _fat_thickness(self, cos_t, sin_t):
        lat = cos_t * cos_t
        ant = np.maximum(0, -sin_t)
        post = np.maximum(0, sin_t)
        th = np.arctan2(sin_t, cos_t)
        amp, ph = self.fat_wobble
        t = self.t_fat0 * (0.75 + 0.45 * lat + 0.15 * post - 0.3 * ant * (1 - lat)
                           + amp * np.cos(2 * th + ph))
        return np.maximum(t, 2 * self.k)

    def _wall_thickness(self, cos_t, sin_t):
        ant = np.maximum(0, -sin_t)
        post = np.maximum(0, sin_t)
        pect = self.pect * ant * np.abs(cos_t) * 2  # pectoral muscles, anterolateral
        back = 8 * post ** 2 + self.back * post ** 10  # paraspinal muscles, thickest at the midline
        return (11 + pect + back) * self.k

    def _cavity_radius_at(self, theta: float, zi: int) -> float:
        c, s = np.array(np.cos(theta)), np.array(np.sin(theta))
        R = float(self._body_radius(c, s))
        T = float(self._fat_thickness(c, s) + self._wall_thickness(c, s))
        return float(self.gc[zi]) * (float(self.gb[zi]) * R - T)

    # -- main ----------------------------------------------------------------------------------

    def build(self) -> np.ndarray:
        self.img = np.full(self.grid.shape, AIR_HU, dtype=_F)
        self._body()
        self._skeleton()
        self._mediastinum_layout()
        self._lungs()
        self._trees()
        self._paint_cavity()
        self._place_nodules()
        return self._finish()

    # -- body wall -----------------------------------------------------------------------------

    def _body(self) -> None:
        g, k = self.grid, self.k
        U = self._u
        X, Y = g.X, g.Y
        s = g.Z / _F(self.Lz)
        self.s = s
        r2 = np.hypot(X[None, :], Y[:, None]).astype(_F)
        rs = np.maximum(r2, _F(1e-3))
        cos_t, sin_t = X[None, :] / rs, Y[:, None] / rs
        self.r2, self.cos_t, self.sin_t = r2, cos_t, sin_t
        R = self._body_radius(cos_t, sin_t).astype(_F)
        self.gb = (1 + U(0.0, 0.07) * (s - 0.5)).astype(_F)  # a little wider towards the axillae
        # the cavity (rib cage) narrows towards the first ribs; the wall thickens there
        self.gc = (1 - 0.15 * np.clip((s - 0.7) / 0.3, 0, 1) ** 2).astype(_F)
        self.y_flat = self.b_p * U(0.9, 0.97)
        t_fat = self._fat_thickness(cos_t, sin_t).astype(_F)
        t_wall = self._wall_thickness(cos_t, sin_t).astype(_F)
        self.t_fat = t_fat
        self.R2d, self.T2d, self.W2d = R, t_fat + t_wall, t_wall

        depth = self.gb[:, None, None] * R[None]  # body surface radius, then depth below it
        cav = depth - (t_fat + t_wall)[None]
        cav *= self.gc[:, None, None]
        cav -= r2[None]
        self.cav_depth = cav  # > 0 inside the rib cage
        depth -= r2[None]
        np.minimum(depth, (self.y_flat - Y)[None, :, None], out=depth)  # flat back on the table

        img = self.img
        body = depth > 0
        self.body = body
        img[body] = 40.0 + self._n(3)  # skin
        self.fat_hu = -95 + self._n(6)
        img[depth > 1.8 * k] = self.fat_hu
        self.muscle_hu = 45 + self._n(4)
        img[depth > t_fat[None]] = self.muscle_hu
        # fat planes between the superficial and the deep muscles, posterolaterally
        back = slice(int(np.searchsorted(Y, 0.0)), None)
        plane = np.abs(depth[:, back] - (t_fat + 0.45 * t_wall)[None, back]) < 1.2 * k
        plane &= (np.maximum(sin_t, 0) * np.abs(cos_t) > 0.25)[None, back]
        plane &= cav[:, back] < -4 * k
        img[:, back][plane] = self.fat_hu * 0.8
        self._table()

    def _table(self) -> None:
        """The patient table: a curved carbon board with dense skins and a foam core."""
        g, k = self.grid, self.k
        U = self._u
        X, Y = g.X, g.Y
        xs = X / (150 * k)
        top = self.y_flat + U(1, 4) * k - U(4, 10) * k * xs ** 2  # curves up at the sides
        thick = U(14, 26) * k * (1 - 0.35 * xs ** 2)
        yy = Y[:, None] - top[None, :]
        table = np.full((g.shape[1], g.shape[2]), np.nan, dtype=_F)
        table[(yy >= 0) & (yy < 3 * k)] = -900  # thin mattress
        board = (yy >= 3 * k) & (yy < 3 * k + thick[None, :])
        table[board] = -940
        skin = U(1.5, 2.5) * k
        table[board & ((yy < 3 * k + skin) | (yy >= 3 * k + thick[None, :] - skin))] = U(100, 350)
        rows = np.flatnonzero(~np.isnan(table).all(axis=1))
        if len(rows):
            sub = self.img[:, rows]
            t = table[rows]
            np.copyto(sub, t[None], where=~np.isnan(t)[None] & ~self.body[:, rows])
            self.img[:, rows] = sub

    # -- bones -----------------------------------------------------------------------------------

    def _skeleton(self) -> None:
        g, k, kz = self.grid, self.k, self.kz
        U = self._u
        X, Y, Z = g.X, g.Y, g.Z
        img, cav, s = self.img, self.cav_depth, self.s
        nz = g.shape[0]
        zmid = int(np.argmin(np.abs(s - 0.5)))
        bone = np.zeros(g.shape, dtype=bool)
        self.marrow_hu = marrow = U(140, 280)
        self.cortex_hu = cortex = U(650, 950)

        # vertebral column; the body bulges into the posterior cavity
        self.r_vb = r_vb = U(15, 19) * k
        R_post = self._cavity_radius_at(np.pi / 2, zmid)
        self.yv = yv = R_post - r_vb * 0.85
        self.x_mid = U(0, 6) * k
        canal_y = yv + r_vb * 0.95 + 8 * k
        body_post = float(self.gb[zmid]) * float(self._body_radius(np.array(0.0), np.array(1.0)))
        fat_post = float(self._fat_thickness(np.array(0.0), np.array(1.0)))
        spin_end = max(canal_y + 16 * k, min(self.y_flat, body_post) - fat_post - 6 * k)
        # crop to the spine's box
        iy0 = max(0, int((yv - r_vb - 2 * k - g.origin[1]) / g.spacing[1]))
        iy1 = min(g.shape[1], int((spin_end + 2 * k - g.origin[1]) / g.spacing[1]) + 1)
        ix0 = max(0, int((-34 * k - g.origin[0]) / g.spacing[0]))
        ix1 = min(g.shape[2], int((34 * k - g.origin[0]) / g.spacing[0]) + 1)
        dx = X[ix0:ix1][None, :]
        yy = Y[iy0:iy1][:, None]
        e_vb = (dx / (1.08 * r_vb)) ** 2 + ((yy - yv) / r_vb) ** 2
        vb = e_vb < 1
        vb_rim = vb & (e_vb > (1 - 2.2 * k / r_vb) ** 2)
        e_canal = np.hypot(dx, yy - canal_y) / (7 * k)
        canal = e_canal < 1
        arch = (e_canal >= 1) & (e_canal < 1.65) & (yy > canal_y - 4 * k)

        def bar(x0, y0, x1, y1, half):
            """2D capsule between two points (posterior elements)."""
            vx, vy = x1 - x0, y1 - y0
            t = np.clip(((dx - x0) * vx + (yy - y0) * vy) / (vx * vx + vy * vy), 0, 1)
            return np.hypot(dx - x0 - t * vx, yy - y0 - t * vy) < half

        spinous = bar(0, canal_y + 9 * k, 0, spin_end, 2.8 * k)
        self.tp = tp = U(22, 28) * k
        transverse = bar(-8 * k, canal_y, -tp, canal_y + 9 * k, 3.8 * k) | \
            bar(8 * k, canal_y, tp, canal_y + 9 * k, 3.8 * k)
        period = U(23, 27) * kz
        ph = Z - U(0, period)
        ph = ph - np.floor(ph / period) * period  # mm within one vertebra (0 = its lower end plate)
        disc = ph < 5 * kz
        plate = ph < 6.5 * kz
        post_el = (ph > 4 * kz) & (ph < 0.75 * period)
        sub = img[:, iy0:iy1, ix0:ix1]
        bsub = bone[:, iy0:iy1, ix0:ix1]
        disc_hu = 80 + self._n(5)
        for zi in range(nz):
            sl, bl = sub[zi], bsub[zi]
            if disc[zi]:
                sl[vb] = disc_hu
            else:
                sl[vb] = marrow
                sl[vb_rim] = cortex * 0.85
                if plate[zi]:
                    sl[vb] = cortex * 0.75
            bl |= vb
            if post_el[zi]:
                pe = arch | spinous | transverse
                sl[pe] = cortex * 0.8
                bl |= pe
            sl[canal] = 25.0  # cord and CSF
        self.canal_y = canal_y

        # ribs (and below, the scapulae) live in a ring of pixels just outside the cavity; work
        # on those pixels only, as (slice, ring pixel) arrays
        a_r = U(3.0, 4.0) * k
        rho_c = 1.2 * k + a_r
        rho_lo, rho_hi = rho_c - a_r - 0.5, rho_c + a_r + 16 * k
        gcgb = self.gc * self.gb
        R2, T2 = self.R2d, self.T2d
        near = (self.r2 - (float(gcgb.max()) * R2 - float(self.gc.min()) * T2) <= rho_hi) & \
               (self.r2 - (float(gcgb.min()) * R2 - float(self.gc.max()) * T2) >= rho_lo)
        ring = np.flatnonzero(near)
        rho = self.r2.ravel()[ring][None] - (gcgb[:, None] * R2.ravel()[ring][None]
                                             - self.gc[:, None] * T2.ravel()[ring][None])
        img2 = img.reshape(nz, -1)
        bone2 = bone.reshape(nz, -1)
        sub = img2[:, ring]
        bsub = np.zeros(sub.shape, dtype=bool)
        sin_r = self.sin_t.ravel()[ring]
        cos_r = self.cos_t.ravel()[ring]
        x_r = np.broadcast_to(X[None, :], self.r2.shape).ravel()[ring]
        pitch = U(22, 26) * kz
        drop = U(2.8, 3.8) * pitch
        phi = np.arccos(np.clip(sin_r, -1, 1)) / np.pi  # 0 at the spine, 1 at the sternum
        h = Z[:, None] + (drop * phi ** 1.6)[None]
        h -= U(0, pitch)
        h /= pitch
        h -= np.rint(h)  # signed fraction of a pitch from the nearest rib's centre line
        h *= pitch
        b_r = ((5.0 + 2.5 * np.maximum(0, -sin_r)) * kz).astype(_F)
        e_r = (h / b_r[None]) ** 2 + ((rho - rho_c) / a_r) ** 2
        medial_post = (np.abs(x_r) < r_vb + 8 * k) & (sin_r > 0)
        ribs = (e_r < 1) & ~medial_post[None]
        cartilage = ((np.abs(x_r) < U(28, 42) * k) & (sin_r < 0))[None]
        sub[ribs & ~cartilage] = marrow
        sub[ribs & ~cartilage & (e_r > 0.45)] = cortex
        sub[ribs & cartilage] = U(90, 160)
        bsub |= ribs
        # scapulae: thin curved plates in the posterolateral wall of the upper chest
        ang = np.degrees(np.arctan2(sin_r, np.abs(cos_r)))  # 90 = posterior, 0 = lateral
        lo_a, hi_a = U(28, 36), U(62, 72)
        thick = (np.where(ang < lo_a + 8, 5.5, 2.5) * k).astype(_F)
        # between the ribs and the subcutaneous fat, a little nearer the ribs
        room = self.W2d.ravel()[ring] - (rho_c + a_r)
        sc0 = rho_c + a_r + np.minimum(0.35 * (room - thick), 16 * k - thick)
        fits = (room > thick + 3 * k) & (ang > lo_a) & (ang < hi_a)
        scap = fits[None] & (rho > sc0[None]) & (rho < (sc0 + thick)[None])
        scap &= (s > U(0.4, 0.5))[:, None]
        sub[scap] = cortex * 0.7
        bsub |= scap
        img2[:, ring] = sub
        bone2[:, ring] = bsub
        del sub, bsub, rho, h, e_r

        # sternum: anterior midline, just outside the cavity
        R_ant = np.array([self._cavity_radius_at(-np.pi / 2, zi) for zi in range(nz)])
        y_st = -R_ant - 5 * k
        half_w = np.where(s > 0.82, 24 * k, 13 * k) * U(0.85, 1.15)
        inz = (s > 0.12) & (s < 0.97)
        for zi in np.flatnonzero(inz):
            iy0 = max(0, int((y_st[zi] - 7 * k - g.origin[1]) / g.spacing[1]))
            iy1 = min(g.shape[1], int((y_st[zi] + 7 * k - g.origin[1]) / g.spacing[1]) + 2)
            e_st = (X[None, :] / half_w[zi]) ** 2 + ((Y[iy0:iy1, None] - y_st[zi]) / (5.5 * k)) ** 2
            sl = img[zi, iy0:iy1]
            sl[e_st < 1] = cortex
            sl[e_st < 0.5] = marrow
            bone[zi, iy0:iy1] |= e_st < 1

        # clavicles at the top, anterior
        if s[-1] > 0.88:
            p0, p1 = [], []
            for sgn in (-1, 1):
                zc = self.Lz * U(0.9, 0.97)
                p0.append([sgn * 18 * k, y_st[-1] - 3 * k, zc])
                p1.append([sgn * 95 * k, y_st[-1] + 10 * k, zc + 12 * kz])
            clav = np.zeros(g.shape, dtype=_F)
            _rasterize_tubes(g, p0, p1, 6.5 * k, 5.5 * k, clav, sigma=self.psf_sigma)
            img += clav * (cortex * 0.8 - img)
            bone |= clav > 0.5
        self.bone = bone

    # -- mediastinum layout ----------------------------------------------------------------------

    def _mediastinum_layout(self) -> None:
        """Place heart, great vessels and central airways (tube pieces) in the patient frame."""
        k, kz, Lz = self.k, self.kz, self.Lz
        U = self._u
        xm, yv, r_vb = self.x_mid, self.yv, self.r_vb
        # diaphragm domes: z of the lung base, a paraboloid per side
        zR = U(0.12, 0.22) * Lz
        zL = zR - U(6, 18) * kz
        self.dome = dict(zR=zR, zL=zL, xR=-U(35, 55) * k, xL=U(40, 60) * k, y=-U(0, 20) * k,
                         c=U(50, 70) * kz / (85 * k) ** 2)
        # heart: a rotated ellipsoid on the diaphragm, left of the midline
        A, B, C = U(48, 58) * k, U(33, 40) * k, U(0.18, 0.23) * Lz
        hz = max(zR, zL) + C * U(0.35, 0.55)
        y_back = yv - r_vb - U(12, 18) * k  # the heart's back lies in front of the esophagus
        self.heart = dict(x=xm + U(15, 25) * k, y=y_back - B * U(1.0, 1.15), z=hz, A=A, B=B, C=C,
                          psi=float(np.radians(U(28, 42))), tilt=U(0.15, 0.35), fat=U(2, 8) * k)
        h = self.heart
        # airways: trachea, carina, main bronchi (p0, p1, outer r0, outer r1, wall)
        r_es = U(6.5, 8.5) * k
        y_es = yv - r_vb - r_es - U(1, 3) * k
        r_tr = U(8, 11) * k
        y_tr = y_es - r_es - r_tr - U(0, 2) * k
        x_tr = xm - U(2, 6) * k
        z_car = U(0.6, 0.7) * Lz
        carina = np.array([x_tr, y_tr, z_car])
        rmb = carina + np.array([-U(26, 32) * k, U(2, 8) * k, -U(18, 26) * kz])
        lmb = carina + np.array([U(36, 44) * k, U(6, 12) * k, -U(26, 34) * kz])
        self.main_bronchi = {"R": rmb, "L": lmb}
        self.central_air = [
            (np.array([x_tr, y_tr, Lz + 10]), carina, r_tr, r_tr, U(1.5, 2.5) * k),
            (carina, rmb, 0.75 * r_tr, 0.7 * r_tr, 1.6 * k),
            (carina, lmb, 0.68 * r_tr, 0.62 * r_tr, 1.6 * k),
        ]
        self.esophagus = (np.array([xm + 2 * k, y_es, Lz + 10]),
                          np.array([xm + 12 * k, y_es - 6 * k, -10.0]), r_es)
        # great vessels (p0, p1, r0, r1)
        ves = []
        r_aa, r_da = U(13, 17) * k, U(10.5, 13) * k
        x_aa, y_aa = xm - U(12, 20) * k, y_tr - U(20, 28) * k
        z_arch = min(U(0.78, 0.86) * Lz, Lz - 14 * kz)
        x_da, y_da = xm + r_vb * 0.55 + r_da, yv - r_vb * 0.35
        aa0 = np.array([x_aa + 6 * k, y_aa + 4 * k, hz + 0.3 * C])
        ves.append((aa0, np.array([x_aa, y_aa, z_arch]), r_aa, r_aa))
        h_arch = U(14, 22) * kz
        arch = []
        for phi in np.linspace(0, 1, 11):
            arch.append(np.array([x_aa + (x_da - x_aa) * phi + 6 * k * np.sin(np.pi * phi),
                                  y_aa + (y_da - y_aa) * phi,
                                  z_arch + h_arch * np.sin(np.pi * phi)]))
        for i in range(10):
            ves.append((arch[i], arch[i + 1], r_aa + (r_da - r_aa) * i / 10,
                        r_aa + (r_da - r_aa) * (i + 1) / 10))
        ves.append((arch[-1], np.array([x_da - 10 * k, y_da - 4 * k, -10.0]), r_da, r_da * 0.95))
        for i, dx, r in ((2, -6, 6.5), (4, 2, 4.5), (6, 14, 5.5)):  # arch branches
            a = arch[i]
            ves.append((a, np.array([a[0] + dx * k, a[1] + 4 * k, Lz + 10]), r * k, r * k * 0.9))
        # pulmonary trunk and arteries
        r_pa = U(12, 15) * k
        pa0 = np.array([h["x"] + 6 * k, h["y"] - 24 * k, hz + 0.45 * C])
        bif = np.array([xm + 10 * k, y_tr - 12 * k, z_car - 10 * kz])
        ves.append((pa0, bif, r_pa, r_pa))
        self.hila = {"R": np.array([-U(40, 48) * k, y_tr + U(-6, 2) * k, z_car - 16 * kz]),
                     "L": np.array([U(40, 48) * k, y_tr + U(-2, 6) * k, z_car - 8 * kz])}
        ves.append((bif, self.hila["R"], 0.75 * r_pa, 0.65 * r_pa))
        lpa_mid = np.array([xm + 28 * k, y_tr - 2 * k, z_car - 2 * kz])
        ves.append((bif, lpa_mid, 0.72 * r_pa, 0.68 * r_pa))
        ves.append((lpa_mid, self.hila["L"], 0.68 * r_pa, 0.6 * r_pa))
        # SVC, left brachiocephalic vein, azygos
        r_svc = U(8, 11) * k
        svc_x, svc_y = x_aa - r_aa - r_svc + 2 * k, y_aa + U(2, 8) * k
        ves.append((np.array([svc_x, svc_y, Lz + 10]),
                    np.array([svc_x + 4 * k, svc_y - 2 * k, hz + 0.55 * C]), r_svc, r_svc))
        z_bcv = Lz - U(6, 16) * kz
        ves.append((np.array([xm + 45 * k, y_aa - 12 * k, z_bcv + 8 * kz]),
                    np.array([svc_x, svc_y, z_bcv]), 6 * k, 6.5 * k))
        az = np.array([xm - r_vb * 0.6, yv - r_vb * 0.9, z_car + 4 * kz])
        ves.append((np.array([az[0], az[1] + 2 * k, -10.0]), az, 3.5 * k, 3.5 * k))
        ves.append((az, np.array([svc_x, svc_y + 3 * k, z_car + 8 * kz]), 3.5 * k, 4 * k))
        self.left_atrium = np.array([h["x"] - 8 * k, h["y"] + h["B"] * 0.75, hz + 0.35 * C])
        self.great_vessels = ves
        self.aorta = (arch, r_aa, r_da)

    def _heart_field(self) -> np.ndarray:
        """Normalised ellipsoid radius^2 of the heart on the slab of slices around it (float32);
        sets `heart_slab`."""
        g, h = self.grid, self.heart
        reach = h["C"] + h["fat"] + 4 * self.k
        z0 = int(np.searchsorted(g.Z, h["z"] - reach))
        z1 = int(np.searchsorted(g.Z, h["z"] + reach)) + 1
        self.heart_slab = slice(z0, z1)
        dx = g.X[None, :] - _F(h["x"])
        dy = g.Y[:, None] - _F(h["y"])
        c, s_ = float(np.cos(h["psi"])), float(np.sin(h["psi"]))
        uu = c * dx - s_ * dy  # long axis: towards the left and anterior
        vv = s_ * dx + c * dy
        dz = g.Z[z0:z1] - _F(h["z"])
        e = (uu[None] + (h["tilt"] * dz)[:, None, None]) ** 2
        e *= 1.0 / (h["A"] ** 2)
        e += ((vv / h["B"]) ** 2)[None]
        e += ((dz / h["C"]) ** 2)[:, None, None]
        return e

    def _heart_level(self, extra: float) -> float:
        """Threshold on the heart field for the ellipsoid grown by about `extra` mm."""
        h = self.heart
        mean = (h["A"] + h["B"] + h["C"]) / 3
        return (1 + extra / mean) ** 2

    # -- lungs ---------------------------------------------------------------------------------

    def _lungs(self) -> None:
        g, k, kz = self.grid, self.k, self.kz
        U = self._u
        X, Y, Z, s = g.X, g.Y, g.Z, self.s
        # the diaphragm: lungs lie above two paraboloid domes; posterior recesses go deeper
        d = self.dome
        yy2 = ((Y - d["y"]) ** 2)[:, None]
        zdR = d["zR"] - d["c"] * ((X[None, :] - d["xR"]) ** 2 + yy2)
        zdL = d["zL"] - d["c"] * ((X[None, :] - d["xL"]) ** 2 + yy2)
        z_dia = np.where(X[None, :] < self.x_mid, zdR, zdL)
        z_dia -= 8 * kz * np.clip(Y[:, None] / (60 * k), 0, 1)
        self.z_dia = z_dia.astype(_F)
        self.above = Z[:, None, None] > self.z_dia[None]
        lung = self.cav_depth > U(1.0, 2.5) * k  # pleura and extrapleural fat
        lung &= self.above
        lung &= ~self.bone
        # mediastinal envelope: heart and pericardial fat, great vessels, airways, spine
        self.heart_e = self._heart_field()
        lung[self.heart_slab] &= self.heart_e > self._heart_level(self.heart["fat"] + 1.5 * k)
        env = np.zeros(g.shape, dtype=bool)
        ves = self.great_vessels
        _rasterize_tubes(g, [v[0] for v in ves], [v[1] for v in ves], [v[2] for v in ves],
                         [v[3] for v in ves], env, sigma=1, margin=U(3, 6) * k, hard=True)
        air = self.central_air
        _rasterize_tubes(g, [a[0] for a in air], [a[1] for a in air], [a[2] for a in air],
                         [a[3] for a in air], env, sigma=1, margin=2.5 * k, hard=True)
        e0, e1, r_es = self.esophagus
        _rasterize_tubes(g, e0, e1, r_es, r_es, env, sigma=1, margin=3 * k, hard=True)
        lung &= ~env
        del env
        # a central column between the lungs (anterior junction, retrosternal fat)
        w_col = (U(1.5, 3.5) + 5 * np.clip((s - 0.75) / 0.25, 0, 1)) * k
        ix = np.abs(X - self.x_mid)
        front = Y < self.yv
        for zi in range(g.shape[0]):
            cols = ix < w_col[zi]
            lung[zi][np.ix_(front, cols)] = False
        spine = (X[None, :] / (self.r_vb + 4 * k)) ** 2 + \
            ((Y[:, None] - self.yv) / (self.r_vb + 3 * k)) ** 2 < 1
        spine |= (np.abs(X[None, :]) < self.r_vb * 0.95) & (Y[:, None] > self.yv)
        # the gutters beside the spine end at the rib heads and transverse processes
        para = (X[None, :] / (self.tp + 10 * k)) ** 2 + \
            ((Y[:, None] - self.canal_y - 20 * k) / (22 * k)) ** 2 < 1
        self.paraspinal = para
        spine |= para
        lung &= ~spine[None]
        # lung apices: each lung ends in a dome over its posterolateral centre
        s_t, s_apex = U(0.45, 0.55), U(0.98, 1.05)
        frac = np.clip((s - s_t) / (s_apex - s_t), 0, 1)
        z0 = int(np.searchsorted(frac, 1e-6))
        for sgn in (-1, 1):
            xc, yc = sgn * 0.45 * self.a_b, 0.1 * self.b_p
            e2 = ((X[None, :] - xc) / (0.52 * self.a_b)) ** 2 + \
                ((Y[:, None] - yc) / (0.8 * self.b_a)) ** 2
            side = (X[None, :] < self.x_mid) if sgn < 0 else (X[None, :] >= self.x_mid)
            for zi in range(z0, g.shape[0]):
                lung[zi] &= ~side | (e2 < 1 - frac[zi])  # a paraboloid dome
        self.lung = self._drop_crumbs(lung)

    @staticmethod
    def _drop_crumbs(lung: np.ndarray) -> np.ndarray:
        """Remove the crumbs of lung that the analytic shapes leave between organs: connected
        pieces smaller than 0.1% of the largest (pockets of a few ml stay, as lung tongues)."""
        box = ndimage.find_objects(lung.view(np.uint8))
        if not box:
            return lung
        sub = lung[box[0]]
        lab, n = ndimage.label(sub)
        if n <= 2:
            return lung
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        small = sizes < 0.001 * sizes.max()
        for i, piece in enumerate(ndimage.find_objects(lab), start=1):
            if small[i] and piece is not None:
                sub[piece][lab[piece] == i] = False
        return lung

    # -- pulmonary vessel and bronchial trees ----------------------------------------------------

    def _trees(self) -> None:
        k, kz = self.k, self.kz
        rng = self.rng
        zf = min(1.0, kz / k)
        vessels, airways = [], []

        def fan(n, sgn, r_lo, r_hi):
            """n random root directions spread over the lateral half-space of one side."""
            d = rng.normal(0, 1, (n, 3))
            d[:, 0] = sgn * np.abs(d[:, 0]) * 0.8
            d[:, 1] += 0.6  # the dependent, posterior lung is the largest part
            d[:, 2] = (d[:, 2] - 0.3) * zf
            return _unit(d), rng.uniform(r_lo, r_hi, n) * k

        for side, sgn in (("R", -1), ("L", 1)):
            lobar = np.array([(0.45, -0.15, 0.9), (0.8, -0.55, -0.25), (0.45, 0.35, -0.85),
                              (0.6, 0.8, -0.05), (0.7, -0.2, 0.35), (0.5, -0.6, 0.5),
                              (0.3, 0.9, -0.45), (0.35, 0.85, 0.35)])
            lobar[:, 0] *= sgn
            lobar[:, 2] *= zf
            d0 = _unit(lobar + rng.normal(0, 0.12, lobar.shape))
            r0 = np.array([4.4, 3.4, 4.8, 3.4, 3.0, 3.0, 3.6, 3.2]) * k * rng.uniform(0.9, 1.1, 8)
            d1, r1 = fan(int(rng.integers(16, 22)), sgn, 1.5, 2.8)
            dirs, radii = np.concatenate([d0, d1]), np.concatenate([r0, r1])
            roots = [(self.hila[side], d, float(r), self.main_bronchi[side])
                     for d, r in zip(dirs, radii)]
            v, a = self._grow(roots, bronchi=True)
            vessels.append(v)
            airways.append(a)
            veins = np.array([(0.7, -0.3, 0.65), (0.75, 0.2, -0.6), (0.95, -0.25, -0.1),
                              (0.6, 0.7, -0.2), (0.3, 0.9, -0.5)])
            veins[:, 0] *= sgn
            veins[:, 2] *= zf
            d0 = _unit(veins + rng.normal(0, 0.12, veins.shape))
            r0 = np.array([4.2, 4.6, 3.4, 3.2, 3.6]) * k * rng.uniform(0.9, 1.1, 5)
            d1, r1 = fan(int(rng.integers(12, 18)), sgn, 1.5, 2.8)
            la = self.left_atrium + np.array([sgn * 10 * k, 0, 0])
            dirs, radii = np.concatenate([d0, d1]), np.concatenate([r0, r1])
            v, _ = self._grow([(la, d, float(r), None) for d, r in zip(dirs, radii)], bronchi=False)
            vessels.append(v)
        self.lung_vessels = tuple(np.concatenate([v[i] for v in vessels]) for i in range(4))
        self.lung_airways = tuple(np.concatenate([a[i] for a in airways]) for i in range(5))

    def _grow(self, roots, bronchi: bool):
        """Grow branching tube trees from mediastinal roots into the lung, one generation at a
        time for all tips together. Bronchi run beside the arteries, continuous across branches.
        Returns vessel pieces (p0, p1, r0, r1) and airway pieces (p0, p1, r0, r1, wall) as
        arrays."""
        rng, g, k = self.rng, self.grid, self.k
        lung = self.lung
        vp0, vp1, vr0, vr1 = [], [], [], []
        ap0, ap1, ar0, ar1, aw = [], [], [], [], []
        P, D, R, B, W = [], [], [], [], []
        ts = np.arange(0, 36 * k, 1.5 * k)
        for start, d, r, bstart in roots:
            # march along d until well inside the lung: the root piece crosses the hilum; a
            # direction that does not reach the lung soon is swung round (a few tries)
            for _try in range(6):
                pts = start[None] + ts[:, None] * d[None]
                ok = g.lookup(lung, pts) & g.lookup(lung, pts + 4 * k * d[None])
                hit = np.flatnonzero(ok)
                if len(hit):
                    break
                d = _unit(d + rng.normal(0, 0.6, 3))
            else:
                continue
            end = pts[hit[0]] + 2 * k * d
            vp0.append(start[None]), vp1.append(end[None]), vr0.append([r * 1.1]), vr1.append([r])
            w = _unit(np.cross(d, [0.0, 0.0, 1.0]) + rng.normal(0, 0.3, 3))
            off = _unit(w - np.dot(w, d) * d) * (1.9 * r + 0.6)
            if bronchi and bstart is not None and r > 1.2:
                ap0.append(bstart[None]), ap1.append((end + off)[None])
                ar0.append([1.2 * r]), ar1.append([0.95 * r]), aw.append([max(0.6, 0.2 * r)])
            P.append(end)
            D.append(d)
            R.append(r)
            B.append(end + off)
            W.append(w)
        if P:
            P, D, R, B, W = (np.array(a, dtype=float) for a in (P, D, R, B, W))
            bounces = np.zeros(len(P), dtype=int)
        r_min = 0.4
        total = 0
        for _gen in range(80):
            n = len(P)
            if n == 0 or total > 16000:
                break
            L = np.clip(R * rng.uniform(2.0, 3.5, n) + 1.5, 2.0, 20 * k)
            q = P + D * L[:, None]
            mid = P + D * (0.5 * L)[:, None]
            in_mid = g.lookup(lung, mid)
            ok = in_mid & g.lookup(lung, q)
            keep = ok
            r_end = R * 0.96
            perp = W - (W * D).sum(1, keepdims=True) * D
            bend = q + _unit(perp) * (1.9 * R + 0.6)[:, None]
            idx = np.flatnonzero(keep)
            vp0.append(P[idx]), vp1.append(q[idx]), vr0.append(R[idx]), vr1.append(r_end[idx])
            if bronchi:
                rb = 0.9 * R[idx]
                wall = np.maximum(0.5, 0.2 * rb)
                sel = rb - wall >= 0.6
                j = idx[sel]
                ap0.append(B[j]), ap1.append(bend[j])
                ar0.append(rb[sel]), ar1.append(0.95 * rb[sel])
                aw.append(wall[sel])
            total += len(idx)
            # tips that would leave the lung turn back inwards (twice at most) or end
            turn = ~ok & (bounces < 2)
            Pt, Rt, Wt, Bt, bt = P[turn], R[turn] * 0.9, W[turn], B[turn], bounces[turn] + 1
            inward = -_unit(Pt - self._tree_centre(Pt))
            Dt = _unit(0.4 * D[turn] + inward + rng.normal(0, 0.5, Pt.shape))
            # branching: a major continuation and a minor side branch
            m = len(idx)
            Pn, Dn, Rn = q[idx], D[idx], r_end[idx]
            Wn, Bn = W[idx], bend[idx]
            e = _unit(np.cross(Dn, rng.normal(0, 1, (m, 3))))
            a1 = np.radians(rng.uniform(5, 25, m))[:, None]
            a2 = np.radians(rng.uniform(35, 75, m))[:, None]
            outward = _unit(Pn - self._tree_centre(Pn))
            d1 = _unit(Dn * np.cos(a1) + e * np.sin(a1) + 0.2 * outward)
            d2 = _unit(Dn * np.cos(a2) - e * np.sin(a2) + 0.2 * outward)
            r1 = Rn * rng.uniform(0.88, 0.97, m)
            r2 = Rn * rng.uniform(0.5, 0.75, m)
            P = np.concatenate([Pn, Pn, Pt])
            D = np.concatenate([d1, d2, Dt])
            R = np.concatenate([r1, r2, Rt])
            W = np.concatenate([Wn, Wn, Wt])
            B = np.concatenate([Bn, Bn, Bt])
            bounces = np.concatenate([bounces[idx], np.zeros(m, dtype=int), bt])
            live = R >= r_min
            P, D, R, W, B, bounces = P[live], D[live], R[live], W[live], B[live], bounces[live]

        def cat(parts, width):
            if not parts:
                return np.zeros((0, 3) if width == 3 else (0,))
            return np.concatenate([np.asarray(a, dtype=float).reshape(-1, width) for a in parts]
                                  ).reshape((-1, 3) if width == 3 else (-1,))

        return ((cat(vp0, 3), cat(vp1, 3), cat(vr0, 1), cat(vr1, 1)),
                (cat(ap0, 3), cat(ap1, 3), cat(ar0, 1), cat(ar1, 1), cat(aw, 1)))

    def _tree_centre(self, pts: np.ndarray) -> np.ndarray:
        left = pts[:, 0] >= self.x_mid
        return np.where(left[:, None], self.hila["L"][None], self.hila["R"][None])

    # -- paint the thoracic cavity ---------------------------------------------------------------

    def _blend(self, occ: np.ndarray, value: float, box, within: np.ndarray | None = None) -> None:
        """img <- img + occ * (value - img) inside box; occ is cleared there afterwards."""
        if box is None:
            return
        o = occ[box]
        if within is not None:
            o *= within[box]
        im = self.img[box]
        im += o * (value - im)
        o[...] = 0

    def _paint_cavity(self) -> None:
        g, k, kz = self.grid, self.k, self.kz
        U = self._u
        X, Y, Z = g.X, g.Y, g.Z
        img = self.img
        cavity = self.cav_depth > 0
        cavity &= ~self.bone
        del self.cav_depth
        img[cavity] = self.fat_hu + 8  # mediastinal and extrapleural fat
        img[cavity & self.paraspinal[None]] = self.muscle_hu
        # below the diaphragm: liver on the right, spleen and stomach on the left
        z1 = int(np.searchsorted(Z, float(self.z_dia.max()) + 4 * k)) + 1
        zs = slice(0, z1)
        sub, Zs = img[zs], Z[zs]
        below = cavity[zs] & ~self.above[zs]
        sub[below] = self.fat_hu + 20
        liver_edge = self.x_mid + 15 * k - 0.45 * Y  # the left lobe crosses the midline anteriorly
        liver = below & (X[None, :] < liver_edge[:, None])[None]
        sub[liver] = U(50, 65)
        left = below & ~liver
        sub[left & ((Y[:, None] > 5 * k) & (X[None, :] > 50 * k))[None]] = U(40, 50)  # spleen
        st = (45 * k, -25 * k, self.dome["zL"] - 25 * kz)
        e_st = (((X - st[0]) / (40 * k)) ** 2)[None, None, :] + \
            (((Y - st[1]) / (35 * k)) ** 2)[None, :, None] + \
            (((Zs - st[2]) / (30 * kz)) ** 2)[:, None, None]
        stomach = left & (e_st < 1)
        sub[stomach] = 38
        inner = stomach & (e_st < 0.8)
        sub[inner] = 12
        level = st[1] - U(0, 25) * k  # air-fluid level: a coronal plane when supine
        sub[inner & (Y < level)[None, :, None]] = AIR_HU + 15
        del below, liver, left, stomach, inner, e_st
        dia = cavity[zs] & self.above[zs] & ~self.lung[zs]
        dia &= Zs[:, None, None] < self.z_dia[None] + 4 * k
        sub[dia] = self.muscle_hu
        del dia, self.above
        # heart in its pericardial fat
        h, he, hs = self.heart, self.heart_e, self.heart_slab
        sub, cav_h = img[hs], cavity[hs]
        sub[(he < self._heart_level(h["fat"])) & cav_h] = self.fat_hu + 5  # epicardial fat
        sub[(he < 1) & cav_h] = 40 + self._n(3)
        del self.heart_e, he
        # lung parenchyma: dependent density gradient and a smooth texture
        lung = self.lung
        base, grad = U(-880, -840), U(40, 80)
        yn = np.clip((Y + 0.8 * self.b_a) / (0.8 * self.b_a + 0.8 * self.b_p), 0, 1)
        tex = _smooth_noise(self.rng, g.shape, self.spacing_zyx, 7 * max(k, 0.5))
        tex *= U(8, 16)
        tex += (base + grad * yn ** 2)[None, :, None]
        np.copyto(img, tex, where=lung)
        del tex
        self._fissures()
        # blood: great vessels and the pulmonary trees, about +40 HU
        occ = np.zeros(g.shape, dtype=_F)
        ves = self.great_vessels
        lv = self.lung_vessels
        box = _rasterize_tubes(g, np.concatenate([[v[0] for v in ves], lv[0]]),
                               np.concatenate([[v[1] for v in ves], lv[1]]),
                               np.concatenate([[v[2] for v in ves], lv[2]]),
                               np.concatenate([[v[3] for v in ves], lv[3]]), occ,
                               sigma=self.psf_sigma)
        self._blend(occ, 40 + self._n(3), box, cavity)
        # aortic wall calcification in some patients
        if self.rng.uniform() < 0.4:
            arch, r_aa, r_da = self.aorta
            pts = []
            for _ in range(int(self.rng.integers(2, 7))):
                i = int(self.rng.integers(0, len(arch)))
                dirn = _unit(self.rng.normal(0, 1, 3) * np.array([1, 1, 0.3]))
                pts.append(arch[i] + dirn * (r_aa + (r_da - r_aa) * i / 10) * 0.95)
            pts = np.array(pts)
            box = _rasterize_tubes(g, pts, pts + self.rng.normal(0, 1.5 * k, pts.shape), 1.2 * k,
                                   1.0 * k, occ, sigma=self.psf_sigma)
            self._blend(occ, U(300, 700), box)
        # esophagus: a muscular tube, sometimes with a little air
        e0, e1, r_es = self.esophagus
        self._blend(occ, 35, _rasterize_tubes(g, e0, e1, r_es, r_es, occ, sigma=self.psf_sigma))
        if self.rng.uniform() < 0.5:
            box = _rasterize_tubes(g, e0, e1, 2 * k, 2 * k, occ, sigma=self.psf_sigma)
            self._blend(occ, AIR_HU, box)
        # airways: walls, then the lumen
        ca, la = self.central_air, self.lung_airways
        p0, p1, r0, r1, wall = (np.concatenate([[a[i] for a in ca], la[i]]) for i in range(5))
        self._blend(occ, U(20, 60), _rasterize_tubes(g, p0, p1, r0, r1, occ, sigma=self.psf_sigma))
        self._blend(occ, AIR_HU + 20, _rasterize_tubes(g, p0, p1, r0 - wall, r1 - wall, occ,
                                                        sigma=self.psf_sigma))

    def _fissures(self) -> None:
        """Oblique fissures in both lungs and the horizontal fissure on the right: faint sheets."""
        g, k, kz = self.grid, self.k, self.kz
        U = self._u
        X, Y, Z = g.X, g.Y, g.Z
        amp, sig = U(80, 160), 0.5
        zs = np.flatnonzero(self.lung.any(axis=(1, 2)))
        for side, sgn in (("R", -1), ("L", 1)):
            hil = self.hila[side]
            m = U(0.7, 1.1) * kz / k  # rises posteriorly
            curv = U(-0.004, 0.004) / k
            F = (hil[2] + m * (Y[:, None] - hil[1]) + curv * (X[None, :] - hil[0]) ** 2).astype(_F)
            norm = float(np.sqrt(1 + m * m))
            zh = hil[2] + U(0, 15) * kz
            tilt = U(0.15, 0.3) * kz / k
            sidecols = (X < self.x_mid) if sgn < 0 else (X >= self.x_mid)
            for zi in zs:
                dist = (Z[zi] - F) / norm
                sheet = np.abs(dist) < 3 * sig
                if side == "R":
                    dh = Z[zi] - zh - tilt * (Y - hil[1])
                    hor = (np.abs(dh) < 3 * sig)[:, None] & (Z[zi] < F - 2)
                    sheet |= hor
                sel = sheet & self.lung[zi] & sidecols[None, :]
                if not sel.any():
                    continue
                val = np.exp(-(dist * dist) / (2 * sig * sig))
                if side == "R":
                    val = np.maximum(val, 0.5 * np.exp(-(dh * dh) / (2 * sig * sig))[:, None] * hor)
                self.img[zi][sel] += amp * val[sel]

    # -- nodules ---------------------------------------------------------------------------------

    def _place_nodules(self) -> None:
        rng, g = self.rng, self.grid
        count = int(rng.choice([0, 1, 2, 3, 4], p=[0.12, 0.33, 0.27, 0.16, 0.12]))
        if count == 0:
            return
        # candidate centres come from a coarse distance-to-pleura map (cells of about 3 mm);
        # the exact check against the full-resolution lung mask follows
        f = np.maximum(1, np.rint(3.0 / g.spacing).astype(int))  # x, y, z steps
        coarse = self.lung[::f[2], ::f[1], ::f[0]]
        if not coarse.any():
            return
        cell = g.spacing * f
        depth = ndimage.distance_transform_edt(coarse, sampling=(cell[2], cell[1], cell[0]))
        slack = float(np.linalg.norm(cell)) / 2
        placed: list[tuple[np.ndarray, float]] = []
        for _ in range(count):
            att = str(rng.choice(ATTENUATIONS, p=[0.5, 0.2, 0.3]))
            cls = int(rng.choice(3, p=[0.45, 0.35, 0.2]))
            diam = self._u(*((4.0, 10.0), (10.0, 20.0), (20.0, 30.0))[cls])
            if att == "part-solid":
                diam = max(diam, self._u(8, 12))
            elif att == "ggn":
                diam = max(diam, self._u(5, 7))
            floor = 4.0 if att == "solid" else 5.0  # fainter and smaller would be invisible
            while diam >= floor:
                shape = self._nodule_shape(att, diam / 2)
                reach = shape["reach"]
                cand = np.flatnonzero(depth.ravel() >= reach + 1.5 + slack)
                nodule = None
                for _attempt in range(12 if len(cand) else 0):
                    iz, iy, ix = np.unravel_index(cand[int(rng.integers(len(cand)))], depth.shape)
                    c = g.origin + (np.array([ix, iy, iz]) + rng.uniform(-0.5, 0.5, 3)) * cell
                    if any(np.linalg.norm(c - pc) < reach + pr + 3 for pc, pr in placed):
                        continue
                    if not self._ball_in_lung(c, reach + 1.5):
                        continue
                    nodule = self._draw_nodule(c, shape)
                    break
                if nodule is not None:
                    self.nodules.append(nodule)
                    placed.append((c, reach))
                    break
                diam *= 0.85  # it does not fit: try smaller

    def _box(self, c: np.ndarray, radius: float):
        g = self.grid
        lo = np.floor(g.to_index(c - radius)).astype(int)
        hi = np.ceil(g.to_index(c + radius)).astype(int)
        return lo, hi

    def _box_coords(self, lo, hi):
        g = self.grid
        x = g.X[lo[0]:hi[0] + 1].astype(float)[None, None, :]
        y = g.Y[lo[1]:hi[1] + 1].astype(float)[None, :, None]
        z = g.Z[lo[2]:hi[2] + 1].astype(float)[:, None, None]
        return z, y, x

    def _ball_in_lung(self, c: np.ndarray, radius: float) -> bool:
        g = self.grid
        lo, hi = self._box(c, radius)
        if np.any(lo < 0) or np.any(hi >= g.dims_xyz):
            return False
        sub = self.lung[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
        zz, yy, xx = self._box_coords(lo, hi)
        ball = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz - c[2]) ** 2 <= radius * radius
        return bool(sub[ball].all())

    def _nodule_shape(self, att: str, r0: float) -> dict:
        rng, U = self.rng, self._u
        lob = {"solid": U(0.08, 0.3), "part-solid": U(0.08, 0.22), "ggn": U(0.08, 0.22)}[att]
        waves = self._waves(lob)
        spikes = []
        if att == "solid" and rng.uniform() < 0.4 and r0 > 3:
            for _ in range(int(rng.integers(5, 14))):
                spikes.append((_unit(rng.normal(0, 1, 3)), r0 * U(0.4, 1.2), U(40, 160)))
        edge = {"solid": 0.35 * self.sxy, "part-solid": 0.6, "ggn": U(0.8, 1.6)}[att]
        hu = {"solid": U(20, 60), "part-solid": U(-500, -300), "ggn": U(-700, -400)}[att]
        shape = dict(att=att, r0=r0, waves=waves, spikes=spikes, edge=edge, hu=hu)
        if att == "part-solid":
            shape["core_r"] = r0 * U(0.25, 0.5)
            shape["core_waves"] = self._waves(U(0.1, 0.25))
            shape["core_off"] = _unit(rng.normal(0, 1, 3)) * (r0 - shape["core_r"]) * U(0, 0.5)
            shape["core_hu"] = U(20, 50)
        spike = max((sp[1] for sp in spikes), default=0.0)
        shape["reach"] = r0 * (1 + 2.3 * lob) + spike + 3 * edge
        return shape

    def _waves(self, amplitude: float) -> list:
        """Smooth random radial deformation: a few plane waves over the unit sphere."""
        waves = [(_unit(self.rng.normal(0, 1, 3)) * self._u(1.5, 5.0), self._u(0, 2 * np.pi),
                  self._n(1)) for _ in range(5)]
        norm = float(np.sqrt(sum(a * a for _, _, a in waves))) or 1.0
        return [(w, ph, amplitude * a / norm) for w, ph, a in waves]

    @staticmethod
    def _radius_field(ux, uy, uz, r0, waves, spikes):
        R = np.ones_like(ux)
        for w, ph, a in waves:
            R += a * np.cos(w[0] * ux + w[1] * uy + w[2] * uz + ph)
        R *= r0
        for sdir, length, power in spikes:
            R += length * np.maximum(0, sdir[0] * ux + sdir[1] * uy + sdir[2] * uz) ** power
        return R

    def _draw_nodule(self, c: np.ndarray, shape: dict) -> Nodule | None:
        rng, g = self.rng, self.grid
        lo, hi = self._box(c, shape["reach"])
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, g.dims_xyz - 1)
        zz, yy, xx = self._box_coords(lo, hi)
        dx, dy, dz = np.broadcast_arrays(xx - c[0], yy - c[1], zz - c[2])
        dist = np.sqrt(dx * dx + dy * dy + dz * dz)
        safe = np.maximum(dist, 1e-6)
        R = self._radius_field(dx / safe, dy / safe, dz / safe, shape["r0"], shape["waves"],
                               shape["spikes"])
        occ = 0.5 * special.erfc((dist - R) / (_SQRT2 * shape["edge"]))
        occ[(occ < 1e-3) | (dist > shape["reach"])] = 0  # only inside the ball checked to be lung
        total = float(occ.sum())
        if total <= 0:
            return None
        diameter = (6 * total * float(np.prod(g.spacing)) / np.pi) ** (1 / 3)
        centroid = np.array([(occ * xx).sum(), (occ * yy).sum(), (occ * zz).sum()]) / total
        box = self.img[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
        target = np.full(occ.shape, shape["hu"])
        if shape["att"] in ("ggn", "part-solid"):
            # hazy, heterogeneous ground glass; vessels stay visible through it
            het = np.zeros_like(dist)
            for _ in range(4):
                w = _unit(rng.normal(0, 1, 3)) * self._u(0.6, 1.4)
                het += np.cos(w[0] * dx + w[1] * dy + w[2] * dz + self._u(0, 6.3))
            target += self._u(20, 50) * het / 2
        elif shape["att"] == "solid":
            target += rng.normal(0, 6, occ.shape)
        np.maximum(box, box + occ * (target - box), out=box, casting="unsafe")
        if shape["att"] == "part-solid":
            cc = c + shape["core_off"]
            cx, cy, cz = np.broadcast_arrays(xx - cc[0], yy - cc[1], zz - cc[2])
            cd = np.sqrt(cx * cx + cy * cy + cz * cz)
            cs = np.maximum(cd, 1e-6)
            Rc = self._radius_field(cx / cs, cy / cs, cz / cs, shape["core_r"],
                                    shape["core_waves"], [])
            core = 0.5 * special.erfc((cd - Rc) / (_SQRT2 * 0.35 * self.sxy))
            np.maximum(box, box + core * (shape["core_hu"] - box), out=box, casting="unsafe")
        world = centroid - g.origin + np.asarray(self.origin_xyz, dtype=float)
        return Nodule((float(world[0]), float(world[1]), float(world[2])), float(diameter),
                      shape["att"])

    # -- acquisition -----------------------------------------------------------------------------

    def _finish(self) -> np.ndarray:
        img = self.img
        buf = np.empty_like(img)
        # reconstruction kernel: a light in-plane blur
        _blur3(img, 2, self.kernel_centre, buf)
        _blur3(buf, 1, self.kernel_centre, img)
        # correlated noise: uniform noise smoothed in-plane is close to Gaussian
        noise = self.rng.random(img.shape, dtype=_F)
        noise -= 0.5
        c = 0.6
        _blur3(noise, 2, c, buf)
        _blur3(buf, 1, c, noise)
        per_axis = c * c + 2 * ((1 - c) / 2) ** 2  # variance gain of the 3-tap filter
        noise *= self.noise_sigma * float(np.sqrt(12.0)) / per_axis
        img += noise
        del noise, buf
        np.clip(img, HU_MIN, HU_MAX, out=img)
        np.rint(img, out=img)
        return img.astype(np.int16)
