"""A built-in brain MR phantom with gliomas, written as BraTS-style case folders.

Each patient is a head built from smooth random fields: skin, subcutaneous fat, temporalis
muscle, a skull with dark cortical tables and patches of fatty diploe, extra-axial CSF, a folded
cortical grey-matter ribbon (sulci are the zero sheets of a radially stretched noise field),
white matter, deep grey nuclei, lateral and third ventricles with choroid plexus, the
interhemispheric fissure with the falx and the superior sagittal sinus, the Sylvian fissures,
and in the low slices a tentorium over a finely foliated cerebellum, the brainstem with the
fourth ventricle, the skull base with the orbits and the sphenoid sinus. The head's size, shape,
position and tilt, the layer thicknesses, the ventricle size (atrophy) and the folding vary per
patient, and the anatomy changes along z (ventricles only in the middle slices).

Most patients carry one glioma, some two or three, a few none: a sphere deformed by smooth noise,
from about 5 to 50 mm across, with BraTS structure (necrotic or non-enhancing core, enhancing rim,
vasogenic oedema that spreads along the white matter), pushing the ventricles and midline aside.
Some are faint. White-matter hyperintensities, enhancing venous sinuses and choroid plexus are
look-alikes for a classifier.

The anatomy is computed once per patient as a tissue label per head voxel and then mapped to
each sequence's contrast (T1, contrast-enhanced T1, T2, FLAIR) with per-patient contrast
jitter, a slight in-plane partial-volume blur, a smooth multiplicative bias field and Rician
noise. Air outside the head is exactly 0, as in BraTS. The geometry is laid out for a
240 x 240 x 155 mm field and scaled to the requested shape, so a small shape gives the same
anatomy at a coarser resolution.

Arrays follow `pathosynth.data.image`: ``[z, y, x]``, z running inferior to superior, y anterior
to posterior (rows; anterior at the top of a plain display) and x right to left (columns: the
radiological display).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from pathosynth.data.image import MedicalImage
from pathosynth.data.writers import write_nifti

SEQUENCES = ("t1", "t1ce", "t2", "flair")
CASE_PREFIX = "PHANTOM_BRAIN_"
_FIELD_MM = (155.0, 240.0, 240.0)  # the physical field the anatomy is laid out for, [z, y, x]

# Tissue labels of the internal label map.
AIR, SKIN, FAT, MUSCLE, BONE, MARROW, CSF, GM, WM, DGM = range(10)
DURA, SINUS, CHOROID, WMH, OEDEMA, ENHANCING, NECROSIS, NONENH = range(10, 18)
_N_TISSUES = 18
TISSUE_NAMES = ("air", "skin", "fat", "muscle", "bone", "marrow", "csf", "grey_matter",
                "white_matter", "deep_grey", "dura", "venous_sinus", "choroid_plexus",
                "wm_hyperintensity", "oedema", "enhancing", "necrosis", "non_enhancing")

# BraTS labels of the tumour tissues.
_SEG_OF_TISSUE = np.zeros(_N_TISSUES, dtype=np.uint8)
_SEG_OF_TISSUE[[NECROSIS, NONENH]] = 1
_SEG_OF_TISSUE[OEDEMA] = 2
_SEG_OF_TISSUE[ENHANCING] = 4

# Relative signal of each tissue per sequence (white matter on T1 = 1).
_CONTRAST = {
    #        air  skin  fat   musc  bone  marr  csf   gm    wm    dgm
    "t1":    [0.0, 0.78, 1.45, 0.50, 0.05, 1.05, 0.25, 0.68, 1.00, 0.80,
              # dura sinus chor  wmh   oed   enh   nec   nonenh
              0.28, 0.45, 0.62, 0.86, 0.76, 0.74, 0.34, 0.62],
    "t1ce":  [0.0, 0.82, 1.40, 0.58, 0.05, 1.02, 0.27, 0.70, 1.00, 0.82,
              0.70, 1.45, 1.30, 0.87, 0.79, 1.60, 0.33, 0.64],
    "t2":    [0.0, 0.72, 1.00, 0.40, 0.04, 0.72, 1.75, 0.80, 0.56, 0.68,
              0.22, 0.12, 1.10, 0.95, 1.22, 0.95, 1.50, 1.12],
    "flair": [0.0, 0.70, 1.05, 0.45, 0.04, 0.78, 0.10, 0.86, 0.68, 0.78,
              0.28, 0.25, 0.55, 1.12, 1.35, 1.12, 0.70, 1.18],
}
# Scanner-unit scale of white matter per sequence (low, high), drawn per patient.
_SCALE = {"t1": (350.0, 1100.0), "t1ce": (450.0, 1500.0), "t2": (250.0, 900.0),
          "flair": (250.0, 800.0)}

F32 = np.float32
# One buffer of white noise per patient; each sequence reads two windows of it at different lags.
_NOISE_LAGS = 1 << 16


def write_brats_cases(out_dir: Path, n_patients: int, seed: int, *,
                      shape: tuple[int, int, int] = (155, 240, 240),
                      sequences: Sequence[str] = SEQUENCES,
                      progress: Callable[[], object] | None = None) -> list[str]:
    """Write n_patients BraTS-style case folders under out_dir; return the case ids.

    Case ``PHANTOM_BRAIN_0007`` is the folder ``out_dir/PHANTOM_BRAIN_0007/`` holding
    ``PHANTOM_BRAIN_0007_<sequence>.nii`` for each requested sequence and
    ``PHANTOM_BRAIN_0007_seg.nii`` (uint8, BraTS labels 0 background, 1 necrotic/non-enhancing
    core, 2 oedema, 4 enhancing tumour). Images are int16, non-negative, air exactly 0, 1 mm
    spacing, ``[z, y, x]`` with the plain direction. Patient ``i`` draws only from
    ``np.random.default_rng([seed, i])``: the same seed writes byte-identical files, adding
    patients leaves the earlier ones unchanged, and a subset of sequences is the same images.
    ``progress`` is called once per finished patient.
    """
    out_dir = Path(out_dir)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be three sizes of at least 8, got {shape}")
    sequences = tuple(sequences)
    if any(s not in SEQUENCES for s in sequences) or len(set(sequences)) != len(sequences):
        raise ValueError(f"sequences must be distinct names from {SEQUENCES}, got {sequences}")
    if n_patients < 0:
        raise ValueError(f"n_patients must be >= 0, got {n_patients}")
    width = max(4, len(str(max(n_patients - 1, 0))))
    case_ids = []
    for index in range(n_patients):
        case = f"{CASE_PREFIX}{index:0{width}d}"
        images, seg = make_brain_patient(np.random.default_rng([seed, index]), shape, sequences)
        case_dir = out_dir / case
        case_dir.mkdir(parents=True, exist_ok=True)
        for name in sequences:
            write_nifti(case_dir / f"{case}_{name}.nii",
                        MedicalImage(images.pop(name), spacing=(1.0, 1.0, 1.0)))
        write_nifti(case_dir / f"{case}_seg.nii", MedicalImage(seg, spacing=(1.0, 1.0, 1.0)))
        del seg
        case_ids.append(case)
        if progress is not None:
            progress()
    return case_ids


def make_brain_patient(rng: np.random.Generator, shape: tuple[int, int, int],
                       sequences: Sequence[str] = SEQUENCES
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One patient: ``{sequence: int16 [z, y, x]}`` and the uint8 BraTS segmentation ``[z, y, x]``.

    The arrays are Fortran-ordered views (x fastest in memory, the NIfTI layout), which the
    NIfTI writer stores without a transposing copy.
    """
    head = _Head(rng, shape)
    labels, blend = _label_map(rng, head)
    params = _sequence_params(rng)
    bias = [head.field(rng, 90.0) for _ in range(2)]
    texture = head.field(rng, 6.0)  # faint tissue heterogeneity, the same on every sequence
    noise = rng.standard_normal(labels.size + _NOISE_LAGS, dtype=F32)

    out_index = head.output_index()
    seg = np.zeros(shape[::-1], dtype=np.uint8)
    tumour = np.nonzero(labels >= OEDEMA)[0]
    seg.ravel()[out_index[tumour]] = _SEG_OF_TISSUE[labels[tumour]]

    labels3 = np.zeros(head.crop_shape, dtype=np.uint8)
    labels3.ravel()[head.flat] = labels
    images = {}
    for name in sequences:
        values = _sequence_values(params[name], labels3, labels, blend, head, bias, texture,
                                  noise)
        out = np.zeros(shape[::-1], dtype=np.int16)
        out.ravel()[out_index] = values
        images[name] = out.T
    return images, seg.T


