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

KINDS = ("brain-mr", "chest-ct", "radiograph")


DEFAULT_PATIENTS = {"brain-mr": 40, "chest-ct": 24, "radiograph": 160}


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
    if kind == "brain-mr":
        from pathosynth.data.importers.brats import BratsOptions, import_brats
        from pathosynth.data.phantoms.brain_mr import write_brats_cases

        shape = (40, 64, 64) if tiny else (155, 240, 240)
        write_brats_cases(raw, patients, seed, shape=shape, sequences=("t1ce",), progress=tick)
        options = BratsOptions(slices=(8, 32), pad_to=64) if tiny else BratsOptions()
        return import_brats(raw, out, options, plan, **common)
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
