"""Tiny raw layouts (BraTS, LUNA16, images + CSV) made on the fly, with known ground truth.

They are deliberately simple and independent of the phantoms, so importer tests know exactly
what every slice, nodule and box must be.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pathosynth.data.image import MedicalImage
from pathosynth.data.writers import write_nifti, write_png, write_sitk

BRATS_2020_NAMES = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}
BRATS_2023_NAMES = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}


@dataclass
class BratsCase:
    name: str
    seg: np.ndarray  # [z, y, x] as written
    volumes: dict[str, np.ndarray] = field(default_factory=dict)


def make_brats_layout(root: Path, n_cases: int = 3, shape=(20, 24, 24), names=BRATS_2020_NAMES,
                      seed: int = 0) -> list[BratsCase]:
    """Cases with an ellipsoid brain; every case but the last has a box-shaped tumour."""
    rng = np.random.default_rng(seed)
    depth, height, width = shape
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    brain = ((z - depth / 2) / (depth / 2.2)) ** 2 + ((y - height / 2) / (height / 2.5)) ** 2 \
        + ((x - width / 2) / (width / 2.5)) ** 2 <= 1
    cases = []
    for index in range(n_cases):
        name = f"Case_{index:03d}"
        seg = np.zeros(shape, np.uint8)
        if index < n_cases - 1:
            z0, y0, x0 = depth // 2 - 3 + index, height // 2 - 3, width // 2 - 4 + index
            seg[z0:z0 + 5, y0:y0 + 4, x0:x0 + 3] = 2
            seg[z0 + 1:z0 + 4, y0 + 1:y0 + 3, x0 + 1:x0 + 2] = 4
        case = BratsCase(name, seg)
        folder = root / name
        folder.mkdir(parents=True)
        for sequence, suffix in names.items():
            if sequence == "seg":
                array = seg
            else:
                array = (brain * rng.uniform(200, 400, shape) + (seg > 0) * 300).astype(np.int16)
                case.volumes[sequence] = array
            write_nifti(folder / f"{name}_{suffix}.nii.gz", MedicalImage(array, (1.0, 1.0, 1.0)))
        cases.append(case)
    return cases


@dataclass
class LunaNodule:
    uid: str
    centre_index: tuple[int, int, int]  # z, y, x in the written scan
    world: tuple[float, float, float]
    diameter_mm: float
    attenuation: str


def make_luna_layout(root: Path, spacing=(2.0, 0.8, 0.8), shape=(30, 60, 60),
                     origin=(-20.0, -30.0, 100.0), attenuation_column: str | None = "attenuation"):
    """Two scans: one with two nodules (solid small, ggn medium), one with a large part-solid one."""
    plan = {
        "1.2.3.1": [((15, 30, 20), 8.0, "solid"), ((10, 25, 40), 14.0, "ggn")],
        "1.2.3.2": [((15, 30, 30), 24.0, "part-solid")],
    }
    nodules = []
    (root / "subset0").mkdir(parents=True)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1) * np.asarray(spacing)
    for uid, entries in plan.items():
        volume = np.full(shape, -850, np.int16)
        image = MedicalImage(volume, spacing, origin)
        for centre, diameter, attenuation in entries:
            distance = np.linalg.norm(grid - np.asarray(centre) * np.asarray(spacing), axis=-1)
            volume[distance <= diameter / 2] = 40
            world = tuple(float(v) for v in image.index_to_world(np.asarray(centre)))
            nodules.append(LunaNodule(uid, centre, world, diameter, attenuation))
        write_sitk(root / "subset0" / f"{uid}.mhd", image)
    with (root / "annotations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
        writer.writerow(header + ([attenuation_column] if attenuation_column else []))
        for n in nodules:
            row = [n.uid, *n.world, n.diameter_mm]
            writer.writerow(row + ([n.attenuation] if attenuation_column else []))
    return nodules


def make_folder_layout(root: Path, n_patients: int = 6, size=(40, 50), bits: int = 16) -> list[dict]:
    """Two images per patient; odd patients have a 'fracture' with a box on their first image."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    rows = []
    for patient in range(n_patients):
        for side in ("left", "right"):
            top = 255 if bits == 8 else 4095
            array = rng.integers(0, top, size=size).astype(np.uint8 if bits == 8 else np.uint16)
            name = f"images/p{patient}_{side}.png"
            write_png(root / name, array)
            fractured = patient % 2 == 1 and side == "left"
            rows.append({"file": name, "label": "fracture" if fractured else "normal",
                         "patient_id": f"P{patient}", "boxes": "5,6,20,30" if fractured else ""})
    write_labels(root / "labels.csv", rows)
    return rows


def write_labels(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_decompression_bomb(path: Path, width: int, height: int) -> None:
    """A valid PNG header declaring width x height 8-bit grey pixels, with almost no pixel data:
    what a decompression bomb looks like before it is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b""))


def write_float_tiff(path: Path, array: np.ndarray) -> None:
    """A 32-bit float grey TIFF (Pillow mode F), the 2D format that can hold NaN and inf."""
    from PIL import Image

    Image.fromarray(np.asarray(array, dtype=np.float32)).save(path)