def tissue_map(seed: int, index: int, shape: tuple[int, int, int] = (155, 240, 240)) -> np.ndarray:
    """The uint8 tissue labels ``[z, y, x]`` of patient ``index`` of ``seed`` (see TISSUE_NAMES).

    Ground truth for checks and debugging: it repeats the patient's anatomy draws and stops
    before the images.
    """
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng([seed, index])
    head = _Head(rng, shape)
    labels, _ = _label_map(rng, head)
    out = np.zeros(shape[::-1], dtype=np.uint8)
    out.ravel()[head.output_index()] = labels
    return out.T


# ------------------------------------------------------------------------------------ fields

def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], vox: Sequence[float],
                  corr_mm: float) -> np.ndarray:
    """A smooth random float32 field of about unit variance with correlation length corr_mm.

    Random coefficients on a coarse lattice (node spacing corr_mm) spread with a separable
    Gaussian kernel: three small matrix products instead of a full-resolution filter.
    """
    kernels = []
    for n, v in zip(shape, vox):
        length = n * v
        nodes = int(np.ceil(length / corr_mm)) + 3
        centres = (np.arange(nodes) - (nodes - 1) / 2.0) * corr_mm + length / 2.0
        pos = (np.arange(n) + 0.5) * v
        k = np.exp(-0.5 * ((pos[:, None] - centres[None, :]) / (0.75 * corr_mm)) ** 2)
        k /= np.sqrt((k ** 2).sum(axis=1, keepdims=True))
        kernels.append(k.astype(F32))
    k0, k1, k2 = kernels
    coeff = rng.standard_normal((k0.shape[1], k1.shape[1], k2.shape[1]), dtype=F32)
    out = np.matmul(k1, np.matmul(coeff, k2.T))  # (c0, n1, n2)
    out = (k0 @ out.reshape(k0.shape[1], -1)).reshape(shape)
    return out


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation acting on (z, y, x) vectors: yaw about z, pitch about x, roll about y."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[1, 0, 0], [0, cy, -sy], [0, sy, cy]])
    r_pitch = np.array([[cp, -sp, 0], [sp, cp, 0], [0, 0, 1]])
    r_roll = np.array([[cr, 0, -sr], [0, 1, 0], [sr, 0, cr]])
    return r_roll @ r_pitch @ r_yaw


