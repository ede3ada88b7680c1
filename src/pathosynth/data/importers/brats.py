"""Import BraTS-style case folders (t1, t1ce, t2, flair, seg NIfTI) as labelled axial slices.

Follows the two-step GAN paper's preprocessing (METHODS.md section 2): an axial slice range,
tumour/non-tumour per slice from the segmentation, optional exclusion of borderline slices and of
slices with missing brain, per-volume intensity normalisation, zero-padding 240 -> 256, and one
box per connected tumour component for the box-conditioned GANs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pathosynth.data import validate
from pathosynth.data.boxes import boxes_from_mask
from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.paths import kind_of
from pathosynth.data.preprocess import normalise_percentile, pad_to_square, reorient_to_plain
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import BadInputError, UserError

ALL_SEQUENCES = ("t1", "t1ce", "t2", "flair")
# BraTS 2012-2021 names first, then the BraTS 2023 ones (t1n, t1c, t2w, t2f)
_ALIASES = {"t1": ("t1", "t1n"), "t1ce": ("t1ce", "t1c", "t1gd"), "t2": ("t2", "t2w"),
            "flair": ("flair", "t2f"), "seg": ("seg",)}
TUMOUR, NON_TUMOUR = "tumour", "non-tumour"


@dataclass
class BratsOptions:
    sequences: tuple[str, ...] = ("t1ce",)
    slices: tuple[int, int] = (30, 130)  # first and last axial slice kept, 0-based, inclusive
    pad_to: int = 256  # zero-pad the slices to pad_to x pad_to; 0 keeps their size
    min_tumour_area: int = 0  # drop slices whose tumour area (px) is > 0 but below this
    min_brain_fraction: float = 0.0  # drop slices with less brain than this fraction of the largest
    min_box_area: int = 10  # tumour components smaller than this (px) get no box: specks are no lesion
    percentile: float = 99.5  # per-volume normalisation: this brain percentile becomes 1


def parse_sequences(text: str) -> tuple[str, ...]:
    names = ALL_SEQUENCES if text.strip() == "all" else tuple(s.strip().lower() for s in text.split(","))
    unknown = [s for s in names if s not in ALL_SEQUENCES]
    if unknown or not names:
        raise UserError(f"--sequences '{text}': unknown sequence(s) {', '.join(unknown)}; "
                        f"use a comma list of {', '.join(ALL_SEQUENCES)} or 'all'")
    return names


def parse_slice_range(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[-:]\s*(\d+)\s*", text)
    if not match or int(match[1]) > int(match[2]):
        raise UserError(f"--slices '{text}' is not a range FIRST-LAST like 30-130")
    return int(match[1]), int(match[2])


def find_cases(src: Path) -> list[Path]:
    """Case folders: any folder under src holding a *seg.nii(.gz) file."""
    if kind_of(src) != "dir":
        raise UserError(f"{src}: not a folder; give the folder that holds the BraTS case folders")
    cases = sorted({p.parent for p in src.rglob("*") if _role_of(p) == "seg"})
    if not cases:
        raise UserError(f"{src}: no BraTS case found (no *_seg.nii or *_seg.nii.gz file); "
                        "point at the folder holding the case folders")
    # the folder name is the patient id: HGG/X and LGG/X would be one patient with two brains
    validate.require_unique(((case.name, str(case)) for case in cases), "are case folders with the same name",
                            "the case folder name is the patient id, so rename or remove one")
    return cases


def _role_of(path: Path) -> str | None:
    name = path.name.lower()
    match = re.search(r"[_-]([a-z0-9]+)\.nii(\.gz)?$", name)
    if not match:
        return None
    for role, aliases in _ALIASES.items():
        if match[1] in aliases:
            return role
    return None


def case_files(case: Path, sequences: tuple[str, ...], root: Path | None = None) -> dict[str, Path]:
    """The files of the sequences asked for and the segmentation; each must be the only one of its
    role in the case folder and lie inside `root` (default: the case folder)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(case.iterdir()):
        role = _role_of(path)
        if role is not None:
            found.setdefault(role, []).append(path)
    files = {}
    for role in (*sequences, "seg"):
        candidates = found.get(role, [])
        if not candidates:
            aliases = " or ".join(f"*_{a}.nii.gz" for a in _ALIASES[role])
            raise BadInputError(case, f"has no {role} file ({aliases})",
                                f"add it or choose --sequences without {role}")
        if len(candidates) > 1:
            raise BadInputError(case, f"has {len(candidates)} {role} files ({', '.join(p.name for p in candidates)})",
                                "keep one")
        validate.inside_folder(candidates[0], root or case, candidates[0])
        files[role] = candidates[0]
    return files


