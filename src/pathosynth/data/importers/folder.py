"""Import a folder of 2D images plus a CSV (radiograph-style sets).

The CSV has columns ``file`` and ``label``, and optionally ``patient_id`` (default: the file
name, so every image is its own patient), ``boxes`` (``x0,y0,x1,y1;...`` in pixels of the
original image) and ``split`` (train/val/test, which then replaces the seeded split).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from pathosynth.data import validate
from pathosynth.data.boxes import parse_boxes
from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.paths import kind_of
from pathosynth.data.splits import SPLITS, SplitPlan
from pathosynth.data.tables import Table, read_table
from pathosynth.errors import BadInputError, UserError


@dataclass
class FolderOptions:
    csv: str | None = None  # default: SRC/labels.csv
    classes: tuple[str, ...] | None = None  # the allowed labels; default: those in the CSV
    size: int = 0  # letterbox every image to size x size (boxes follow); 0 keeps the size
    modality: str = "DX"


def import_folder(src: str | Path, out: str | Path, options: FolderOptions, plan: SplitPlan, *,
                  overwrite: bool = False, skip_bad: bool = False, progress: bool = True,
                  provenance: dict | None = None) -> Path:
    src, out = Path(src), Path(out)
    if kind_of(src) != "dir":
        raise UserError(f"{src}: not a folder; give the folder holding the images")
    csv_path = Path(options.csv) if options.csv else src / "labels.csv"
    table = _read_table(csv_path)
    classes = list(options.classes) if options.classes else _classes_in(table)
    _refuse_repeated_images(src, table)
    explicit = _explicit_splits(table)
    info = DatasetInfo(
        name=out.name, modality=options.modality, dimensionality=2, classes=classes,
        source={"importer": "folder", "path": str(src), "csv": str(csv_path), "options": asdict(options)},
    )
    info.source.update(provenance or {})  # e.g. a phantom replaces its temporary paths
    with DatasetWriter(out, info, overwrite=overwrite, skip_bad=skip_bad, inputs=(src, csv_path)) as writer:
        used_ids: set[str] = set()
        for line, row in tqdm(table.rows, desc="images", unit="img", disable=not progress):
            with writer.unit(table.where(line)):
                sample, image = _load_row(src, table.where(line), row, classes, options.size)
                sample.id = _unique(sample.id, used_ids)
                writer.add(sample, image)
        if explicit is not None:
            plan = SplitPlan(explicit=explicit)
        return writer.commit(plan)


def _read_table(csv_path: Path) -> Table:
    table = read_table(csv_path, ("file", "label"), what="label table", where_to_give="give it with --csv")
    if not table.rows:
        raise UserError(f"{csv_path}: the table has no rows; list one image per row")
    return table


def _classes_in(table: Table) -> list[str]:
    classes = sorted({row["label"] for _, row in table.rows if row["label"]})
    if not classes:
        raise UserError(f"{table.path}: the label column is empty; give every image a label")
    return classes


def _refuse_repeated_images(src: Path, table: Table) -> None:
    """One image on two rows (two labels, two patients) would train and test on the same pixels."""
    validate.require_unique((((src / row["file"]).resolve(), table.where(line)) for line, row in table.rows
                             if row["file"]),
                            "list the same image file", "list each image once, with one label and one patient")


def _patient_of(row: dict[str, str]) -> str:
    """The patient_id cell; empty means one patient per image, named after the file."""
    return row.get("patient_id") or Path(row["file"]).stem


def _explicit_splits(table: Table) -> dict[str, str] | None:
    if not any(row.get("split") for _, row in table.rows):
        return None
    split_of: dict[str, str] = {}
    for line, row in table.rows:
        patient, split = _patient_of(row), row.get("split", "")
        if split not in SPLITS:
            raise UserError(f"{table.where(line)}: split '{split}' must be train, val or test "
                            "(fill it on every row or on none)")
        if split_of.setdefault(patient, split) != split:
            raise UserError(f"{table.where(line)}: patient {patient} is in split {split_of[patient]} on an "
                            f"earlier row and {split} here; one patient belongs to one split")
    return split_of


def _load_row(src: Path, where: str, row: dict[str, str], classes: list[str],
              size: int) -> tuple[Sample, MedicalImage]:
    validate.label(row["label"], classes, where)
    path = validate.listed_file(src, row["file"], where)
    image = validate.read_checked(path)
    if image.spatial_dims != 2 or image.array.ndim != 2:
        raise BadInputError(path, f"is not a single-channel 2D image (shape {image.array.shape})",
                            "the folder importer takes 2D grey images")
    boxes = _parse_row_boxes(row.get("boxes", ""), where)
    validate.check_boxes(boxes, image.spatial_shape, where)
    array = _storable(image.array, path)
    spacing = image.spacing
    if size:
        array, boxes, spacing = _letterbox(array, boxes, spacing, size)
    sample = Sample(id=Path(row["file"]).stem, patient_id=_patient_of(row), image="", label=row["label"],
                    boxes=boxes, attributes={"source_file": row["file"]})
    return sample, MedicalImage(array, spacing)


def _parse_row_boxes(text: str, where: str) -> list[list[float]]:
    try:
        return parse_boxes(text, dims=2)
    except ValueError as exc:
        raise BadInputError(where, f"boxes '{text}' cannot be read ({exc})",
                            "write them as x0,y0,x1,y1;x0,y0,x1,y1") from None


def _storable(array: np.ndarray, source: Path) -> np.ndarray:
    """8-bit stays 8-bit and other integers in 0..65535 become 16-bit (both PNG); other integers
    become int32 and the rest float32 (NIfTI), refusing values those types cannot hold."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer):
        if 0 <= array.min() and array.max() <= 65535:
            return array.astype(np.uint16)
        return validate.exact_cast(array, np.int32, source)
    return validate.exact_cast(array, np.float32, source)


def _letterbox(array: np.ndarray, boxes: list, spacing: tuple[float, ...], size: int):
    """Scale the longer side to `size`, centre-pad the shorter one with zeros; boxes follow."""
    height, width = array.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = ndimage.zoom(array.astype(np.float32), (new_h / height, new_w / width), order=1)
    if np.issubdtype(array.dtype, np.integer):
        limits = np.iinfo(array.dtype)
        resized = np.clip(np.rint(resized), limits.min, limits.max).astype(array.dtype)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas = np.zeros((size, size), dtype=resized.dtype)
    canvas[top:top + new_h, left:left + new_w] = resized
    sx, sy = new_w / width, new_h / height
    moved = [[round(b[0] * sx + left, 2), round(b[1] * sy + top, 2), round(b[2] * sx + left, 2),
              round(b[3] * sy + top, 2)] for b in boxes]
    return canvas, moved, (spacing[0] / sy, spacing[1] / sx)


def _unique(candidate: str, used: set[str]) -> str:
    name, counter = candidate, 1
    while name in used:
        counter += 1
        name = f"{candidate}-{counter}"
    used.add(name)
    return name