def _ellipsoid(c: Sequence[np.ndarray], centre: Sequence[float], semi: Sequence[float]):
    """Normalised squared radius of points c = (z, y, x) in an axis-aligned ellipsoid."""
    out = ((c[0] - F32(centre[0])) * F32(1.0 / semi[0])) ** 2
    out += ((c[1] - F32(centre[1])) * F32(1.0 / semi[1])) ** 2
    out += ((c[2] - F32(centre[2])) * F32(1.0 / semi[2])) ** 2
    return out


# -------------------------------------------------------------------------------------- head

class _Head:
    """Per-patient geometry and the head voxels, kept as 1D arrays for speed.

    ``flat`` indexes the head voxels in the crop (C order), ``u`` holds their head-frame
    coordinates in mm (superior, posterior, left of the head centre), ``depth`` their depth
    below the skin in mm, ``lr`` their index in a half-resolution crop (for smooth fields).
    """

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int]):
        self.shape = shape
        self.vox = tuple(f / n for f, n in zip(_FIELD_MM, shape))  # virtual mm per voxel
        u = rng.uniform
        self.axes = (u(84, 96), u(88, 101), u(69, 80))  # semi-axes (z, y, x), mm
        self.centre = (u(60, 70), 120 + u(-8, 8), 120 + u(-6, 6))
        self.rot = _rotation(np.deg2rad(u(-9, 9)), np.deg2rad(u(-7, 7)), np.deg2rad(u(-4, 4)))
        self.egg = u(0.0, 0.08)  # wider at the back than at the front
        self.skin = u(1.4, 2.4)
        self.fat = u(2.0, 4.5)
        self.skull = u(4.5, 7.0)
        self.csf = u(1.2, 3.2)
        self.atrophy = u(0.0, 1.0) ** 2
        self.ventricle_scale = u(0.8, 1.15) + 0.6 * self.atrophy
        self.sulcus_depth = u(12.0, 18.0)
        self.gm_thickness = u(2.0, 2.6)
        self.gyrus_sigma = u(1.7, 2.2)  # folding scale, in sulcal-noise grid cells
        self.folium_mm = u(4.0, 5.5)
        outer = self.skin + self.fat + 1.0 + self.skull + self.csf + 0.8
        self.brain_axes = tuple(a - outer for a in self.axes)

        # Crop: the axis-aligned box of the rotated ellipsoid, plus a margin.
        rot = self.rot
        half = np.sqrt(((rot * np.asarray(self.axes)[:, None]) ** 2).sum(axis=0)) * 1.1 + 3.0
        lo = np.maximum(np.floor((np.asarray(self.centre) - half) / self.vox).astype(int), 0)
        hi = np.minimum(np.ceil((np.asarray(self.centre) + half) / self.vox).astype(int), shape)
        self.start = lo
        self.crop_shape = tuple(int(b - a) for a, b in zip(lo, hi))
        grids = [((np.arange(a, b) + 0.5) * v - c).astype(F32)
                 for a, b, v, c in zip(lo, hi, self.vox, self.centre)]

        # Candidates: the voxels inside a slightly inflated ellipsoid p^T M p < limit, found row
        # by row (each x row crosses it in one interval), so no 3D array is needed.
        m = rot.T @ np.diag(1.0 / np.asarray(self.axes) ** 2) @ rot
        gz, gy, gx = grids
        zz, yy = gz[:, None].astype(float), gy[None, :].astype(float)
        a2 = m[0, 0] * zz ** 2 + 2 * m[0, 1] * zz * yy + m[1, 1] * yy ** 2
        b2 = 2 * (m[0, 2] * zz + m[1, 2] * yy)
        limit = (1.045 * (1.0 + self.egg)) ** 2
        disc = np.maximum(b2 ** 2 - 4 * m[2, 2] * (a2 - limit), 0.0)
        x0 = float(self.centre[2]) / self.vox[2] - 0.5 - int(lo[2])
        i_lo = np.ceil((-b2 - np.sqrt(disc)) / (2 * m[2, 2]) / self.vox[2] + x0)
        i_hi = np.floor((-b2 + np.sqrt(disc)) / (2 * m[2, 2]) / self.vox[2] + x0) + 1
        i_lo = np.clip(i_lo, 0, self.crop_shape[2]).astype(np.int64).ravel()
        i_hi = np.clip(i_hi, 0, self.crop_shape[2]).astype(np.int64).ravel()
        counts = np.where(disc.ravel() > 0, np.maximum(i_hi - i_lo, 0), 0)
        rows = np.repeat(np.arange(counts.size), counts)
        starts = np.cumsum(counts) - counts
        ix = np.arange(rows.size) - np.repeat(starts - i_lo, counts)
        row_u = [(rot[i, 0] * zz + rot[i, 1] * yy).astype(F32).ravel() for i in range(3)]
        px = gx[ix]
        uz, uy, ux = (np.repeat(row_u[i], counts) + F32(rot[i, 2]) * px for i in range(3))
        del px
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
        # Depth below the skin (mm), to first order: (1 - r) / |grad r|.
        uz, uy, ux = self.u
        inv_ax = self._inv_ax(uy)
        grad = (uz * F32(1 / az ** 2)) ** 2
        grad += (uy * F32(1 / ay ** 2)) ** 2
        grad += (ux * inv_ax * inv_ax) ** 2
        np.sqrt(grad, out=grad)
        self.depth = (1.0 - rr) * rr / np.maximum(grad, F32(1e-9))

    def _inv_ax(self, uy: np.ndarray) -> np.ndarray:
        """1 / the left-right semi-axis at each point: the egg is wider at the back."""
        return F32(1.0 / self.axes[2]) / (1.0 + F32(self.egg / self.axes[1]) * uy)

    @property
    def size(self) -> int:
        return self.depth.size

    def field(self, rng: np.random.Generator, corr_mm: float) -> np.ndarray:
        """A smooth unit-variance field clipped to +-2 at the head voxels (half resolution)."""
        half_vox = tuple(2 * v for v in self.vox)
        f = _smooth_field(rng, self.half_shape, half_vox, corr_mm)
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


