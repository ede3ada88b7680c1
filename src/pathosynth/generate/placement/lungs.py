"""Where nodules may go: a lung mask from the Hounsfield units of a chest CT alone, the check of a
user's position against it, and random plausible nodule centres inside it.

No model and no atlas: the lungs are the large air-filled spaces enclosed by the body, which
thresholding, connected components and hole filling find reliably on any chest CT in HU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from pathosynth.data.image import MedicalImage
from pathosynth.errors import UserError

from .position import VOXEL, format_position

# Aerated lung is about -900..-700 HU and soft tissue, blood and fat -100..+100 HU; -400 HU sits
# between them with wide room for noise and partial volume at the pleura (classic lung
# segmentation uses -500..-300).
AIR_LIKE_HU = -400.0
# Lungs are hundreds of millilitres each, and the smaller one is never 1% of the larger; what is
# below that is bowel or stomach gas, air in skin folds or noise specks.
MIN_COMPONENT_FRACTION = 0.01
# A 2D hole (in an axial slice) up to the area of a 50 mm disc is lung content (a vessel, a
# nodule, a mass up to 5 cm) and is filled; a larger "hole" is mediastinum ringed by lung and
# airways, which must stay out.
MAX_HOLE_DIAMETER_MM = 50.0


def lung_mask(scan: MedicalImage) -> np.ndarray:
    """Boolean (z, y, x) mask of the lungs of a chest CT in HU.

    1. air-like voxels, below `AIR_LIKE_HU`;
    2. minus the air outside the patient: 3D components (face-connected) touching the volume's
       side faces (x or y). The top and bottom slices do not count as outside: a chest scan
       routinely cuts through the lungs there. The table's foam and the mattress reach the side
       faces through the air around them and go too;
    3. minus tiny components (below `MIN_COMPONENT_FRACTION` of the largest);
    4. holes filled slice by slice (axial) up to `MAX_HOLE_DIAMETER_MM`, so that vessels and
       nodules inside the lungs count as lung.

    The trachea and main bronchi are air inside the body too and stay in the mask; they are a
    small fraction of it, and `random_lung_positions`' margin keeps centres away from them.
    """
    if scan.array.ndim != 3:
        raise ValueError(f"expected a 3D scan, got array shape {scan.array.shape}")
    air = scan.array < AIR_LIKE_HU
    labels, count = ndimage.label(air)
    if count == 0:
        return np.zeros(air.shape, dtype=bool)
    outside = np.unique(np.concatenate([labels[:, [0, -1], :].ravel(), labels[:, :, [0, -1]].ravel()]))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    sizes[outside] = 0
    if sizes.max() == 0:
        return np.zeros(air.shape, dtype=bool)
    keep = sizes >= max(1, MIN_COMPONENT_FRACTION * sizes.max())
    keep[0] = False
    return _fill_small_holes(keep[labels], scan.spacing[1:])


def _fill_small_holes(mask: np.ndarray, spacing_yx: tuple[float, ...]) -> np.ndarray:
    """Fill each axial slice's holes that are no larger than the area limit."""
    max_voxels = np.pi * (MAX_HOLE_DIAMETER_MM / 2) ** 2 / float(np.prod(spacing_yx))
    out = mask.copy()
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        holes = ndimage.binary_fill_holes(mask[z]) & ~mask[z]
        if not holes.any():
            continue
        labels, count = ndimage.label(holes)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        small = sizes <= max_voxels
        small[0] = False
        out[z] |= small[labels]
    return out


def distance_to_boundary_mm(scan: MedicalImage, mask: np.ndarray) -> np.ndarray:
    """Millimetres from each mask voxel to the nearest voxel outside it (0 outside the mask).

    The volume's faces count as boundary: a nodule centred on the first slice would be cut off.
    """
    padded = np.pad(mask, 1, constant_values=False)
    return ndimage.distance_transform_edt(padded, sampling=scan.spacing)[1:-1, 1:-1, 1:-1]


def check_inside_lungs(scan: MedicalImage, centre_index: np.ndarray, mask: np.ndarray, path: str | Path,
                       margin_mm: float = 0.0, units: str = VOXEL) -> None:
    """UserError naming the position and the file unless the position is in the lungs (and at
    least ``margin_mm`` from their boundary); suggests the nearest position that is, in the
    ``units`` the user typed (``voxel`` or ``world``)."""
    allowed = _allowed(scan, mask, margin_mm)
    centre = np.asarray(centre_index, dtype=float)
    voxel = tuple(int(v) for v in np.clip(np.rint(centre), 0, np.asarray(mask.shape) - 1))
    if allowed[voxel]:
        return
    typed = format_position(scan, centre, units)
    where = "in the lungs" + (f" at least {margin_mm:g} mm from their boundary" if margin_mm > 0 else "")
    candidates = np.argwhere(allowed)
    if len(candidates) == 0:
        raise UserError(f"{path}: position {typed} is not {where}, and no voxel of this scan is; "
                        "check that it is a chest CT in Hounsfield units")
    offsets_mm = (candidates - centre) * np.asarray(scan.spacing, dtype=float)
    nearest = candidates[int(np.argmin(np.einsum("ij,ij->i", offsets_mm, offsets_mm)))]
    raise UserError(f"{path}: position {typed} is not {where}; choose a position inside the lungs, "
                    f"e.g. {format_position(scan, nearest, units)} (the nearest such position)")


def random_lung_positions(scan: MedicalImage, mask: np.ndarray, n: int, rng: np.random.Generator,
                          margin_mm: float = 8.0, path: str | Path | None = None) -> list[np.ndarray]:
    """``n`` plausible nodule centres: lung voxels at least ``margin_mm`` from the lung boundary,
    drawn uniformly (without repeats while there are enough). Array-order float indices."""
    candidates = np.argwhere(_allowed(scan, mask, margin_mm))
    if len(candidates) == 0:
        name = f"{path}: " if path else ""
        raise UserError(f"{name}no lung voxel is {margin_mm:g} mm from the lung boundary, so there is no "
                        "room for a nodule; give a smaller margin or a scan that shows the lungs")
    picks = rng.choice(len(candidates), size=n, replace=n > len(candidates))
    return [candidates[i].astype(float) for i in picks]


def _allowed(scan: MedicalImage, mask: np.ndarray, margin_mm: float) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != scan.spatial_shape:
        raise ValueError(f"mask shape {mask.shape} differs from the scan's {scan.spatial_shape}")
    if margin_mm <= 0:
        return mask
    return distance_to_boundary_mm(scan, mask) >= margin_mm
