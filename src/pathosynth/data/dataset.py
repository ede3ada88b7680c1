"""The dataset folder contract, shared by imported real data, phantoms and synthetic sets.

```
DIR/
  dataset.json   what the images are: modality, dimensionality, classes, channels, the condition
                 vocabulary (attributes), intensity unit and how stored values map to it, conventions
  manifest.csv   one row per sample: id, patient_id, split, image, mask, label, boxes, attributes,
                 spacing, synthetic (JSON in the last four columns, empty when absent)
  images/        2D single-channel slices as 16-bit (or 8-bit) PNG, everything else as NIfTI
  masks/         optional label maps, same geometry as the image
  skipped.csv    only after --skip-bad: source, reason for each input that was left out
```

A folder appears under its final name only when complete: `DatasetWriter` builds it under a
hidden temporary name beside the target and renames it at the end.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pathosynth import __version__
from pathosynth.data.boxes import BOX_CONVENTION, box_is_inside
from pathosynth.data.image import MedicalImage
from pathosynth.data.readers import read_image
from pathosynth.data.splits import SplitPlan, assign_splits, check_patient_splits
from pathosynth.data.writers import write_image
from pathosynth.errors import BadInputError, UserError

FORMAT_NAME = "pathosynth-dataset"
FORMAT_VERSION = 1
MANIFEST_COLUMNS = ("id", "patient_id", "split", "image", "mask", "label", "boxes", "attributes",
                    "spacing", "synthetic")
_JSON_COLUMNS = ("boxes", "attributes", "spacing", "synthetic")
AXIS_CONVENTION = (
    "arrays [c,] [z,] y, x (numpy/SimpleITK order); spacing in mm in array order; "
    "NIfTI files hold the same array transposed to x, y, z[, c]"
)


@dataclass
class DatasetInfo:
    """The content of dataset.json."""

    name: str
    modality: str  # DICOM modality code: MR, CT, CR/DX (radiograph)
    dimensionality: int  # 2 or 3 spatial dimensions
    classes: list[str]
    channels: list[str] = field(default_factory=lambda: ["image"])
    intensity_unit: str = "arbitrary"  # "HU", "normalised [0, 1]", "arbitrary"
    # value = stored * slope + intercept, for PNG files (NIfTI files hold values directly)
    png_slope: float = 1.0
    png_intercept: float = 0.0
    attributes: dict[str, list[str]] = field(default_factory=dict)  # the condition vocabulary
    image_size: list[int] | None = None  # array order, when all samples share it
    spacing: list[float] | None = None  # mm, array order, when all samples share it
    source: dict = field(default_factory=dict)
    box_convention: str = BOX_CONVENTION
    axis_convention: str = AXIS_CONVENTION
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    created_with: dict = field(default_factory=lambda: {"pathosynth": __version__})

    @classmethod
    def from_json(cls, data: dict) -> DatasetInfo:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Sample:
    """One manifest row."""

    id: str
    patient_id: str
    image: str
    label: str
    split: str = ""
    mask: str = ""
    boxes: list[list[float]] = field(default_factory=list)
    attributes: dict = field(default_factory=dict)
    spacing: list[float] | None = None
    synthetic: dict | None = None

    def to_row(self) -> dict[str, str]:
        row = asdict(self)
        for column in _JSON_COLUMNS:
            value = row[column]
            row[column] = "" if value in (None, [], {}) else json.dumps(value, sort_keys=True)
        return {column: str(row[column]) for column in MANIFEST_COLUMNS}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Sample:
        values: dict = {column: row.get(column, "") or "" for column in MANIFEST_COLUMNS}
        for column in _JSON_COLUMNS:
            values[column] = json.loads(values[column]) if values[column] else None
        values["boxes"] = values["boxes"] or []
        values["attributes"] = values["attributes"] or {}
        return cls(**values)


class Dataset:
    """A dataset folder opened for reading."""

    def __init__(self, root: Path, info: DatasetInfo, samples: list[Sample]):
        self.root = root
        self.info = info
        self.samples = samples

    @classmethod
    def load(cls, root: str | Path) -> Dataset:
        root = Path(root)
        info_path, manifest_path = root / "dataset.json", root / "manifest.csv"
        if not info_path.is_file() or not manifest_path.is_file():
            raise UserError(f"{root}: not a pathosynth dataset folder (no dataset.json/manifest.csv); "
                            "create one with `pathosynth data import` or `pathosynth data phantom`")
        try:
            info = DatasetInfo.from_json(json.loads(info_path.read_text()))
            with manifest_path.open(newline="") as handle:
                samples = [Sample.from_row(row) for row in csv.DictReader(handle)]
        except (ValueError, TypeError, KeyError) as exc:
            raise UserError(f"{root}: dataset.json or manifest.csv is damaged ({exc}); "
                            "re-create the dataset") from exc
        check_patient_splits([asdict(s) for s in samples], str(manifest_path))
        return cls(root, info, samples)

    def select(self, split: str | None = None, label: str | None = None) -> list[Sample]:
        return [s for s in self.samples
                if (split is None or s.split == split) and (label is None or s.label == label)]

    def read(self, sample: Sample) -> np.ndarray:
        """The sample's image as float32, channel first: [c, (z,) y, x], in the intensity unit."""
        image = read_image(self.root / sample.image)
        array = image.array.astype(np.float32)
        if sample.image.lower().endswith(".png"):
            array = array * np.float32(self.info.png_slope) + np.float32(self.info.png_intercept)
        if array.ndim == self.info.dimensionality:
            array = array[None]
        return array

    def read_mask(self, sample: Sample) -> np.ndarray | None:
        return read_image(self.root / sample.mask).array if sample.mask else None


