"""Tiny dataset folders written to disk for the reader app's tests."""

from __future__ import annotations

from pathlib import Path

from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.splits import SplitPlan


def write_folder(out: Path, rows: list[tuple], *, synthetic: bool = False, modality: str = "MR",
                 unit: str = "arbitrary", dims: int = 2, spacing: tuple | None = None,
                 classes: tuple = ("healthy", "tumour"), intercept: float = 0.0,
                 synthetic_ids: set[str] | None = None) -> Path:
    """rows: (sample id, patient, label, array, boxes, split); the array's dtype picks the format
    (uint8 -> 8-bit PNG, uint16 -> 16-bit PNG, float -> NIfTI for 2D without a PNG scale)."""
    info = DatasetInfo(name=out.name, modality=modality, dimensionality=dims, classes=list(classes),
                       intensity_unit=unit, png_intercept=intercept,
                       source={"synthetic": True} if synthetic else {})
    with DatasetWriter(out, info) as writer:
        for sample_id, patient, label, array, boxes, split in rows:
            marked = synthetic if synthetic_ids is None else sample_id in synthetic_ids
            provenance = {"model": "test-gan", "seed": 1} if marked else None
            writer.add(Sample(id=sample_id, patient_id=patient, image="", label=label, split=split,
                              boxes=boxes, synthetic=provenance),
                       MedicalImage(array, spacing or (1.0,) * dims))
        return writer.commit(SplitPlan())