def _near(coords, centre, half_mm: float) -> np.ndarray:
    """Indices of the points (coords = z, y, x arrays) within a box of half_mm around centre."""
    sel = np.abs(coords[0] - F32(centre[0])) < F32(half_mm)
    for i in (1, 2):
        sel &= np.abs(coords[i] - F32(centre[i])) < F32(half_mm)
    return np.nonzero(sel)[0]


# -------------------------------------------------------------------------------- label map

def _label_map(rng: np.random.Generator, head: _Head):
    """Tissue label of every head voxel (1D, uint8) and the tumour blending data."""
    n = head.size
    depth = head.depth
    uz, uy, ux = head.u
    slow = head.field(rng, 50.0)
    slow2 = head.field(rng, 20.0)
    labels = np.full(n, SKIN, dtype=np.uint8)

    # Scalp and skull, outside in: each boundary is a depth that varies smoothly.
    lateral = np.clip((np.abs(ux) * F32(1 / head.axes[2]) - 0.55) * F32(1 / 0.4), 0, 1)
    lateral *= np.clip((0.3 - uz * F32(1 / head.axes[0])) * F32(1 / 0.6), 0, 1)
    t_skin = head.skin + 0.25 * slow2
    t_fat = t_skin + head.fat * (1.0 + 0.15 * slow) * (1.0 - 0.6 * lateral)
    t_muscle = t_fat + 0.8 + 10.0 * lateral
    t_skull = t_muscle + head.skull * (1.0 + 0.1 * slow2)
    t_csf = t_skull + 0.7 + head.csf * (1.0 + 0.2 * slow)
    labels[depth > t_skin] = FAT
    labels[depth > t_fat] = MUSCLE
    labels[depth > t_muscle] = BONE
    diploe = ((depth > t_muscle + 1.5) & (depth < t_skull - 1.3)
              & (slow2 > -0.3))
    labels[diploe] = MARROW
    labels[depth > t_skull] = DURA
    labels[depth > t_skull + 0.7] = CSF
    del lateral, t_skin, t_fat, t_muscle, diploe

    # Everything inside the dura: 1D arrays over the intracranial voxels.
    ic = np.nonzero(depth > t_skull + 0.7)[0]
    Bz, By, Bx = head.brain_axes
    tumours = _plan_tumours(rng, head)
    ub = (uz[ic], uy[ic], ux[ic])  # unwarped
    bz, by, bx = (a.copy() for a in ub)
    for t in tumours:
        _mass_effect(t, ub, (bz, by, bx))
    nz, ny, nx = bz * F32(1 / Bz), by * F32(1 / By), bx * F32(1 / Bx)
    lab = labels[ic]
    d_env = depth[ic] - t_csf[ic]
    d_brain = d_env.copy()

    # Surfaces other than the convexity: midline fissure, tentorium, Sylvian fissures, skull base.
    # Each is worked out on the subset of points it can reach.
    n_ic = ic.size
    side_x = np.abs(nx)
    stem = np.full(n_ic, 1e3, dtype=F32)  # brainstem ellipse (< 1 inside), low slices only
    lowz = np.nonzero(nz < 0.1)[0]
    ly, lx = ny[lowz], nx[lowz]
    stem[lowz] = ((ly - 0.08) * F32(1 / 0.17)) ** 2 + (lx * F32(1 / 0.2)) ** 2
    cerebellum = np.zeros(n_ic, dtype=bool)
    falx = np.zeros(n_ic, dtype=bool)
    post = lowz[ly > 0.55 * np.abs(lx)]  # the posterior fossa and the tentorium above it
    del ly, lx
    tent_z = -0.18 - 0.32 * np.clip(ny[post], 0, 1) - 0.6 * nx[post] ** 2
    cerebellum[post] = (nz[post] < tent_z) & (stem[post] >= 1.0)
    d_tent = np.abs(nz[post] - tent_z) * F32(Bz) - 0.8
    d_brain[post] = np.minimum(d_brain[post], d_tent)
    tentorium = post[d_tent < -0.45]
    del tent_z, d_tent

    # The midline fissure runs shallower over the corpus callosum and diencephalon (the
    # "bridge"), not at all through the brainstem and the vermis, and opens into the cisterns.
    cc_top = 0.20 - 0.35 * ny * ny
    inward = np.minimum((0.40 - np.abs(ny + 0.02)) * F32(By), (cc_top - nz) * F32(Bz))
    del cc_top
    np.minimum(inward, (nz + 0.32) * F32(Bz), out=inward)
    np.maximum(inward, 0, out=inward)
    mid = np.abs(bx)
    falx |= (mid < 0.45) & (inward <= 0)
    mid += 3.0 * inward - F32(0.9 + 0.8 * head.atrophy)
    del inward
    solid = lowz[(stem[lowz] < 1.0) & (nz[lowz] <= -0.32)]
    solid = np.concatenate([solid, post[cerebellum[post] & (ny[post] < 0.75)]])
    mid[solid] = 1e3
    falx[solid] = False
    cis = lowz[nz[lowz] < -0.32]
    cy = ny[cis]
    cis = cis[(cy < -0.05) & (cy > -0.32) & (side_x[cis] < 0.07 + 0.2 * (cy + 0.32))]
    mid[cis] = -1.0
    falx[cis] = False
    falx[tentorium] = True
    del solid, cis, cy, post, tentorium
    np.minimum(d_brain, mid, out=d_brain)

    # Sylvian fissures and the insula around the basal ganglia.
    lat = np.nonzero((nz > -0.5) & (nz < -0.02) & (side_x > 0.44))[0]
    sy, sx, sz = ny[lat], side_x[lat], nz[lat]
    d_syl = np.abs(sy - (-0.08 + 0.45 * (sx - 0.55))) * F32(By) - (0.6 + 1.2 * head.atrophy)
    d_syl[~((sz < -0.08) & (sx > 0.5) & (sy > -0.45) & (sy < 0.25))] = 1e3
    d_ins = np.abs(sx - 0.52) * F32(Bx) - 0.7
    d_ins[~((sz > -0.45) & (np.abs(sy + 0.05) < 0.28) & (sx < 0.62))] = 1e3
    d_brain[lat] = np.minimum(d_brain[lat], np.minimum(d_syl, d_ins))
    del lat, sy, sx, sz, d_syl, d_ins

    # Below the diencephalon the temporal lobes stand apart from the brainstem: between them
    # lie the basal cisterns and, further forward, the skull base with the orbits and sinuses.
    base = np.zeros(n_ic, dtype=bool)
    deep = lowz[nz[lowz] < -0.45]
    p = (nz[deep], ny[deep], nx[deep])
    low = -0.45 - p[0]
    gap = (stem[deep] >= 1.0) & ((p[1] * F32(1 / 0.24)) ** 2 + (p[2] / (0.15 + 0.7 * low)) ** 2
                                 < 1.0)
    d_brain[deep[gap]] = np.minimum(d_brain[deep[gap]], -1.0)
    in_base = _ellipsoid(p, (-1.0, -0.5, 0.0), (0.4, 0.6, 0.3)) < 1.0
    in_base |= _ellipsoid((p[0], p[1], np.abs(p[2])), (-0.98, -0.95, 0.42), (0.33, 0.4, 0.32)) < 1
    base[deep[in_base]] = True
    d_brain[deep[in_base]] = -5.0
    del deep, p, low, gap, in_base, lowz

    # Cortex: sulci are the zero sheets of a noise field stretched along the radius.
    brain = d_brain > 0
    lab[:] = CSF
    lab[brain] = WM
    band = np.nonzero(brain & (d_brain < head.sulcus_depth * 1.3 + head.gm_thickness))[0]
    db = d_brain[band]
    cb = cerebellum[band]
    # Nearest surface: the interhemispheric fissure or the convexity. Sulci of the two patterns
    # end a little before the seam between them rather than meeting in a spurious sheet.
    m_band = mid[band]
    e_band = d_env[band]
    medial = m_band < e_band
    seam = np.abs(m_band - e_band) < 2.0
    del mid, d_env, m_band
    e = _sulcal_distance(rng, head, ic[band], np.maximum(e_band, 0), db, cb, medial, bx[band])
    e[seam] = 1e3
    s_depth = head.sulcus_depth * (1.0 + 0.12 * slow[ic[band]])
    s_depth[cb] *= 0.6
    cleft = 0.45 + (0.25 + 0.7 * head.atrophy) * np.clip(1.0 - db / s_depth, 0, 1)
    cleft[cb] = 0.35
    thick = np.full(db.size, head.gm_thickness, dtype=F32)
    thick[cb] = 0.45 * head.gm_thickness
    band_lab = np.full(db.size, WM, dtype=np.uint8)
    band_lab[(db < thick) | ((db < s_depth + thick) & (e < cleft + thick))] = GM
    band_lab[(db < s_depth) & (e < cleft)] = CSF
    lab[band] = band_lab
    del band, db, cb, s_depth, e, cleft, thick, band_lab, seam, medial, e_band
    lab[falx & ~brain] = DURA
    sss = (np.abs(bx) < 2.5 + 0.6 * (t_csf[ic] - depth[ic])) & (d_brain < 0) \
        & (depth[ic] < t_csf[ic] + 0.5) & (nz > -0.35) & ~base
    lab[sss] = SINUS
    del sss, falx

    _deep_structures(rng, head, lab, brain, (bz, by, bx), (nz, ny, nx), stem, cerebellum)
    _skull_base(lab, base, nz, ny, nx, slow2[ic])
    labels[ic] = lab
    _orbits(head, labels)
    blend = _paint_tumours(rng, head, labels, ic, ub, d_brain, tumours)
    return labels, blend


