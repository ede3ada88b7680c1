"""Import LUNA16-style chest CT (.mhd/.mha scans + annotations.csv) for nodule work.

Two kinds of dataset come out of the same scans (METHODS.md section 4):
- ``vois``: one 64^3 volume of interest per nodule at 1 mm, centred on it, with the central 32^3
  nodule box and the size / attenuation conditions of 3D MCGAN;
- ``scans``: the whole resampled scan per patient, with one box per nodule, for detection.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.preprocess import crop_centered, reorient_to_plain, resample
from pathosynth.data.readers import read_image
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import BadInputError, UserError

SIZES = ("small", "medium", "large")
ATTENUATIONS = ("solid", "part-solid", "ggn")
_ATTENUATION_ALIASES = {
    "solid": "solid", "part-solid": "part-solid", "part_solid": "part-solid", "partsolid": "part-solid",
    "subsolid": "part-solid", "ggn": "ggn", "ggo": "ggn", "ground-glass": "ggn", "ground_glass": "ggn",
    "non-solid": "ggn", "nonsolid": "ggn",
    # LIDC texture ratings: 1-2 non-solid (ground glass), 3 part-solid, 4-5 solid
    "1": "ggn", "2": "ggn", "3": "part-solid", "4": "solid", "5": "solid",
}
_REQUIRED = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
AIR_HU = -1024


@dataclass
class Luna16Options:
    kind: str = "vois"  # "vois" or "scans"
    spacing: float = 1.0  # isotropic target spacing in mm
    voi_size: int = 64
    nodule_box: int = 32
    annotations: str | None = None  # default: SRC/annotations.csv


@dataclass
class Nodule:
    seriesuid: str
    world: tuple[float, float, float]  # LPS mm, x, y, z
    diameter_mm: float
    attenuation: str | None
    row: int  # line number in the CSV, for messages

    @property
    def size(self) -> str:
        return size_class(self.diameter_mm)

    def conditions(self) -> dict:
        found = {"size": self.size, "diameter_mm": round(self.diameter_mm, 3)}
        if self.attenuation:
            found["attenuation"] = self.attenuation
        return found


def size_class(diameter_mm: float) -> str:
    """small <= 10 mm < medium <= 20 mm < large, as in 3D MCGAN."""
    return "small" if diameter_mm <= 10 else "medium" if diameter_mm <= 20 else "large"


def read_annotations(path: Path) -> list[Nodule]:
    if not path.is_file():
        raise UserError(f"{path}: annotations file not found; give it with --annotations "
                        "(columns seriesuid,coordX,coordY,coordZ,diameter_mm[,attenuation])")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}; LUNA16 annotations have "
                            "seriesuid,coordX,coordY,coordZ,diameter_mm")
        column = next((c for c in ("attenuation", "texture") if c in reader.fieldnames), None)
        nodules = []
        for line, row in enumerate(reader, start=2):
            try:
                world = (float(row["coordX"]), float(row["coordY"]), float(row["coordZ"]))
                diameter = float(row["diameter_mm"])
            except (TypeError, ValueError):
                raise UserError(f"{path} line {line}: coordinates and diameter must be numbers") from None
            if not diameter > 0:
                raise UserError(f"{path} line {line}: diameter_mm must be positive")
            attenuation = None
            if column and (row[column] or "").strip():
                raw = row[column].strip().lower()
                raw = raw[:-2] if raw.endswith(".0") else raw
                if raw not in _ATTENUATION_ALIASES:
                    raise UserError(f"{path} line {line}: unknown {column} '{row[column]}'; "
                                    "use solid, part-solid or ggn (or LIDC texture 1-5)")
                attenuation = _ATTENUATION_ALIASES[raw]
            nodules.append(Nodule(row["seriesuid"].strip(), world, diameter, attenuation, line))
    return nodules


def find_scans(src: Path) -> dict[str, Path]:
    """Scans under src by series uid: .mhd/.mha (LUNA16) and .nii/.nii.gz files are named by their
    uid; a folder of DICOM files is one series, named by its SeriesInstanceUID."""
    if not src.is_dir():
        raise UserError(f"{src}: not a folder; give the folder holding the LUNA16 .mhd scans")
    scans: dict[str, Path] = {}
    for path in sorted(src.rglob("*")):
        name = path.name.lower()
        if path.is_file() and name.endswith((".mhd", ".mha", ".nii", ".nii.gz")):
            scans[re.sub(r"\.(mhd|mha|nii|nii\.gz)$", "", path.name, flags=re.IGNORECASE)] = path
        elif path.is_file() and name.endswith(".dcm") and path.parent not in scans.values():
            scans[_series_uid(path)] = path.parent
    if not scans:
        raise UserError(f"{src}: no scan found (.mhd, .mha, .nii.gz or a folder of .dcm files); "
                        "point at the LUNA16 folder (subset*/ inside)")
    return scans


def _series_uid(path: Path) -> str:
    import pydicom

    try:
        return str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
                   .SeriesInstanceUID)
    except Exception as exc:  # pydicom raises many types for damaged headers
        raise UserError(f"{path}: cannot read its SeriesInstanceUID ({exc}); check the DICOM file") from exc


def import_luna16(src: str | Path, out: str | Path, options: Luna16Options, plan: SplitPlan, *,
                  overwrite: bool = False, skip_bad: bool = False, progress: bool = True,
                  provenance: dict | None = None) -> Path:
    src, out = Path(src), Path(out)
    if options.kind not in ("vois", "scans"):
        raise UserError(f"--kind '{options.kind}': use vois or scans")
    scans = find_scans(src)
    annotations_path = Path(options.annotations) if options.annotations else src / "annotations.csv"
    nodules = read_annotations(annotations_path)
    by_scan: dict[str, list[Nodule]] = {uid: [] for uid in scans}
    for nodule in nodules:
        if nodule.seriesuid in by_scan:
            by_scan[nodule.seriesuid].append(nodule)
    has_attenuation = any(n.attenuation for n in nodules)
    vocabulary = {"size": list(SIZES), **({"attenuation": list(ATTENUATIONS)} if has_attenuation else {})}
    vois = options.kind == "vois"
    info = DatasetInfo(
        name=out.name, modality="CT", dimensionality=3,
        classes=["nodule"] if vois else ["no-nodule", "nodule"], intensity_unit="HU",
        attributes=vocabulary,
        source={"importer": "luna16", "path": str(src), "annotations": str(annotations_path),
                "options": asdict(options),
                "annotations_without_scan": sum(n.seriesuid not in by_scan for n in nodules)},
    )
    info.source.update(provenance or {})  # e.g. a phantom replaces its temporary paths
    with DatasetWriter(out, info, overwrite=overwrite, skip_bad=skip_bad) as writer:
        for uid in tqdm(sorted(scans), desc=f"luna16 {options.kind}", unit="scan", disable=not progress):
            if vois and not by_scan[uid]:
                continue
            try:
                scan = resample(reorient_to_plain(_read_scan(scans[uid])), (options.spacing,) * 3)
                scan.array = _as_hu16(scan.array)
                centres = [_centre_voxel(scan, n, scans[uid], annotations_path) for n in by_scan[uid]]
            except BadInputError as error:
                writer.handle_bad(error)
                continue
            if vois:
                _add_vois(writer, uid, scan, by_scan[uid], centres, options)
            else:
                _add_scan(writer, uid, scan, by_scan[uid], centres)
        return writer.commit(plan)


def _read_scan(path: Path) -> MedicalImage:
    image = read_image(path)
    if image.array.ndim != 3:
        raise BadInputError(path, f"is not a 3D scan (shape {image.array.shape})", "give 3D CT volumes")
    return image


def _centre_voxel(scan: MedicalImage, nodule: Nodule, scan_path: Path, annotations: Path) -> np.ndarray:
    centre = np.rint(scan.world_to_index(np.asarray(nodule.world))).astype(int)
    if np.any(centre < 0) or np.any(centre >= np.asarray(scan.spatial_shape)):
        raise BadInputError(annotations, f"line {nodule.row}: the nodule at {nodule.world} mm lies outside "
                            f"its scan {scan_path.name}", "check the coordinates are world mm of that scan")
    return centre


def _add_vois(writer: DatasetWriter, uid: str, scan: MedicalImage, nodules: list[Nodule],
              centres: list[np.ndarray], options: Luna16Options) -> None:
    size, half = options.voi_size, options.nodule_box // 2
    low_box, high_box = size // 2 - half, size // 2 - half + options.nodule_box
    for index, (nodule, centre) in enumerate(zip(nodules, centres)):
        voi = crop_centered(scan.array, tuple(centre), size, AIR_HU)
        corner = centre - size // 2
        image = MedicalImage(voi, scan.spacing, tuple(scan.index_to_world(corner)), scan.direction)
        sample = Sample(
            id=f"{uid}_n{index:02d}", patient_id=uid, image="", label="nodule",
            boxes=[[low_box] * 3 + [high_box] * 3],
            attributes={**nodule.conditions(), "scan": uid, "centre_voxel": [int(c) for c in centre]},
        )
        writer.add(sample, image)


def _add_scan(writer: DatasetWriter, uid: str, scan: MedicalImage, nodules: list[Nodule],
              centres: list[np.ndarray]) -> None:
    shape = np.asarray(scan.spatial_shape)
    boxes = []
    for nodule, centre in zip(nodules, centres):
        radius = nodule.diameter_mm / 2 / np.asarray(scan.spacing)
        low = np.clip(np.floor(centre + 0.5 - radius), 0, shape)
        high = np.clip(np.ceil(centre + 0.5 + radius), 0, shape)
        boxes.append([int(v) for v in list(low[::-1]) + list(high[::-1])])  # z,y,x -> x,y,z corners
    sample = Sample(
        id=uid, patient_id=uid, image="", label="nodule" if nodules else "no-nodule", boxes=boxes,
        attributes={"nodules": [n.conditions() for n in nodules]},
    )
    writer.add(sample, scan)


def _as_hu16(array: np.ndarray) -> np.ndarray:
    """HU fit int16; float scans are rounded so every stored scan and VOI is int16 NIfTI."""
    if array.dtype == np.int16:
        return array
    return np.clip(np.rint(array), -32768, 32767).astype(np.int16)