class DatasetWriter:
    """Builds a dataset folder under a temporary name; `commit` makes it appear complete.

    Use as a context manager: leaving the block by an exception (including Ctrl-C) removes the
    temporary folder, so no half-written dataset is ever left under the target name.
    """

    def __init__(self, out: str | Path, info: DatasetInfo, *, overwrite: bool = False,
                 skip_bad: bool = False):
        self.out = Path(out)
        self.info = info
        self.skip_bad = skip_bad
        if self.out.exists() and not overwrite:
            raise UserError(f"{self.out} already exists; choose another --out or pass --overwrite")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        (self.tmp / "images").mkdir(parents=True)
        self.samples: list[Sample] = []
        self.skipped: list[tuple[str, str]] = []
        self._ids: set[str] = set()
        self._sizes: set[tuple[int, ...]] = set()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add(self, sample: Sample, image: MedicalImage, mask: np.ndarray | None = None) -> None:
        """Store the image (and mask) and keep the row; `sample.image`/`mask` are filled in here."""
        if sample.id in self._ids:
            raise ValueError(f"duplicate sample id {sample.id}")
        if sample.label not in self.info.classes:
            raise UserError(f"sample {sample.id}: unknown label '{sample.label}'; "
                            f"use one of {', '.join(self.info.classes)}")
        for box in sample.boxes:
            if not box_is_inside(box, image.spatial_shape):
                raise UserError(f"sample {sample.id}: box {box} is not inside the image of size "
                                f"{list(image.spatial_shape[::-1])} (x, y[, z]); fix or drop the box")
        self._ids.add(sample.id)
        self._sizes.add(tuple(int(n) for n in image.spatial_shape))
        sample.image = self._store(f"images/{sample.id}", image, as_mask=False)
        if mask is not None:
            (self.tmp / "masks").mkdir(exist_ok=True)
            mask_image = MedicalImage(mask.astype(np.uint8), image.spacing, image.origin, image.direction)
            sample.mask = self._store(f"masks/{sample.id}", mask_image, as_mask=True)
        sample.spacing = [round(float(s), 6) for s in image.spacing]
        self.samples.append(sample)

    def skip(self, source: str | Path, reason: str) -> None:
        self.skipped.append((str(source), reason))

    def handle_bad(self, error: BadInputError) -> None:
        """With --skip-bad, note the bad input and carry on; without it, stop with its message."""
        if not self.skip_bad:
            raise UserError(f"{error}; or pass --skip-bad to import the rest") from error
        self.skip(error.path, f"{error.problem}; {error.fix}")

    def commit(self, plan: SplitPlan) -> Path:
        if not self.samples:
            reason = f" ({len(self.skipped)} input(s) skipped as bad)" if self.skipped else ""
            raise UserError(f"no samples to write to {self.out}{reason}; check the input folder")
        assignment = assign_splits([s.patient_id for s in self.samples], plan)
        for sample in self.samples:
            sample.split = sample.split or assignment[sample.patient_id]
        self.samples.sort(key=lambda s: s.id)
        check_patient_splits([asdict(s) for s in self.samples], str(self.out))
        self._fill_shared_geometry()
        self.info.source = {**self.info.source, "split": plan.describe()}
        with (self.tmp / "manifest.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(s.to_row() for s in self.samples)
        if self.skipped:
            with (self.tmp / "skipped.csv").open("w", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(["source", "reason"])
                writer.writerows(sorted(self.skipped))
        (self.tmp / "dataset.json").write_text(json.dumps(asdict(self.info), indent=2) + "\n")
        if self.out.exists():
            shutil.rmtree(self.out)
        self.tmp.rename(self.out)
        return self.out

    def _store(self, stem: str, image: MedicalImage, *, as_mask: bool) -> str:
        array = image.array
        single_channel_2d = image.spatial_dims == 2 and array.ndim == 2
        if single_channel_2d and (as_mask or array.dtype in (np.uint8, np.uint16)):
            relative = f"{stem}.png"
        elif single_channel_2d and self._png_encodable():
            array = self._encode_png(array)
            relative = f"{stem}.png"
        else:
            relative = f"{stem}.nii.gz"
        write_image(self.tmp / relative, MedicalImage(array, image.spacing, image.origin, image.direction))
        return relative

    def _png_encodable(self) -> bool:
        return self.info.png_slope != 1.0 or self.info.png_intercept != 0.0

    def _encode_png(self, array: np.ndarray) -> np.ndarray:
        stored = np.rint((array.astype(np.float64) - self.info.png_intercept) / self.info.png_slope)
        return np.clip(stored, 0, 65535).astype(np.uint16)

    def _fill_shared_geometry(self) -> None:
        spacings = {tuple(s.spacing or ()) for s in self.samples}
        self.info.spacing = list(spacings.pop()) if len(spacings) == 1 else None
        self.info.image_size = list(self._sizes.pop()) if len(self._sizes) == 1 else None
