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

Modules, in drawing order: `acquisition` (scan sampling, HU scale, kernel and noise), `body`
(outline, wall, table), `skeleton`, `mediastinum` (layout of heart, vessels, airways), `lungs`,
`trees` (pulmonary vessels and bronchi), `cavity` (painting the cavity contents), `nodules`;
`phantom` runs them in order and `geometry` holds the shared drawing tools.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from pathosynth.data.image import MedicalImage
from pathosynth.data.writers import write_sitk

from .acquisition import AIR_HU, HU_MAX, HU_MIN, SIZES, SLICE_THICKNESSES
from .nodules import ATTENUATIONS, Nodule
from .phantom import Phantom

__all__ = ["AIR_HU", "ANNOTATION_COLUMNS", "ATTENUATIONS", "HU_MAX", "HU_MIN", "Nodule",
           "Phantom", "SIZES", "SLICE_THICKNESSES", "UID_ROOT", "make_chest_ct", "series_uid",
           "write_luna16_layout"]

ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "attenuation")
UID_ROOT = "1.3.6.1.4.1.99999"


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
    phantom = Phantom(np.random.default_rng([int(seed), int(patient)]), size)
    array = phantom.build()
    image = MedicalImage(array, spacing=phantom.spacing_zyx, origin=phantom.origin_xyz)
    return image, phantom.nodules
