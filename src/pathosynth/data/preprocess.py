"""Preprocessing shared by the importers: orientation, resampling, padding, normalisation, VOIs."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pathosynth.data.image import MedicalImage


def reorient_to_plain(image: MedicalImage) -> MedicalImage:
    """Flip/permute array axes so that they run along LPS as closely as the scan allows.

    Afterwards the last array axis points to the patient's left (x), the one before it to
    posterior (y) and, for volumes, the first to superior (z): axial slices show the patient's
    right on the image's left and anterior at the top, the radiological display convention.
    Channel axes, when present, stay in front.
    """
    dims = image.spatial_dims
    direction = np.asarray(image.direction, dtype=float)
    channel_axes = image.array.ndim - dims
    world_axis_of = [int(np.argmax(np.abs(direction[:, j]))) for j in range(dims)]
    if sorted(world_axis_of) != list(range(dims)):
        return image  # oblique beyond 45 degrees: leave it as stored rather than guess
    array = image.array
    origin = np.asarray(image.origin, dtype=float)
    flips = []
    for j in range(dims):
        if direction[world_axis_of[j], j] < 0:
            flips.append(j)
    for j in flips:
        last = np.zeros(dims)
        last[j] = image.spatial_shape[j] - 1
        origin = origin + direction @ (last * np.asarray(image.spacing))
        array = np.flip(array, axis=channel_axes + j)
        direction[:, j] = -direction[:, j]
    # target position of array axis j is dims - 1 - world axis
    order = sorted(range(dims), key=lambda j: dims - 1 - world_axis_of[j])
    array = np.transpose(array, list(range(channel_axes)) + [channel_axes + j for j in order])
    return MedicalImage(np.ascontiguousarray(array), tuple(image.spacing[j] for j in order),
                        tuple(origin), direction[:, order])


def resample(image: MedicalImage, spacing: tuple[float, ...], order: int = 1) -> MedicalImage:
    """Resample to a new voxel spacing, keeping the first voxel's centre and the extent."""
    old = np.asarray(image.spacing, dtype=float)
    new = np.asarray(spacing, dtype=float)
    shape = np.asarray(image.spatial_shape)
    out_shape = np.maximum(1, np.floor((shape - 1) * old / new + 1e-6).astype(int) + 1)
    dtype = image.array.dtype
    values = ndimage.affine_transform(image.array.astype(np.float32), new / old, output_shape=tuple(out_shape),
                                      order=order, mode="nearest")
    if np.issubdtype(dtype, np.integer):
        values = np.rint(values).astype(dtype)
    return MedicalImage(values, tuple(float(s) for s in new), image.origin, image.direction)


def pad_to_square(array: np.ndarray, size: int, value: float = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre-pad the last two axes to size x size; returns the array and the (y, x) offsets."""
    height, width = array.shape[-2:]
    if height > size or width > size:
        raise ValueError(f"image of {height}x{width} is larger than the padding target {size}")
    top, left = (size - height) // 2, (size - width) // 2
    pad = [(0, 0)] * (array.ndim - 2) + [(top, size - height - top), (left, size - width - left)]
    return np.pad(array, pad, constant_values=value), (top, left)


def normalise_percentile(volume: np.ndarray, foreground: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """Scale so that 0 stays 0 and the foreground's given percentile becomes 1; clip to [0, 1]."""
    values = volume[foreground]
    top = float(np.percentile(values, percentile)) if values.size else 0.0
    if top <= 0:
        return np.zeros(volume.shape, dtype=np.float32)
    return np.clip(volume.astype(np.float32) / top, 0.0, 1.0)


def crop_centered(array: np.ndarray, center: tuple[int, ...], size: int, fill: float) -> np.ndarray:
    """A size^n block centred on `center` (array order), filled with `fill` outside the array."""
    low = np.asarray(center) - size // 2
    out = np.full((size,) * array.ndim, fill, dtype=array.dtype)
    src = tuple(slice(max(lo, 0), min(lo + size, n)) for lo, n in zip(low, array.shape))
    dst = tuple(slice(s.start - lo, s.stop - lo) for s, lo in zip(src, low))
    out[dst] = array[src]
    return out

