"""Place 3D MCGAN nodules into whole CT scans (METHODS.md section 4, issue 5).

Two ways in:
- `place_nodules`: one scan, nodules at the positions the user gives, each of a chosen size and
  attenuation class;
- `augment_scans`: a LUNA16-layout folder augmented k-fold, either with the paper's protocol (each
  real nodule replaced by a generated one of its own classes, or of the classes asked for, at its
  position shifted up to 10% and zoomed up to 10%) or with nodules at random plausible positions
  inside the lungs (any of the nine classes: atypical cases on demand).

For each nodule: crop the VOI around the position at the run's voxel size, inpaint the central box
with the run's generator, resample the box back to the scan's own spacing and paste it with a
feathered edge. The output volume keeps the input's format and geometry, is marked synthetic in its
own metadata and gets a new series uid; beside it, the nodules' LUNA16 CSV (world mm) and a JSON
record with their boxes (voxels), seeds and provenance.

No file written under OUT names its source (DESIGN.md): not the series uid, file name, folder or
path, not the command line that held them, and no hash of the source file either, since whoever
holds the source data could recompute it and look the patient up. Each synthetic scan is named by a
fresh random uid (`new_synthetic_uid`); the scans are listed in the order of those uids, not the
sources'. The link back is written only on request, to a source map outside OUT (`source_map`).
What stays is the content: outside the pasted boxes a synthetic scan is its source's pixels and
geometry, so anyone who holds the source scans can still match them by content.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pathosynth import __version__
from pathosynth.data.boxes import BOX_CONVENTION
from pathosynth.data.dataset import SYNTHETIC_MARK
from pathosynth.data.image import MedicalImage
from pathosynth.data.readers import read_image
from pathosynth.data.writers import write_image
from pathosynth.errors import UserError
from pathosynth.generate.inpaint import Inpainter, check_condition, load_inpainter
from pathosynth.data.nodules import ATTENUATIONS, SIZES
from pathosynth.outputs import building, check_source_map_target, new_synthetic_uid, write_source_map
from pathosynth.generate.placement import (
    NoduleAnnotation, check_inside_lungs, check_spacing, extract_voi, jitter_position, lung_mask, nodule_box,
    parse_position, paste_block, position_units, random_lung_positions, write_luna16_csv)
from pathosynth.runtime import software_versions

PLACEMENT_FORMAT = "pathosynth-nodule-placement"
# Nominal diameters when the generated nodule cannot be measured (no clear blob): class centres.
NOMINAL_DIAMETER_MM = {"small": 7.0, "medium": 15.0, "large": 25.0}
_WRITABLE = (".nii.gz", ".nii", ".mhd", ".mha", ".nrrd")


@dataclass
class PlacedNodule:
    centre_index: np.ndarray  # array order (z, y, x), continuous
    size: str
    attenuation: str
    seed: int
    zoom: float
    box: list[float]  # the nodule's (a sphere of diameter_mm at the centre)
    pasted_box: list[float]  # every voxel the paste changed
    diameter_mm: float
    measured: bool
    replaces_real: bool = False  # takes the place of a real nodule (paper protocol); which one: the source map

    def record(self, scan: MedicalImage) -> dict:
        world = scan.index_to_world(self.centre_index)
        return {"size": self.size, "attenuation": self.attenuation, "seed": self.seed, "zoom": round(self.zoom, 4),
                "centre_voxel_xyz": [round(float(v), 3) for v in self.centre_index[::-1]],
                "centre_world_mm": [round(float(v), 4) for v in world], "box": self.box, "pasted_box": self.pasted_box,
                "diameter_mm": round(self.diameter_mm, 3), "diameter_measured": self.measured,
                "replaces_real_nodule": self.replaces_real}


# ------------------------------------------------------------------------------- one scan

def place_nodules(run: str | Path, ct: str | Path, out: str | Path, *, at: list[str], sizes: list[str],
                  attenuations: list[str], zoom: float = 1.0, seed: int = 0, overwrite: bool = False,
                  progress: bool = True, source_map: str | Path | None = None) -> Path:
    """Write OUT/<new uid><suffix>, OUT/annotations.csv, OUT/nodules.json and OUT/preview.png; with
    `source_map`, also that file (outside OUT), which links the new uid to `ct`."""
    ct, out = Path(ct), Path(out)
    if not at:
        raise UserError("give at least one --at position (x,y,z voxels, or x,y,z,world in mm)")
    sizes, attenuations = _per_nodule(sizes, len(at), "--size"), _per_nodule(attenuations, len(at), "--attenuation")
    for size, attenuation in zip(sizes, attenuations):
        check_condition(size, attenuation)
    if not 0.5 <= zoom <= 2.0:
        raise UserError(f"--zoom {zoom} is outside 0.5-2.0; a nodule box zoomed that far no longer looks like a nodule")
    map_target = check_source_map_target(source_map, out, overwrite)
    inpainter = load_inpainter(run)
    scan = read_ct(ct)
    mask = lung_mask(scan)
    centres = [parse_position(text, scan, "--at", path=ct) for text in at]
    for text, centre in zip(at, centres):
        check_inside_lungs(scan, centre, mask, ct, units=position_units(text))
    array = scan.array
    placed = []
    for i, (centre, size, attenuation) in enumerate(tqdm(list(zip(centres, sizes, attenuations)),
                                                           desc="place nodules", unit="nodule",
                                                           disable=not progress)):
        array, nodule = place_one(inpainter, _with_array(scan, array), centre, size, attenuation, seed + i, zoom)
        placed.append(nodule)
    uid = new_synthetic_uid()
    settings = {"at": list(at), "sizes": sizes, "attenuations": attenuations, "zoom": zoom, "seed": seed}
    with building(out, overwrite) as tmp:
        name = _write_volume(tmp, uid, scan, array, ct)
        _write_annotations(tmp / "annotations.csv", uid, scan, placed)
        record = _provenance(inpainter, run, settings)
        record["scans"] = [{"uid": uid, "file": name, "nodules": [n.record(scan) for n in placed]}]
        (tmp / "nodules.json").write_text(json.dumps(record, indent=2) + "\n")
        _preview(tmp / "preview.png", scan, array, placed)
        if map_target:
            write_source_map(map_target, out, [_source_entry(uid, name, ct)])
    return out


# --------------------------------------------------------------------------- a dataset

def augment_scans(run: str | Path, src: str | Path, out: str | Path, *, copies: int = 1, positions: str = "real",
                  size: str | None = None, attenuation: str | None = None, per_scan: int = 1,
                  shift: float = 0.1, zoom: float = 0.1, annotations: str | Path | None = None, seed: int = 0,
                  overwrite: bool = False, progress: bool = True, source_map: str | Path | None = None) -> Path:
    """Augment the LUNA16-layout folder `src` `copies` times into a LUNA16-layout folder `out`
    (subset0/*.mhd-or-input-format, annotations.csv, nodules.json); resumes an interrupted run.
    With `source_map`, also that file (outside OUT): which source scan each new uid was made from."""
    from pathosynth.data.importers.luna16 import find_scans, read_annotations

    src, out = Path(src), Path(out)
    if copies < 1:
        raise UserError(f"--copies must be at least 1, got {copies}")
    if positions not in ("real", "random"):
        raise UserError(f"--positions '{positions}': use real (the paper's protocol) or random (inside the lungs)")
    if per_scan < 1:
        raise UserError(f"--per-scan must be at least 1, got {per_scan}")
    if not (0 <= shift <= 0.5 and 0 <= zoom <= 0.5):
        raise UserError(f"--jitter shift={shift},zoom={zoom}: keep both in 0-0.5 (the paper uses 0.1)")
    if size is not None or attenuation is not None:
        check_condition(size or SIZES[0], attenuation or ATTENUATIONS[0])
    map_target = check_source_map_target(source_map, out, overwrite)
    inpainter = load_inpainter(run)
    scans = find_scans(src)
    annotations_path = Path(annotations) if annotations else src / "annotations.csv"
    nodules = read_annotations(annotations_path)
    by_scan: dict[str, list] = {uid: [] for uid in scans}
    for nodule in nodules:
        if nodule.seriesuid in by_scan:
            by_scan[nodule.seriesuid].append(nodule)
    todo = [uid for uid in sorted(scans) if positions == "random" or by_scan[uid]]
    if not todo:
        raise UserError(f"{annotations_path}: no nodule belongs to a scan under {src}; check the seriesuid column")
    jobs = [(uid, copy) for uid in todo for copy in range(copies)]
    settings = {"copies": copies, "positions": positions, "size": size, "attenuation": attenuation,
                "per_scan": per_scan, "shift": shift, "zoom": zoom, "seed": seed}
    command = {**settings, "run": str(Path(run).resolve()), "src": str(src.resolve()),
               "annotations": str(annotations_path.resolve()), "checkpoint": inpainter.sha256, "jobs": jobs}
    with building(out, overwrite, resumable=True) as tmp:
        done = _finished_jobs(tmp, command)
        # jobs are known by their number in `jobs` alone: the partial folder names no source either
        for number, (uid, copy) in enumerate(tqdm(jobs, desc="augment scans", unit="scan", disable=not progress)):
            if number in done:
                continue
            rng = np.random.default_rng([seed, number])
            scan = read_ct(scans[uid])
            if positions == "real":
                placed, array = _replace_real(inpainter, scan, by_scan[uid], size, attenuation, shift, zoom, rng,
                                              seed * 1_000_003 + number * 1000, annotations_path)
                real_rows = []
            else:
                placed, array = _add_random(inpainter, scan, scans[uid], per_scan, size, attenuation, rng,
                                            seed * 1_000_003 + number * 1000)
                real_rows = by_scan[uid]
            new_uid = new_synthetic_uid()
            (tmp / "subset0").mkdir(exist_ok=True)
            name = _write_volume(tmp / "subset0", new_uid, scan, array, scans[uid])
            job = {"job": number, "uid": new_uid, "file": f"subset0/{name}",
                   "nodules": [n.record(scan) for n in placed],
                   "real_nodules": [{"world_mm": list(r.world), "diameter_mm": r.diameter_mm,
                                     "attenuation": r.attenuation, "size": r.size} for r in real_rows]}
            with (tmp / "jobs.jsonl").open("a") as handle:  # one line per finished scan: the resume point
                handle.write(json.dumps(job) + "\n")
        finished = _finish_dataset(tmp, inpainter, run, settings)
        if map_target:
            replaced = {uid: [f"{annotations_path.name} line {n.row}" for n in by_scan[uid]] if positions == "real"
                        else [] for uid in todo}
            write_source_map(map_target, out, [_augmented_entry(job, jobs, scans, replaced) for job in finished])
    return out


def _augmented_entry(job: dict, jobs: list[tuple[str, int]], scans: dict[str, Path],
                     replaced: dict[str, list[str]]) -> dict:
    """The source map's row for one finished job (`job["job"]` is its number in `jobs`)."""
    source_uid, copy = jobs[job["job"]]
    return _source_entry(job["uid"], job["file"], scans[source_uid], source_uid=source_uid, copy=copy,
                         replaced=replaced[source_uid])


def _replace_real(inpainter, scan, nodules, size, attenuation, shift, zoom, rng, seed, annotations_path):
    array, placed = scan.array, []
    for i, nodule in enumerate(nodules):
        wanted_attenuation = attenuation or nodule.attenuation
        if wanted_attenuation is None:
            raise UserError(f"{annotations_path} line {nodule.row}: no attenuation for this nodule; add an "
                            "attenuation column or pass --attenuation")
        centre = scan.world_to_index(np.asarray(nodule.world))
        moved, factor = jitter_position(centre, scan, nodule.diameter_mm, rng, shift=shift, zoom=zoom)
        array, made = place_one(inpainter, _with_array(scan, array), moved, size or nodule.size,
                                 wanted_attenuation, seed + i, factor)
        made.replaces_real = True
        placed.append(made)
    return placed, array


def _add_random(inpainter, scan, path, count, size, attenuation, rng, seed):
    centres = random_lung_positions(scan, lung_mask(scan), count, rng, path=path)
    array, placed = scan.array, []
    for i, centre in enumerate(centres):
        wanted_size = size or SIZES[int(rng.integers(len(SIZES)))]
        wanted_attenuation = attenuation or ATTENUATIONS[int(rng.integers(len(ATTENUATIONS)))]
        array, made = place_one(inpainter, _with_array(scan, array), centre, wanted_size, wanted_attenuation,
                                 seed + i, 1.0)
        placed.append(made)
    return placed, array


def _finished_jobs(tmp: Path, command: dict) -> set[int]:
    """Job numbers an interrupted run of the same command finished; another command starts afresh.

    The command (which names the source folder and its scans) is kept only as a salted hash, so an
    abandoned partial folder does not name the sources either."""
    settings_file = tmp / "settings.json"
    if settings_file.is_file() and (tmp / "jobs.jsonl").is_file():
        kept = json.loads(settings_file.read_text())
        if kept.get("fingerprint") == _fingerprint(kept.get("salt", ""), command):
            return {int(json.loads(line)["job"]) for line in (tmp / "jobs.jsonl").read_text().splitlines()
                    if line.strip()}
    for stale in list(tmp.iterdir()):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    salt = secrets.token_hex(16)
    settings_file.write_text(json.dumps({"salt": salt, "fingerprint": _fingerprint(salt, command)}, indent=2) + "\n")
    return set()


def _fingerprint(salt: str, command: dict) -> str:
    return hashlib.sha256((salt + json.dumps(command, sort_keys=True, default=str)).encode()).hexdigest()


def _finish_dataset(tmp: Path, inpainter: Inpainter, run, settings: dict) -> list[dict]:
    """Write annotations.csv and nodules.json from the finished jobs; return the jobs (with their
    numbers, which only the source map may use)."""
    jobs = [json.loads(line) for line in (tmp / "jobs.jsonl").read_text().splitlines() if line.strip()]
    # listed by their random uids: the order of the source scans (sorted by their uids) stays out
    jobs.sort(key=lambda job: job["uid"])
    rows = []
    for job in jobs:
        for real in job["real_nodules"]:
            rows.append(_csv_row(job["uid"], real["world_mm"], real["diameter_mm"], real["attenuation"], False))
        for nodule in job["nodules"]:
            rows.append(_csv_row(job["uid"], nodule["centre_world_mm"], nodule["diameter_mm"],
                                 nodule["attenuation"], True))
    write_luna16_csv(tmp / "annotations.csv", rows)
    record = _provenance(inpainter, run, settings)
    record["scans"] = [{key: value for key, value in job.items() if key != "job"} for job in jobs]
    (tmp / "nodules.json").write_text(json.dumps(record, indent=2) + "\n")
    (tmp / "jobs.jsonl").unlink()
    (tmp / "settings.json").unlink()
    return jobs


# ----------------------------------------------------------------------------- one nodule

def place_one(inpainter: Inpainter, scan: MedicalImage, centre: np.ndarray, size: str, attenuation: str,
               seed: int, zoom: float) -> tuple[np.ndarray, PlacedNodule]:
    voi = extract_voi(scan, centre, inpainter.voi_size, inpainter.spacing_mm)
    block = inpainter(voi, size, attenuation, seed)
    array, box = paste_block(scan, centre, block, inpainter.spacing_mm, zoom)
    diameter = measure_diameter(block, inpainter.spacing_mm * zoom)
    measured = diameter is not None
    diameter = diameter if measured else NOMINAL_DIAMETER_MM[size] * zoom
    return array, PlacedNodule(np.asarray(centre, float), size, attenuation, seed, zoom,
                               nodule_box(scan, centre, diameter), box, diameter, measured)


def measure_diameter(block_hu: np.ndarray, spacing_mm: float, min_contrast_hu: float = 100.0) -> float | None:
    """The diameter (mm) of the nodule at the centre of a cubic block, from its radial profile.

    Walking out from the centre in one-voxel spherical shells, the radius is where a shell's median
    first falls below halfway between the centre (mean within 1.5 voxels) and the background (the
    median of the block's outermost two voxels). A vessel crossing a shell barely moves its median,
    whereas a thresholded connected component would follow it (on the chest phantom's real nodules:
    median error 0.6 mm, size class right for 83%, against 1.7 mm and 51% for a component). None when
    the centre is not `min_contrast_hu` above the background: nothing there to measure.
    """
    side = block_hu.shape[0]
    middle = side // 2
    z, y, x = np.indices(block_hu.shape)
    radius = np.sqrt((z - middle) ** 2 + (y - middle) ** 2 + (x - middle) ** 2)
    centre = float(block_hu[radius <= 1.5].mean())
    background = float(np.median(block_hu[radius >= side / 2 - 2]))
    if centre - background < min_contrast_hu:
        return None
    halfway = (centre + background) / 2
    for inner in np.arange(0.0, side / 2, 0.5):
        if np.median(block_hu[(radius >= inner) & (radius < inner + 1)]) < halfway:
            return float((2 * inner + 1.0) * spacing_mm)  # + 1 voxel: the crossing lies within the shell
    return float(side * spacing_mm)


# ------------------------------------------------------------------------------ files

def read_ct(path: Path) -> MedicalImage:
    scan = read_image(path)
    if scan.array.ndim != 3:
        raise UserError(f"{path}: not a 3D scan (shape {scan.array.shape}); give a chest CT volume")
    check_spacing(scan, path)
    return scan


def _with_array(scan: MedicalImage, array: np.ndarray) -> MedicalImage:
    return MedicalImage(array, scan.spacing, scan.origin, scan.direction)


def _per_nodule(values: list[str], count: int, option: str) -> list[str]:
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise UserError(f"give one {option} for all positions or one per --at ({count}), not {len(values)}")
    return values


def _suffix(path: Path) -> str:
    name = path.name.lower()
    # DICOM series (folders, .dcm) are written as NIfTI: a synthetic DICOM series would need
    # every patient/study module rewritten, and would look like a scanner's output.
    return next((s for s in _WRITABLE if name.endswith(s)), ".nii.gz")


def _write_volume(folder: Path, uid: str, scan: MedicalImage, array: np.ndarray, source: Path) -> str:
    name = uid + _suffix(source)
    write_image(folder / name, _with_array(scan, array), description=SYNTHETIC_MARK)
    return name


def scan_sha256(path: Path) -> str:
    """The sha256 of a scan's files: for the source map only, never for OUT (a lookup key to the source)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if path.suffix.lower() == ".mhd":  # the pixels live in the .raw beside the header
        files += [p for p in path.parent.glob(path.stem + ".*raw")]
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _csv_row(uid: str, world, diameter: float, attenuation: str | None, synthetic: bool) -> NoduleAnnotation:
    # the size column follows the diameter written beside it (measured on the generated nodule);
    # the size class that was asked for is in nodules.json
    return NoduleAnnotation(uid, tuple(float(v) for v in world), float(diameter), attenuation, synthetic)


def _write_annotations(path: Path, uid: str, scan: MedicalImage, placed: list[PlacedNodule]) -> None:
    write_luna16_csv(path, [_csv_row(uid, scan.index_to_world(n.centre_index), n.diameter_mm, n.attenuation, True)
                            for n in placed])


def _provenance(inpainter: Inpainter, run, settings: dict) -> dict:
    # the settings, not the command line: that names the source scan or folder
    return {"format": PLACEMENT_FORMAT, "synthetic": True, "mark": SYNTHETIC_MARK, "model": inpainter.name,
            "run": str(Path(run).resolve()), "checkpoint_sha256": inpainter.sha256, "step": inpainter.step,
            "voi": {"size": inpainter.voi_size, "box": inpainter.box, "spacing_mm": inpainter.spacing_mm},
            "box_convention": BOX_CONVENTION, "pathosynth": __version__, "settings": settings,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": software_versions()}


def _source_entry(uid: str, file: str, source: Path, *, source_uid: str | None = None, copy: int = 0,
                  replaced: list[str] | None = None) -> dict:
    """One row of the source map: a synthetic scan and what it was made from."""
    return {"synthetic_uid": uid, "synthetic_file": file, "source": str(Path(source).resolve()),
            "source_uid": source_uid, "source_sha256": scan_sha256(Path(source)), "copy": copy,
            "replaced_nodules": replaced or []}


def _preview(path: Path, scan: MedicalImage, after: np.ndarray, placed: list[PlacedNodule]) -> None:
    """A row per nodule, 80 mm around it at 1 mm (lung window): axial before, axial after, coronal
    and sagittal after, slice 0 at the bottom (for scans stored feet first, the usual order)."""
    from PIL import Image

    side, scale = 80, 2

    def tile(values: np.ndarray) -> Image.Image:
        pixels = (np.clip((values + 1350.0) / 1500.0, 0, 1) * 255).astype(np.uint8)
        return Image.fromarray(pixels).resize((side * scale, side * scale), Image.NEAREST)

    rows = []
    for nodule in placed:
        before = extract_voi(scan, nodule.centre_index, side)
        now = extract_voi(_with_array(scan, after), nodule.centre_index, side)
        middle = side // 2
        rows.append([tile(before[middle]), tile(now[middle]), tile(now[::-1, middle, :]), tile(now[::-1, :, middle])])
    step = side * scale + 2
    canvas = Image.new("L", (4 * step, len(rows) * step), 0)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            canvas.paste(image, (c * step + 1, r * step + 1))
    canvas.save(path)