def _sulcal_distance(rng, head, pts, d_env, d_brain, cerebellar, medial, bx):
    """Approximate distance (mm) from each cortical-band point to the nearest sulcal sheet.

    The sheets are the zero set of a smooth noise field G, sampled at the point's projection on
    its nearest surface pushed back along the surface normal by 0.65 x its depth below that
    surface, so the sheets run roughly perpendicular to the surface (stretched 1.5x). On the
    convexity the projection is the direction from the head centre and the depth is d_env; on
    the medial surface the projection is the point's (z, y) with x = +-1.1 and the depth |x|.
    G / |grad G| is the first-order distance to the zero set, so sulci keep an even
    width instead of swelling where the field is flat. In the cerebellum the sheets are folia
    parallel to the surface instead.
    """
    m = 80
    sigma = head.gyrus_sigma
    grid = ndimage.gaussian_filter(rng.standard_normal((m, m, m), dtype=F32), sigma, mode="wrap")
    gz, gy, gx = np.gradient(grid)
    norm = np.sqrt(gz * gz + gy * gy + gx * gx)
    norm += F32(0.15) * norm.mean()
    grid /= norm
    del gz, gy, gx, norm
    span = 2.5  # the grid covers directions (unit vector * radius) in [-span/2, span/2]
    b_mean = float(np.mean(head.brain_axes))
    cell_mm = span * b_mean / (m - 1)
    radius = 1.0 - d_env * F32(0.65 / b_mean)
    coords = np.empty((3, d_env.size), dtype=F32)
    for i, q in enumerate(head.direction(pts)):
        coords[i] = q * radius
    if medial.any():
        mi = np.nonzero(medial)[0]
        coords[0, mi] = head.u[0][pts[mi]] * F32(1.0 / b_mean)
        coords[1, mi] = head.u[1][pts[mi]] * F32(1.0 / b_mean)
        coords[2, mi] = np.where(bx[mi] > 0, F32(1.1), F32(-1.1)) \
            * (1.0 - np.abs(bx[mi]) * F32(0.65 / b_mean))
    coords *= F32((m - 1) / span)
    coords += F32((m - 1) / 2)
    del radius
    dist = ndimage.map_coordinates(grid, coords, order=1, mode="grid-wrap")
    del coords
    if cerebellar.any():
        # Cerebellar folia: thin leaves parallel to the surface, every ~5 mm, wavy with the noise.
        ci = np.nonzero(cerebellar)[0]
        wave = F32(head.folium_mm / (2 * np.pi))
        phase = d_brain[ci] / wave + F32(2.0) * dist[ci]
        dist[ci] = np.cos(phase) * (wave / F32(cell_mm))
    np.abs(dist, out=dist)
    dist *= F32(cell_mm)
    return dist


