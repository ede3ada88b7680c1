"""Import LUNA16-style chest CT (.mhd/.mha scans + annotations.csv) for nodule work.

Two kinds of dataset come out of the same scans (METHODS.md section 4):
- ``vois``: one 64^3 volume of interest per nodule at 1 mm, centred on it, with the central 32^3
  nodule box and the size / attenuation conditions of 3D MCGAN;
- ``scans``: the whole resampled scan per patient, with one box per nodule, for detection.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pathosynth.data import validate
from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.nodules import ATTENUATIONS, SIZES, size_class
from pathosynth.data.paths import kind_of
from pathosynth.data.preprocess import crop_centered, reorient_to_plain, resample
from pathosynth.data.splits import SplitPlan
from pathosynth.data.tables import read_table
from pathosynth.errors import BadInputError, UserError

_ATTENUATION_ALIASES = {
    "solid": "solid", "part-solid": "part-solid", "part_solid": "part-solid", "partsolid": "part-solid",
    "subsolid": "part-solid", "ggn": "ggn", "ggo": "ggn", "ground-glass": "ggn", "ground_glass": "ggn",
    "non-solid": "ggn", "nonsolid": "ggn",
    # LIDC texture ratings: 1-2 non-solid (ground glass), 3 part-solid, 4-5 solid
    "1": "ggn", "2": "ggn", "3": "part-solid", "4": "solid", "5": "solid",
}
_REQUIRED = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
# LUNA16's largest nodule is about 32 mm; a diameter far beyond any lung lesion is a unit mistake
# (cm, voxels) that would otherwise become a box over most of the scan
MAX_DIAMETER_MM = 100.0
_DICOM_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
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


def read_annotations(path: Path) -> list[Nodule]:
    table = read_table(path, _REQUIRED, what="annotations file", where_to_give="give it with --annotations")
    column = next((c for c in ("attenuation", "texture") if c in table.columns), None)
    nodules = [_nodule(table.where(line), line, row, column) for line, row in table.rows]
    # the same nodule twice would give two identical VOIs, one of them a silent extra sample
    validate.require_unique((((n.seriesuid, n.world), table.where(n.row)) for n in nodules),
                            "annotate the same nodule (series uid, x, y, z):", "keep one row per nodule")
    return nodules


def _nodule(where: str, line: int, row: dict[str, str], column: str | None) -> Nodule:
    uid = row["seriesuid"]
    if not uid:
        raise BadInputError(where, "has no seriesuid", "fill in the series uid of the scan")
    world = tuple(validate.number(row[axis], where, axis, unit="mm (world coordinates)")
                  for axis in ("coordX", "coordY", "coordZ"))
    diameter = validate.number(row["diameter_mm"], where, "diameter_mm", above=0, at_most=MAX_DIAMETER_MM,
                               unit="mm")
    attenuation = None
    if column and row[column]:
        raw = row[column].lower()
        raw = raw[:-2] if raw.endswith(".0") else raw
        if raw not in _ATTENUATION_ALIASES:
            raise BadInputError(where, f"unknown {column} '{row[column]}'",
                                "use solid, part-solid or ggn (or LIDC texture 1-5)")
        attenuation = _ATTENUATION_ALIASES[raw]
    return Nodule(uid, world, diameter, attenuation, line)


def find_scans(src: Path) -> dict[str, Path]:
    """Scans under src by series uid: .mhd/.mha (LUNA16) and .nii/.nii.gz files are named by their
    uid; a folder of DICOM files is one series, named by its SeriesInstanceUID. Every scan must lie
    inside src (links included) and have a uid of its own."""
    if kind_of(src) != "dir":
        raise UserError(f"{src}: not a folder; give the folder holding the LUNA16 .mhd scans")
    found: list[tuple[str, Path]] = []
    dicom_folders: set[Path] = set()
    for path in sorted(src.rglob("*")):
        name = path.name.lower()
        if path.is_file() and name.endswith((".mhd", ".mha", ".nii", ".nii.gz")):
            found.append((re.sub(r"\.(mhd|mha|nii|nii\.gz)$", "", path.name, flags=re.IGNORECASE), path))
        elif path.is_file() and name.endswith(".dcm") and path.parent not in dicom_folders:
            dicom_folders.add(path.parent)
            found.append((_series_uid(path), path.parent))
    if not found:
        raise UserError(f"{src}: no scan found (.mhd, .mha, .nii.gz or a folder of .dcm files); "
                        "point at the LUNA16 folder (subset*/ inside)")
    validate.require_unique(((uid, str(path)) for uid, path in found), "are two scans with the series uid",
                            "annotations could not tell them apart: keep one")
    for _, path in found:
        validate.inside_folder(path, src, path)
    return dict(found)


def _series_uid(path: Path) -> str:
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warning on a malformed uid; the check below says it
            uid = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
                      .SeriesInstanceUID)
    except Exception as exc:  # pydicom raises many types for damaged headers
        raise UserError(f"{path}: cannot read its SeriesInstanceUID ({exc}); check the DICOM file") from exc
    if len(uid) > 64 or not _DICOM_UID.fullmatch(uid):
        raise UserError(f"{path}: its SeriesInstanceUID {uid!r} is not a DICOM UID (digits and dots, at most "
                        "64); fix the header")
    return uid


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
    inputs = (src, annotations_path)
    with DatasetWriter(out, info, overwrite=overwrite, skip_bad=skip_bad, inputs=inputs) as writer:
        for uid in tqdm(sorted(scans), desc=f"luna16 {options.kind}", unit="scan", disable=not progress):
            if vois and not by_scan[uid]:
                continue
            with writer.unit(scans[uid]):
                scan = resample(reorient_to_plain(_read_scan(scans[uid])), (options.spacing,) * 3)
                scan.array = _as_hu16(scan.array, scans[uid])
                centres = [_centre_voxel(scan, n, scans[uid], annotations_path) for n in by_scan[uid]]
                if vois:
                    _add_vois(writer, uid, scan, by_scan[uid], centres, options)
                else:
                    _add_scan(writer, uid, scan, by_scan[uid], centres)
        return writer.commit(plan)


def _read_scan(path: Path) -> MedicalImage:
    image = validate.read_checked(path)
    if image.array.ndim != 3:
        raise BadInputError(path, f"is not a 3D scan (shape {image.array.shape})", "give 3D CT volumes")
    return image


def _centre_voxel(scan: MedicalImage, nodule: Nodule, scan_path: Path, annotations: Path) -> np.ndarray:
    centre = np.rint(scan.world_to_index(np.asarray(nodule.world)))
    # compared before the cast to int: a centre at 1e300 mm would not fit one
    if np.any(centre < 0) or np.any(centre >= np.asarray(scan.spatial_shape)):
        raise BadInputError(annotations, f"line {nodule.row}: the nodule at {nodule.world} mm lies outside "
                            f"its scan {scan_path.name}", "check the coordinates are world mm of that scan")
    return centre.astype(int)


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


def _as_hu16(array: np.ndarray, source: Path) -> np.ndarray:
    """HU fit int16; float scans are rounded so every stored scan and VOI is int16 NIfTI. Values
    beyond int16 are refused, not clipped: they mean the scan is not in HU."""
    if np.issubdtype(array.dtype, np.floating):
        array = np.rint(array)
    return validate.exact_cast(array, np.int16, source, "check that the scan holds Hounsfield units")
