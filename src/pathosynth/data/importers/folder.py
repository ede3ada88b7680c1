"""Import a folder of 2D images plus a CSV (radiograph-style sets).

The CSV has columns ``file`` and ``label``, and optionally ``patient_id`` (default: the file
name, so every image is its own patient), ``boxes`` (``x0,y0,x1,y1;...`` in pixels of the
original image) and ``split`` (train/val/test, which then replaces the seeded split).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from pathosynth.data.boxes import box_is_inside, parse_boxes
from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.readers import read_image
from pathosynth.data.splits import SPLITS, SplitPlan
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
    if not src.is_dir():
        raise UserError(f"{src}: not a folder; give the folder holding the images")
    csv_path = Path(options.csv) if options.csv else src / "labels.csv"
    rows = _read_rows(csv_path)
    classes = list(options.classes) if options.classes else sorted({r["label"] for _, r in rows if r["label"]})
    explicit = _explicit_splits(rows, csv_path)
    info = DatasetInfo(
        name=out.name, modality=options.modality, dimensionality=2, classes=classes,
        source={"importer": "folder", "path": str(src), "csv": str(csv_path), "options": asdict(options)},
    )
    info.source.update(provenance or {})  # e.g. a phantom replaces its temporary paths
    with DatasetWriter(out, info, overwrite=overwrite, skip_bad=skip_bad) as writer:
        used_ids: set[str] = set()
        for line, row in tqdm(rows, desc="images", unit="img", disable=not progress):
            try:
                sample, image = _load_row(src, csv_path, line, row, classes, options.size)
            except BadInputError as error:
                writer.handle_bad(error)
                continue
            sample.id = _unique(sample.id, used_ids)
            writer.add(sample, image)
        if explicit is not None:
            plan = SplitPlan(explicit=explicit)
        return writer.commit(plan)


def _read_rows(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    if not csv_path.is_file():
        raise UserError(f"{csv_path}: label table not found; give it with --csv (columns file,label)")
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("file", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{csv_path}: missing column(s) {', '.join(missing)}; the table needs file,label "
                            "and may have patient_id, boxes, split")
        rows = [(line, {k: (v or "").strip() for k, v in row.items() if k}) for line, row in
                enumerate(reader, start=2)]
    if not rows:
        raise UserError(f"{csv_path}: the table has no rows; list one image per row")
    return rows


def _explicit_splits(rows: list[tuple[int, dict[str, str]]], csv_path: Path) -> dict[str, str] | None:
    if not any(row.get("split") for _, row in rows):
        return None
    table: dict[str, str] = {}
    for line, row in rows:
        patient = row.get("patient_id") or row["file"]
        split = row.get("split", "")
        if split not in SPLITS:
            raise UserError(f"{csv_path} line {line}: split '{split}' must be train, val or test "
                            "(fill it on every row or on none)")
        if table.setdefault(patient, split) != split:
            raise UserError(f"{csv_path} line {line}: patient {patient} is in split {table[patient]} on an "
                            f"earlier row and {split} here; one patient belongs to one split")
    return table


def _load_row(src: Path, csv_path: Path, line: int, row: dict[str, str], classes: list[str],
              size: int) -> tuple[Sample, MedicalImage]:
    where = f"{csv_path} line {line}"
    if row["label"] not in classes:
        raise BadInputError(where, f"unknown label '{row['label']}'",
                            f"use one of {', '.join(classes)} or add it to --classes")
    path = src / row["file"]
    if not path.exists():
        raise BadInputError(path, f"is listed on {where} but does not exist", "fix the file name or drop the row")
    image = read_image(path)
    if image.spatial_dims != 2 or image.array.ndim != 2:
        raise BadInputError(path, f"is not a single-channel 2D image (shape {image.array.shape})",
                            "the folder importer takes 2D grey images")
    try:
        boxes = parse_boxes(row.get("boxes", ""), dims=2)
    except ValueError as exc:
        raise BadInputError(where, f"boxes '{row.get('boxes')}' cannot be read ({exc})",
                            "write them as x0,y0,x1,y1;x0,y0,x1,y1") from None
    for box in boxes:
        if not box_is_inside(box, image.spatial_shape):
            height, width = image.spatial_shape
            raise BadInputError(where, f"box {box} is outside the {width}x{height} image {row['file']}",
                                "fix the box (x0,y0,x1,y1 in pixels, x1 <= width, y1 <= height)")
    array = _storable(image.array)
    spacing = image.spacing
    if size:
        array, boxes, spacing = _letterbox(array, boxes, spacing, size)
    patient = row.get("patient_id") or Path(row["file"]).stem
    sample = Sample(id=Path(row["file"]).stem, patient_id=patient, image="", label=row["label"], boxes=boxes,
                    attributes={"source_file": row["file"]})
    return sample, MedicalImage(array, spacing)


def _storable(array: np.ndarray) -> np.ndarray:
    """8-bit stays 8-bit; other non-negative integers up to 65535 become 16-bit; the rest float32."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer) and array.size and 0 <= array.min() and array.max() <= 65535:
        return array.astype(np.uint16)
    return array.astype(np.float32)


def _letterbox(array: np.ndarray, boxes: list, spacing: tuple[float, ...], size: int):
    """Scale the longer side to `size`, centre-pad the shorter one with zeros; boxes follow."""
    height, width = array.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = ndimage.zoom(array.astype(np.float32), (new_h / height, new_w / width), order=1)
    if np.issubdtype(array.dtype, np.integer):
        resized = np.clip(np.rint(resized), 0, np.iinfo(array.dtype).max).astype(array.dtype)
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
