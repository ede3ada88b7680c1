"""Moving nodule-sized blocks between a scan and the 1 mm isotropic grid of the generator.

`extract_voi` samples a cube around a position, `paste_block` puts a generated cube back, and
`nodule_box` states where a nodule is in the project's box convention. Sampling runs along the
scan's own array axes (z, y, x), not along world axes: then the paste is the exact inverse of
the crop, and a scan with a flipped direction merely gives a flipped VOI, which the flip
augmentation of training already covers.

One geometric convention ties the two together: block voxel ``j`` along an axis sits at
``(j - m // 2) * spacing_mm`` mm from the centre (``m`` the block's edge), as in
`pathosynth.data.preprocess.crop_centered`, so the central 32^3 nodule box of a 64^3 VOI has
the nodule centre at its voxel 16, and pasting it back puts that voxel on the centre again.
Trilinear interpolation throughout: it never overshoots (no ringing at a nodule's rim) and
reproduces linear intensity ramps exactly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pathosynth.data.image import MedicalImage


def extract_voi(scan: MedicalImage, centre_index: np.ndarray, size: int = 64, spacing_mm: float = 1.0,
                fill_hu: float = -1024) -> np.ndarray:
    """A float32 ``size^3`` block (HU) at ``spacing_mm`` isotropic around a continuous index.

    Points beyond the scan's outer voxel edges take ``fill_hu`` (air, as the importer pads);
    points within the outer half voxel take the edge voxel's value.
    """
    _check_volume(scan)
    centre = np.asarray(centre_index, dtype=float)
    steps = spacing_mm / np.asarray(scan.spacing, dtype=float)
    axes = [c + (np.arange(size) - size // 2) * step for c, step in zip(centre, steps)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    values = ndimage.map_coordinates(scan.array, coords.reshape(3, -1), output=np.float32, order=1,
                                     mode="nearest").reshape((size,) * 3)
    inside = np.ones((size,) * 3, dtype=bool)
    for axis, (positions, n) in enumerate(zip(axes, scan.spatial_shape)):
        shape = [1, 1, 1]
        shape[axis] = size
        inside &= ((positions >= -0.5) & (positions <= n - 0.5)).reshape(shape)
    values[~inside] = fill_hu
    return values.astype(np.float32)


def paste_block(scan: MedicalImage, centre_index: np.ndarray, block_hu: np.ndarray, spacing_mm: float = 1.0,
                zoom: float = 1.0, feather_mm: float = 2.0) -> tuple[np.ndarray, list[int]]:
    """Resample a cubic block back onto the scan's grid around ``centre_index`` and blend it in.

    The block covers its voxels' full extent, ``m * spacing_mm * zoom`` mm along each axis
    (``zoom`` scales it about its voxel ``m // 2``, which lands on the centre). It is blended
    with a weight that is 1 inside and falls to 0 at the block's faces over the last
    ``feather_mm`` (a smoothstep per axis, multiplied), so the generated values meet the scan's
    without a seam. Returns a new array (the scan's dtype; integers rounded and clipped) and the
    box of the changed region, ``[x_min, y_min, z_min, x_max, y_max, z_max]`` in voxels, max
    exclusive (`pathosynth.data.boxes`); every voxel outside it is bit-identical to the input.
    """
    _check_volume(scan)
    block = np.asarray(block_hu, dtype=np.float32)
    m = block.shape[0]
    if block.ndim != 3 or block.shape != (m,) * 3:
        raise ValueError(f"the block must be a cube, got shape {block.shape}")
    if zoom <= 0 or spacing_mm <= 0 or feather_mm < 0:
        raise ValueError(f"need zoom > 0, spacing_mm > 0, feather_mm >= 0; got {zoom}, {spacing_mm}, {feather_mm}")
    step_mm = spacing_mm * zoom  # block voxel size on the scan
    centre = np.asarray(centre_index, dtype=float)
    ranges, positions, weights = [], [], []
    for c, sp, n in zip(centre, scan.spacing, scan.spatial_shape):
        lo, hi, u = _block_coordinates(c, float(sp), int(n), m, step_mm)
        ranges.append((lo, hi))
        positions.append(u)
        face_mm = np.minimum(u + 0.5, m - 0.5 - u) * step_mm  # distance to the nearer face
        weights.append(_smoothstep(face_mm / feather_mm) if feather_mm > 0 else np.ones_like(u))
    if any(hi <= lo for lo, hi in ranges):
        raise ValueError(f"the block at index {centre.tolist()} does not overlap the scan")
    coords = np.stack(np.meshgrid(*positions, indexing="ij"))
    values = ndimage.map_coordinates(block, coords.reshape(3, -1), order=1, mode="nearest").reshape(coords.shape[1:])
    weight = weights[0][:, None, None] * weights[1][None, :, None] * weights[2][None, None, :]
    region = tuple(slice(lo, hi) for lo, hi in ranges)
    out = scan.array.copy()
    old = out[region].astype(np.float64)
    out[region] = _as_dtype(old + weight * (values - old), out.dtype)
    box = [ranges[2][0], ranges[1][0], ranges[0][0], ranges[2][1], ranges[1][1], ranges[0][1]]
    return out, [int(v) for v in box]


def nodule_box(scan: MedicalImage, centre_index: np.ndarray, diameter_mm: float) -> list[int]:
    """The box of a ball of ``diameter_mm`` at a continuous index, in voxels (x, y, z corners,
    max exclusive), clipped to the scan: the same rule as the LUNA16 importer's scan boxes."""
    centre = np.asarray(centre_index, dtype=float)
    shape = np.asarray(scan.spatial_shape)
    radius = diameter_mm / 2 / np.asarray(scan.spacing, dtype=float)
    # voxel i covers [i, i + 1) in box units, so a centre index c sits at c + 0.5
    low = np.clip(np.floor(centre + 0.5 - radius), 0, shape)
    high = np.clip(np.ceil(centre + 0.5 + radius), 0, shape)
    return [int(v) for v in list(low[::-1]) + list(high[::-1])]


def _block_coordinates(centre: float, spacing: float, n: int, m: int, step_mm: float
                       ) -> tuple[int, int, np.ndarray]:
    """Scan voxels [lo, hi) whose centres lie strictly inside the block along one axis, and their
    continuous block coordinates (block voxel j spans j - 0.5 .. j + 0.5)."""
    scale = step_mm / spacing  # scan voxels per block voxel
    edge_lo = centre + (-0.5 - m // 2) * scale
    edge_hi = centre + (m - 0.5 - m // 2) * scale
    lo = max(int(np.floor(edge_lo)) + 1, 0)
    hi = min(int(np.ceil(edge_hi)), n)
    index = np.arange(lo, hi, dtype=float)
    return lo, max(hi, lo), (index - centre) / scale + m // 2


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """0 at t <= 0, 1 at t >= 1, with zero slope at both ends: no visible edge in the blend."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _as_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _check_volume(scan: MedicalImage) -> None:
    if scan.spatial_dims != 3 or scan.array.ndim != 3:
        raise ValueError(f"expected a single-channel 3D scan, got array shape {scan.array.shape}")