def _deep_structures(rng, head, lab, brain, b, n, stem, cerebellum):
    """Ventricles, choroid plexus, deep grey nuclei, brainstem and white-matter spots."""
    bz, by, bx = b
    nz, ny, nx = n
    Bz, By, Bx = head.brain_axes
    vs = head.ventricle_scale
    central = np.nonzero(brain & (np.abs(nz + 0.1) < 0.6) & (np.abs(ny) < 0.7)
                         & (np.abs(nx) < 0.6))[0]
    cz, cy, cx = nz[central], ny[central], nx[central]
    sub = lab[central]
    # Deep grey nuclei (paired ellipsoids): caudate head, thalamus, lentiform nucleus.
    wm = sub == WM
    for c, s in (((0.08, -0.22, 0.19), (0.22, 0.13, 0.08)),
                 ((-0.12, 0.10, 0.14), (0.17, 0.17, 0.13)),
                 ((-0.14, -0.05, 0.36), (0.18, 0.22, 0.085))):
        for side in (-1.0, 1.0):
            ell = _ellipsoid((cz, cy, cx), (c[0], c[1], side * c[2] * (0.88 + 0.12 * vs)), s)
            sub[(ell < 1.0) & wm] = DGM
    # Lateral ventricles: two bananas bowed outwards at the back, frontal horns near the midline.
    t = (cy + 0.40) * F32(1 / 0.80)
    tc = np.clip(t, 0, 1)
    taper = np.sqrt(np.clip(1.0 - (2.0 * tc - 1.0) ** 8, 0, 1))
    zc = 0.14 - 0.30 * tc * tc
    wz = (0.10 * vs) * taper * (0.9 + 0.4 * tc)
    wx = (0.045 + 0.06 * tc) * vs * taper
    inrange = (t > 0) & (t < 1)
    sz = ((cz - zc) / (wz + 1e-3)) ** 2
    for side in (-1.0, 1.0):
        xc = side * (0.13 + 0.15 * tc * tc) * (0.85 + 0.15 * vs)
        lat = inrange & ((((cx - xc) / (wx + 1e-3)) ** 2 + sz) < 1.0) & (sub != DGM)
        sub[lat] = CSF
        plexus = lat & (((cy - 0.30) * F32(1 / 0.08)) ** 2
                        + ((cx - xc) / (0.6 * wx + 1e-3)) ** 2
                        + ((cz - zc) / (0.6 * wz + 1e-3)) ** 2 < 1.0)
        sub[plexus] = CHOROID
    third = ((np.abs(cx) < F32((0.6 + 1.0 * vs) / Bx)) & (np.abs(cy - 0.03) < 0.14)
             & (cz > -0.34) & (cz < -0.04))
    sub[third] = CSF
    lab[central] = sub
    # Brainstem (grey rim) and fourth ventricle in the posterior fossa.
    low = np.nonzero(brain & (nz < -0.32))[0]
    s = stem[low]
    sl = lab[low]
    sl[s < 1.0] = WM
    sl[(s < 1.0) & (s > 0.8)] = DGM
    vent4 = (((ny[low] - 0.28) * F32(1 / 0.06)) ** 2 + (nx[low] * F32(1 / 0.08)) ** 2 < 1.0) \
        & (nz[low] < -0.5) & (nz[low] > -0.8)
    sl[vent4] = CSF
    sl[(s >= 1.0) & (s < 1.2) & (ny[low] < 0.12) & ~cerebellum[low]] = CSF
    lab[low] = sl
    # Small white-matter hyperintensities (look-alikes on FLAIR).
    for _ in range(rng.poisson(0.5 + 4.0 * head.atrophy)):
        c = (rng.uniform(-0.15, 0.4) * Bz, rng.uniform(-0.5, 0.5) * By,
             rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.5) * Bx)
        r = rng.uniform(1.5, 4.5)
        pts = np.nonzero((np.abs(bz - F32(c[0])) < r) & (np.abs(by - F32(c[1])) < 2 * r))[0]
        spot = _ellipsoid((bz[pts], by[pts], bx[pts]), c, (r, 1.6 * r, r)) < 1.0
        spot &= lab[pts] == WM
        lab[pts[spot]] = WMH


