"""Annotations of placed nodules in the LUNA16 CSV layout, so that the scans with pasted nodules
import like any LUNA16 set (`pathosynth.data.importers.luna16.read_annotations` reads them).

Columns: ``seriesuid,coordX,coordY,coordZ,diameter_mm`` (LUNA16: world LPS mm of the nodule
centre) plus ``attenuation`` (solid / part-solid / ggn or empty), ``size`` (the 3D MCGAN size
class) and ``synthetic`` (``true`` for a generated nodule, ``false`` for a real one).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from pathosynth.contracts import replacing
from pathosynth.data.image import MedicalImage
from pathosynth.data.importers.luna16 import ATTENUATIONS, size_class

COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "attenuation", "size", "synthetic")


@dataclass(frozen=True)
class NoduleAnnotation:
    """One nodule of one scan: world LPS mm centre (x, y, z) and effective diameter."""

    seriesuid: str
    world: tuple[float, float, float]
    diameter_mm: float
    attenuation: str | None = None
    synthetic: bool = True

    @classmethod
    def at_index(cls, scan: MedicalImage, seriesuid: str, centre_index: np.ndarray, diameter_mm: float,
                 attenuation: str | None = None, synthetic: bool = True) -> NoduleAnnotation:
        """The annotation of a nodule placed at a continuous array-order index of the scan."""
        x, y, z = (float(v) for v in scan.index_to_world(np.asarray(centre_index, dtype=float)))
        return cls(seriesuid, (x, y, z), float(diameter_mm), attenuation, synthetic)

    def row(self) -> dict[str, str]:
        if not self.seriesuid or not (self.diameter_mm > 0) or not all(math.isfinite(v) for v in self.world):
            raise ValueError(f"incomplete nodule annotation {self}")
        if self.attenuation is not None and self.attenuation not in ATTENUATIONS:
            raise ValueError(f"attenuation must be one of {ATTENUATIONS} or None, got {self.attenuation!r}")
        x, y, z = self.world
        return {"seriesuid": self.seriesuid, "coordX": f"{x:.6f}", "coordY": f"{y:.6f}", "coordZ": f"{z:.6f}",
                "diameter_mm": f"{self.diameter_mm:.4f}", "attenuation": self.attenuation or "",
                "size": size_class(self.diameter_mm), "synthetic": "true" if self.synthetic else "false"}


def write_luna16_csv(path: str | Path, rows: Iterable[NoduleAnnotation | Mapping]) -> Path:
    """Write the annotations atomically (a temporary file beside ``path``, then a rename), so that
    an interrupted run never leaves a half-written CSV. Mappings need the keys of
    `NoduleAnnotation` (``seriesuid``, ``world``, ``diameter_mm``; optional ``attenuation``,
    ``synthetic``)."""
    path = Path(path)
    lines = [(row if isinstance(row, NoduleAnnotation) else NoduleAnnotation(**row)).row() for row in rows]
    with replacing(path) as temp, temp.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
    return path