def import_brats(src: str | Path, out: str | Path, options: BratsOptions, plan: SplitPlan, *,
                 overwrite: bool = False, skip_bad: bool = False, progress: bool = True,
                 provenance: dict | None = None) -> Path:
    src, out = Path(src), Path(out)
    cases = find_cases(src)
    info = DatasetInfo(
        name=out.name, modality="MR", dimensionality=2, classes=[NON_TUMOUR, TUMOUR],
        channels=list(options.sequences), intensity_unit="normalised [0, 1]",
        png_slope=1.0 / 65535.0, attributes={"grade": ["HGG", "LGG", "unknown"]},
        source={"importer": "brats", "path": str(src), "options": asdict(options)},
    )
    info.source.update(provenance or {})  # e.g. a phantom replaces its temporary paths
    excluded = {"borderline": 0, "missing_brain": 0}
    with DatasetWriter(out, info, overwrite=overwrite, skip_bad=skip_bad, inputs=(src,)) as writer:
        for case in tqdm(cases, desc="brats cases", unit="case", disable=not progress):
            with writer.unit(case):
                counts = _import_case(case, src, options, writer)
                for key in excluded:
                    excluded[key] += counts[key]
        info.source["excluded_slices"] = excluded
        return writer.commit(plan)


def _import_case(case: Path, src: Path, options: BratsOptions, writer: DatasetWriter) -> dict[str, int]:
    files = case_files(case, options.sequences, src)
    # any non-zero label is tumour; labels keep their values (uint8, or uint16 above 255)
    seg_image = reorient_to_plain(validate.read_checked(files["seg"], labels=True))
    if seg_image.array.ndim != 3:
        raise BadInputError(files["seg"], f"is {seg_image.array.ndim}D", "BraTS segmentations are 3D volumes")
    volumes = []
    for name in options.sequences:
        image = reorient_to_plain(validate.read_checked(files[name]))
        if image.array.shape != seg_image.array.shape:
            raise BadInputError(files[name], f"has shape {image.array.shape} but the segmentation "
                                f"{files['seg'].name} has {seg_image.array.shape}",
                                "resample the case so all its sequences and the segmentation share one grid")
        volumes.append(validate.exact_cast(image.array, np.float32, files[name]))
    seg = seg_image.array
    brain = np.any(np.stack(volumes) > 0, axis=0)
    normalised = np.stack([normalise_percentile(v, brain, options.percentile) for v in volumes])
    first, last = options.slices
    depth = seg.shape[0]
    if first >= depth:
        raise BadInputError(case, f"has {depth} axial slices, none in the range {first}-{last}",
                            f"choose --slices within 0-{depth - 1}")
    brain_area = brain.sum(axis=(1, 2))
    largest = max(int(brain_area.max()), 1)
    height, width = seg.shape[1:]
    size = options.pad_to or max(height, width)
    if size < max(height, width):
        raise UserError(f"--pad-to {options.pad_to} is smaller than the {height}x{width} slices of {case}; "
                        f"use at least {max(height, width)} or 0 to keep the size")
    grade = next((g for g in ("HGG", "LGG") if g in case.parts), "unknown")
    counts = {"borderline": 0, "missing_brain": 0}
    for z in range(first, min(last, depth - 1) + 1):
        tumour_area = int((seg[z] > 0).sum())
        if brain_area[z] < options.min_brain_fraction * largest:
            counts["missing_brain"] += 1
            continue
        if 0 < tumour_area < options.min_tumour_area:
            counts["borderline"] += 1
            continue
        image, (top, left) = pad_to_square(normalised[:, z], size)
        mask, _ = pad_to_square(seg[z], size)
        boxes = [[b[0] + left, b[1] + top, b[2] + left, b[3] + top]
                 for b in boxes_from_mask(seg[z], options.min_box_area)]
        spacing = seg_image.spacing[1:]
        sample = Sample(
            id=f"{case.name}_z{z:03d}", patient_id=case.name, image="",
            label=TUMOUR if tumour_area > 0 else NON_TUMOUR, boxes=boxes,
            attributes={"slice": z, "tumour_area_px": tumour_area, "grade": grade},
        )
        writer.add(sample, MedicalImage(image[0] if len(image) == 1 else image, spacing), mask)
    return counts