def _skull_base(lab, base, nz, ny, nx, slow):
    """Bone under the frontal lobes and around the sella, with marrow and a sphenoid sinus."""
    pts = np.nonzero(base)[0]
    sub = np.full(pts.size, BONE, dtype=np.uint8)
    sub[slow[pts] > 1.0] = MARROW
    p = (nz[pts], ny[pts], nx[pts])
    sub[_ellipsoid(p, (-0.72, -0.3, 0.0), (0.16, 0.2, 0.17)) < 1.0] = AIR  # sphenoid sinus
    sub[_ellipsoid(p, (-0.75, -0.8, 0.0), (0.2, 0.3, 0.12)) < 1.0] = AIR  # ethmoid cells
    lab[pts] = sub


def _orbits(head, labels):
    """Eyes in orbital fat, just behind the skin at the front of the lowest slices."""
    Bz, _, Bx = head.brain_axes
    az, ay, ax = head.axes
    uz, uy, ux = head.u
    for side in (-1.0, 1.0):
        cz, cx = -0.8 * Bz, side * 0.42 * Bx
        inside = 1.0 - (cz / az) ** 2 - (cx / ax) ** 2
        if inside < 0.15:
            continue
        c = (cz, -ay * np.sqrt(inside) + 14.0, cx)
        pts = _near(head.u, (c[0], c[1] + 10.0, c[2]), 26.0)
        if pts.size == 0:
            continue
        p = (uz[pts], uy[pts], ux[pts])
        fat = _ellipsoid(p, (c[0], c[1] + 9.0, c[2]), (11.0, 19.0, 12.0)) < 1.0
        eye = _ellipsoid(p, c, (11.5, 12.0, 11.5)) < 1.0
        sub = labels[pts]
        sub[fat & (sub != AIR) & (sub != SKIN)] = FAT
        sub[eye] = CSF
        labels[pts] = sub


# ---------------------------------------------------------------------------------- tumours

def _plan_tumours(rng, head):
    """Centre (head frame, mm), size, type and look of each tumour; most patients have one."""
    count = int(rng.choice(4, p=[0.1, 0.66, 0.17, 0.07]))
    b_axes = np.asarray(head.brain_axes)
    min_r = min(max(2.5, 1.2 * max(head.vox)), 20.0)  # at least ~a voxel across
    tumours = []
    for _ in range(count):
        radius = float(np.exp(rng.uniform(np.log(min_r), np.log(25.0))))
        p = [0.55, 0.2, 0.25] if radius > 8 else [0.15, 0.55, 0.3]
        kind = ("gbm", "solid", "low")[int(rng.choice(3, p=p))]
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


def _mass_effect(t, ub, b):
    """Warp brain coordinates so the anatomy is pushed radially away from the tumour centre."""
    if t["radius"] < 6.0:
        return
    pts = _near(ub, t["centre"], 3.0 * t["radius"] + 10.0)
    c = t["centre"]
    deltas = [ub[i][pts] - F32(c[i]) for i in range(3)]
    d = np.sqrt(deltas[0] ** 2 + deltas[1] ** 2 + deltas[2] ** 2) + F32(1e-3)
    d0 = np.cbrt(np.maximum(d ** 3 - F32(t["push"] * t["radius"] ** 3), 0.0))
    taper = np.exp(-((d * F32(1.0 / (2.2 * t["radius"] + 6.0))) ** 2))
    f = (d - taper * (d - d0)) / d
    for arr, delta, cc in zip(b, deltas, c):
        arr[pts] = F32(cc) + delta * f


