"""Where in a scan: positions typed by a user, the scan-spacing check, and the jitter of real
nodule positions that 3D MCGAN applies before pasting (METHODS.md section 4).

Every position handed between the placement functions is a continuous array-order index
``(z, y, x)`` of the scan (voxel centres at integers), the convention of
`pathosynth.data.image`. Users instead type ``x,y,z`` in column, row, slice order, the order a
radiologist's viewer shows, or ``x,y,z,world`` in LPS millimetres; the functions here convert
once, at the edge, so nothing further in can mix the two orders up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pathosynth.data.image import MedicalImage
from pathosynth.errors import UserError

VOXEL, WORLD = "voxel", "world"
MAX_SPACING_MM = 3.0  # METHODS.md: LIDC scans with thicker slices are left out
MAX_ANISOTROPY = 6.0  # e.g. 0.5 mm pixels with 3 mm slices; beyond that a 1 mm nodule is guessed
_FORMS = "'x,y,z' (voxel column,row,slice, as a viewer shows them) or 'x,y,z,world' (LPS mm)"


def position_units(text: str) -> str:
    """``"world"`` when the text ends in ``,world`` (LPS mm), else ``"voxel"``."""
    parts = [p.strip().lower() for p in str(text).split(",")]
    return WORLD if len(parts) == 4 and parts[3] in ("world", "mm") else VOXEL


def parse_position(text: str, scan: MedicalImage, source: str = "--at",
                   path: str | Path | None = None) -> np.ndarray:
    """The continuous array-order index ``(z, y, x)`` of a typed position.

    ``"x,y,z"`` are voxel indices of the scan (fractions allowed); ``"x,y,z,world"`` (or
    ``,mm``) are LPS millimetres. A position outside the volume is an error that states the
    volume's extent in the units the user typed.
    """
    where = f"{source} '{text}'" + (f" (scan {path})" if path else "")
    parts = [p.strip() for p in str(text).split(",")]
    units = position_units(text)
    numbers = parts[:3] if units == WORLD else parts
    try:
        values = np.array([float(p) for p in numbers])
    except ValueError:
        values = np.array([])
    if len(parts) not in (3, 4) or values.shape != (3,) or not np.all(np.isfinite(values)):
        raise UserError(f"{where}: expected {_FORMS}, e.g. {source} {_example(scan)}")
    index = scan.world_to_index(values) if units == WORLD else values[::-1].astype(float)
    if not is_inside(scan, index):
        raise UserError(f"{where}: the position lies outside the scan, which spans "
                        f"{describe_extent(scan, units)}; choose a position inside it")
    return index


def is_inside(scan: MedicalImage, index: np.ndarray) -> bool:
    """Whether a continuous index lies within the volume's voxels (their edges at -0.5, n - 0.5)."""
    index = np.asarray(index, dtype=float)
    shape = np.asarray(scan.spatial_shape, dtype=float)
    return bool(np.all(index >= -0.5) and np.all(index <= shape - 0.5))


def describe_extent(scan: MedicalImage, units: str = VOXEL) -> str:
    """The volume's extent in x, y, z order, in voxels or (for ``world``) LPS mm of its corners."""
    shape = np.asarray(scan.spatial_shape)
    if units != WORLD:
        x, y, z = (int(n) - 1 for n in shape[::-1])
        return f"x 0..{x}, y 0..{y}, z 0..{z} voxels"
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in shape], indexing="ij")).reshape(3, -1).T
    world = scan.index_to_world(corners)
    low, high = world.min(axis=0), world.max(axis=0)
    return ", ".join(f"{name} {lo:.1f}..{hi:.1f}" for name, lo, hi in zip("xyz", low, high)) + " mm"


def format_position(scan: MedicalImage, index: np.ndarray, units: str = VOXEL) -> str:
    """A position as the user would type it back: ``x,y,z`` voxels or ``x,y,z,world`` mm."""
    index = np.asarray(index, dtype=float)
    if units == WORLD:
        return ",".join(f"{v:.1f}" for v in scan.index_to_world(index)) + ",world"
    return ",".join(_number(v) for v in index[::-1])


def check_spacing(scan: MedicalImage, path: str | Path) -> None:
    """Refuse scans whose voxels are too coarse or too anisotropic to host a 1 mm nodule.

    A generated nodule is 1 mm isotropic; pasting it into slices thicker than 3 mm (the paper's
    LIDC limit) or into voxels more than 6 times longer on one axis than another throws most of
    its shape away, and the resulting training image no longer shows what the label says.
    """
    spacing = np.asarray(scan.spacing, dtype=float)
    shown = " x ".join(f"{s:g}" for s in spacing) + " mm (z, y, x)"
    fix = "resample the scan first (e.g. to 1 mm isotropic) and give the resampled file"
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise UserError(f"{path}: voxel spacing {shown} is not positive; fix the file's header or {fix}")
    if spacing.max() > MAX_SPACING_MM:
        raise UserError(f"{path}: voxel spacing {shown} is coarser than {MAX_SPACING_MM:g} mm, too coarse "
                        f"to hold a 1 mm nodule; {fix}")
    if spacing.max() / spacing.min() > MAX_ANISOTROPY:
        raise UserError(f"{path}: voxel spacing {shown} is more than {MAX_ANISOTROPY:g} times longer on one "
                        f"axis than another, too anisotropic to hold a 1 mm nodule; {fix}")


def jitter_position(centre_index: np.ndarray, scan: MedicalImage, diameter_mm: float,
                    rng: np.random.Generator, shift: float = 0.1,
                    zoom: float = 0.1) -> tuple[np.ndarray, float]:
    """3D MCGAN's augmentation of a real nodule position: a shifted centre and a zoom factor.

    The paper shifts "width/height/depth up to 10%" (Keras' ``*_shift_range`` wording, a fraction
    of the extent of what is being augmented). What is augmented is the nodule, so we read it as
    up to ``shift`` x the nodule's diameter along each axis, drawn uniformly in mm and converted
    to voxels with that axis's spacing. Reading it as 10% of the 64 mm VOI instead would move a
    4 mm nodule 6 mm, off its own footprint and possibly into the pleura; 10% of its diameter
    keeps the new nodule overlapping the site that held a real one of that size. The zoom is
    drawn uniformly in ``[1 - zoom, 1 + zoom]`` and scales the pasted block (`paste_block`).
    """
    if diameter_mm <= 0 or shift < 0 or not 0 <= zoom < 1:
        raise ValueError(f"need diameter_mm > 0, shift >= 0, 0 <= zoom < 1; got {diameter_mm}, {shift}, {zoom}")
    shift_mm = rng.uniform(-shift * diameter_mm, shift * diameter_mm, size=3)
    factor = float(rng.uniform(1.0 - zoom, 1.0 + zoom))
    return np.asarray(centre_index, dtype=float) + shift_mm / np.asarray(scan.spacing, dtype=float), factor


def _example(scan: MedicalImage) -> str:
    return ",".join(str(int(n) // 2) for n in scan.spatial_shape[::-1])


def _number(value: float) -> str:
    return str(int(round(value))) if abs(value - round(value)) < 1e-9 else f"{value:.2f}"
