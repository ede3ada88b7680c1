"""Built-in datasets: deterministic phantoms written in the raw layouts users bring (BraTS case
folders, LUNA16 .mhd + annotations.csv, images + labels.csv) and then imported by the same importers
as user data, so a phantom dataset is exactly what an import of that layout produces."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tqdm import tqdm

from pathosynth.data import validate
from pathosynth.data.paths import kind_of
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError

KINDS = ("brain-mr", "brain-metastases", "chest-ct", "radiograph")


DEFAULT_PATIENTS = {"brain-mr": 40, "brain-metastases": 40, "chest-ct": 24, "radiograph": 160}


def build_phantom(kind: str, out: str | Path, *, seed: int = 0, patients: int | None = None,
                  tiny: bool = False, plan: SplitPlan | None = None, kind_3d: str = "vois",
                  keep_raw: str | Path | None = None, overwrite: bool = False,
                  progress: bool = True) -> Path:
    """Write the raw layout of `kind` (to keep_raw, or a temporary folder) and import it into out."""
    if kind not in KINDS:
        raise UserError(f"unknown phantom '{kind}'; choose one of {', '.join(KINDS)}")
    patients = DEFAULT_PATIENTS[kind] if patients is None else patients
    if patients < 1:
        raise UserError("--patients must be at least 1")
    plan = plan or SplitPlan(seed=seed)
    out = Path(out)
    validate.output_folder(out, [keep_raw] if keep_raw else [])
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; choose another --out or pass --overwrite")
    if keep_raw:
        _prepare_keep_raw(Path(keep_raw), out)
    with tempfile.TemporaryDirectory(prefix="pathosynth-raw-") as scratch:
        raw = Path(keep_raw) if keep_raw else Path(scratch)
        with tqdm(total=patients, desc=f"{kind} phantom", unit="patient", disable=not progress) as bar:

            def tick(*_: object) -> None:  # some writers report (done, total); the bar counts calls
                bar.update(1)

            try:
                return _write_and_import(kind, raw, out, seed, patients, tiny, plan, kind_3d, tick,
                                         overwrite, progress)
            except BaseException:
                if keep_raw:
                    shutil.rmtree(raw, ignore_errors=True)
                raise


def _prepare_keep_raw(raw: Path, out: Path) -> None:
    """Create the --keep-raw folder; refuse a place where it cannot go, or where the dataset
    would land inside the raw layout and be read back as raw data."""
    kind = kind_of(raw)
    if kind == "file":
        raise UserError(f"{raw}: is a file; give --keep-raw an empty or new folder")
    if kind == "dir" and any(raw.iterdir()):
        raise UserError(f"{raw} is not empty; give --keep-raw an empty or new folder")
    if out.resolve().is_relative_to(raw.resolve()):
        raise UserError(f"{out}: lies inside --keep-raw {raw}, so the dataset would be read as raw data; "
                        "give them separate folders")
    validate.output_folder(raw, [])
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{raw}: cannot be created ({exc.strerror or exc}); give --keep-raw another folder") from exc


def phantom_provenance(kind: str, seed: int, patients: int, tiny: bool) -> dict:
    """What dataset.json records as the source of a phantom, instead of its temporary raw folder."""
    return {"path": None, "annotations": None, "csv": None,
            "phantom": {"kind": kind, "seed": seed, "patients": patients, "tiny": tiny}}


def _write_and_import(kind, raw, out, seed, patients, tiny, plan, kind_3d, tick, overwrite, progress):
    common = {"overwrite": overwrite, "progress": progress,
            "provenance": phantom_provenance(kind, seed, patients, tiny)}
    if kind in BRAIN_SETS:
        from pathosynth.data.importers.brats import import_brats

        return import_brats(_write_brain_cases(kind, raw, seed, patients, tiny, tick), out,
                            brain_import_options(kind, tiny), plan, **common)
    if kind == "chest-ct":
        from pathosynth.data.importers.luna16 import Luna16Options, import_luna16
        from pathosynth.data.phantoms.chest_ct import write_luna16_layout

        write_luna16_layout(raw, patients, seed, size="tiny" if tiny else "default", progress=tick)
        options = Luna16Options(kind=kind_3d, voi_size=32, nodule_box=16) if tiny else Luna16Options(kind=kind_3d)
        return import_luna16(raw, out, options, plan, **common)
    from pathosynth.data.importers.folder import FolderOptions, import_folder
    from pathosynth.data.phantoms.radiograph import write_folder_layout

    write_folder_layout(raw, patients, seed, size=64 if tiny else 256, progress=tick)
    return import_folder(raw, out, FolderOptions(classes=("normal", "fracture")), plan, **common)


# ------------------------------------------------------------------------------------------ brain

# The two brain sets, as the papers had two datasets: gliomas (BraTS HGG, tumour classification)
# and brain metastases (box detection).
BRAIN_SETS = {"brain-mr": "glioma", "brain-metastases": "metastases"}
# The raw folder the cases go to: the BraTS importer reads the grade from HGG/LGG in the path.
_BRAIN_FOLDER = {"brain-mr": "HGG", "brain-metastases": "METS"}
TINY_BRAIN_SHAPE = (40, 64, 64)
BRAIN_SHAPE = (155, 240, 240)
BORDERLINE_TUMOUR_AREA = 800  # px at 1 mm: a glioma slice showing less tumour is borderline


def brain_import_options(kind: str, tiny: bool = False):
    """How a brain phantom's raw cases are imported: the papers' slice range and exclusions.

    Gliomas (two-step GAN paper): T1c slices 30-130 of 155, padded to 256, without borderline
    slices and slices with missing brain. Borderline: the tumour's top and bottom slices, where
    less than 8 cm^2 of it (oedema included) shows, under 50 px at the classifier's 64 px: slivers
    of oedema and the caps of the core, whose label a reader would dispute (the paper kept 54% of
    its training slices; this rule drops about a quarter). Missing brain: less than a quarter of
    the largest slice's brain. Metastases: the same slices and brain rule, but every lesion counts
    however small (its pole on a slice is still a lesion to find), so every connected component
    of the mask gets its box. Tiny sets (64 px, slices 8-32 of 40) keep every slice of their
    range: tests count on 25 slices per patient.
    """
    from pathosynth.data.importers.brats import BratsOptions

    if tiny:
        return BratsOptions(slices=(8, 32), pad_to=64, min_box_area=1 if kind == "brain-metastases" else 10)
    if kind == "brain-mr":
        return BratsOptions(slices=(30, 130), pad_to=256, min_tumour_area=BORDERLINE_TUMOUR_AREA,
                            min_brain_fraction=0.25)
    return BratsOptions(slices=(30, 130), pad_to=256, min_brain_fraction=0.25, min_box_area=1)


def _write_brain_cases(kind: str, raw: Path, seed: int, patients: int, tiny: bool, tick) -> Path:
    from pathosynth.data.phantoms.brain_mr import write_brats_cases

    shape = TINY_BRAIN_SHAPE if tiny else BRAIN_SHAPE
    write_brats_cases(raw / _BRAIN_FOLDER[kind], patients, seed, shape=shape, sequences=("t1ce",),
                      disease=BRAIN_SETS[kind], progress=tick)
    return raw