def _paint_tumours(rng, head, labels, ic, ub, d_brain, tumours):
    """Paint oedema, then cores; return (voxels, normal label, contrast, texture) for blending."""
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
        near = _near(ub, t["centre"], reach)
        pts = ic[near]
        c = t["centre"]
        d = np.sqrt(sum((ub[i][near] - F32(c[i])) ** 2 for i in range(3)))
        # Local smooth fields on the crop box around the tumour.
        iz, iy, ix = head.crop_index(pts)
        lo = [int(a.min()) if pts.size else 0 for a in (iz, iy, ix)]
        hi = [int(a.max()) + 1 if pts.size else 1 for a in (iz, iy, ix)]
        box = tuple(h - l for l, h in zip(lo, hi))
        local = ((iz - lo[0]) * box[1] + iy - lo[1]) * box[2] + ix - lo[2]
        del iz, iy, ix
        f_core = _smooth_field(rng, box, head.vox, max(3.0, 0.6 * t["radius"])).ravel()[local]
        f_oed = _smooth_field(rng, box, head.vox, max(4.0, 0.5 * t["oedema"])).ravel()[local]
        f_tex = _smooth_field(rng, box, head.vox, 3.0).ravel()[local]
        rho_core = d * F32(1 / t["radius"]) * (1.0 + F32(t["rough"]) * f_core)
        rho_oed = d * F32(1 / t["oedema"]) * (1.0 + 0.35 * f_oed)
        sub = labels[pts]
        spread = np.isin(sub, (WM, DGM, WMH, OEDEMA)) & (rho_oed < 1.0)
        labels[pts[spread]] = OEDEMA
        contrast[pts[spread]] = t["contrast"]
        texture[pts[spread]] = 0.06 * f_tex[spread]
        cores.append((pts, rho_core, f_tex))
    for t, (pts, rho_core, f_tex) in zip(tumours, cores):
        core = (rho_core < 1.0) & inside[pts]
        if t["kind"] == "gbm":
            necrosis = min(t["necrosis"], 1.0 - 1.6 * min_vox / t["radius"])
            kind = np.where(rho_core < necrosis, NECROSIS, ENHANCING).astype(np.uint8)
            tex = np.where(kind == NECROSIS, F32(0.10), F32(0.14)) * f_tex
            amount = t["contrast"]
        elif t["kind"] == "solid":
            kind = np.full(rho_core.size, ENHANCING, dtype=np.uint8)
            tex = 0.12 * f_tex
            amount = t["contrast"]
        else:
            kind = np.where(f_tex > 1.4, ENHANCING, NONENH).astype(np.uint8)
            tex = 0.08 * f_tex
            amount = max(t["contrast"], 0.35)
        labels[pts[core]] = kind[core]
        contrast[pts[core]] = amount
        texture[pts[core]] = tex[core]
    idx = np.nonzero(labels >= OEDEMA)[0]
    return idx, normal[idx], contrast[idx], texture[idx]


# --------------------------------------------------------------------------------- sequences

def _sequence_params(rng):
    """Per-sequence contrast jitter, bias weights, noise and scale, drawn for all four in order."""
    params = {}
    for name in SEQUENCES:
        lut = np.asarray(_CONTRAST[name], dtype=np.float64)
        lut = lut * (1.0 + 0.05 * rng.standard_normal(lut.size))
        params[name] = dict(lut=lut.astype(F32), bias=rng.normal(0.0, 0.09, 2),
                            noise=rng.uniform(0.012, 0.045), scale=rng.uniform(*_SCALE[name]),
                            offsets=rng.choice(_NOISE_LAGS, 2, replace=False))
    return params


def _sequence_values(p, labels3, labels, blend, head, bias, texture, noise):
    """The sequence's scanner values at the head voxels (1D int16)."""
    lut = p["lut"]
    img = lut[labels3]
    flat = img.ravel()
    if blend is not None:
        idx, normal, contrast, tumour_texture = blend
        flat[head.flat[idx]] = ((1.0 - contrast) * lut[normal]
                                + contrast * lut[labels[idx]] * (1.0 + tumour_texture))
    img = ndimage.gaussian_filter(img, (0.0, 0.5, 0.5), truncate=2.5)
    v = img.ravel()[head.flat]
    del img
    v *= 1.0 + F32(p["bias"][0]) * bias[0] + F32(p["bias"][1]) * bias[1] + F32(0.025) * texture
    n = v.size
    o1, o2 = (int(o) for o in p["offsets"])
    sigma = F32(p["noise"])
    v += sigma * noise[o1:o1 + n]
    v *= v
    v += (sigma * noise[o2:o2 + n]) ** 2
    np.sqrt(v, out=v)
    v *= F32(p["scale"])
    np.rint(v, out=v)
    np.minimum(v, 32767, out=v)
    return v.astype(np.int16)
