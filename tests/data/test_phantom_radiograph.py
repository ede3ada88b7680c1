"""The two-class hip radiograph phantom: folder layout, labels, boxes, pixel values, determinism."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pathosynth.data.phantoms.radiograph import write_folder_layout
from pathosynth.data.readers import read_image

SIZE = 64
N_PATIENTS = 6
SEED = 11


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "labels.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _boxes(text: str) -> list[tuple[int, int, int, int]]:
    return [tuple(int(v) for v in part.split(",")) for part in text.split(";") if part]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    out = tmp_path_factory.mktemp("hips")
    calls = []
    ids = write_folder_layout(out, N_PATIENTS, SEED, size=SIZE, progress=lambda: calls.append(1))
    return out, ids, calls


def test_files_and_csv_exist_and_parse(layout):
    out, ids, _ = layout
    with open(out / "labels.csv", encoding="utf-8") as handle:
        assert handle.readline().strip() == "file,label,patient_id,boxes"
    rows = _rows(out)
    assert ids == [f"PHANTOM_HIP_{i:04d}" for i in range(N_PATIENTS)]
    assert sorted({r["patient_id"] for r in rows}) == ids
    per_patient = {pid: sum(r["patient_id"] == pid for r in rows) for pid in ids}
    assert set(per_patient.values()) <= {1, 2}
    for r in rows:
        assert r["file"].startswith("images/") and r["file"].endswith(".png")
        assert (out / r["file"]).is_file()
        assert r["file"][len("images/P"):len("images/P") + 4] == r["patient_id"][-4:]
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(Path(r["file"]).name for r in rows)


def test_progress_is_called_once_per_patient(layout):
    _, _, calls = layout
    assert len(calls) == N_PATIENTS


def test_labels_are_normal_or_fracture_and_both_occur(layout):
    labels = [r["label"] for r in _rows(layout[0])]
    assert set(labels) == {"normal", "fracture"}


def test_boxes_only_on_fractures_and_inside_the_image(layout):
    out = layout[0]
    for r in _rows(out):
        boxes = _boxes(r["boxes"])
        if r["label"] == "normal":
            assert r["boxes"] == ""
            continue
        assert boxes
        height, width = read_image(out / r["file"]).array.shape
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            # a box around a fracture line, not the whole crop
            assert (x1 - x0) * (y1 - y0) < 0.5 * width * height


def test_pngs_are_16_bit_with_12_bit_values(layout):
    out = layout[0]
    for r in _rows(out):
        with Image.open(out / r["file"]) as pil:
            assert pil.mode.startswith("I;16") or pil.mode == "I"
        array = read_image(out / r["file"]).array
        assert array.dtype == np.uint16
        assert array.shape == (SIZE, SIZE)
        assert array.max() <= 4095
        assert array.max() > 2048  # uses the 12-bit range, not 8 bits
        assert array.std() > 200   # an image, not a flat field


def test_bone_is_brighter_than_the_background(layout):
    out = layout[0]
    for r in _rows(out):
        array = read_image(out / r["file"]).array.astype(float)
        lateral = array[:, -SIZE // 12:].mean()  # lateral soft tissue and air, no bone
        bottom = array[-SIZE // 8:, SIZE // 4:3 * SIZE // 4]  # across the femoral shaft
        shaft = np.sort(bottom, axis=1)[:, -SIZE // 16:].mean()
        assert shaft > lateral + 1000
        for x0, y0, x1, y1 in _boxes(r["boxes"]):  # the fracture line lies on the femur
            assert array[y0:y1, x0:x1].mean() > lateral + 700


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert write_folder_layout(a, 2, 5, size=32) == write_folder_layout(b, 2, 5, size=32)
    write_folder_layout(c, 2, 6, size=32)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len(files_a) >= 3
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    pngs_a = {p.name: p.read_bytes() for p in (a / "images").iterdir()}
    pngs_c = {p.name: p.read_bytes() for p in (c / "images").iterdir()}
    assert all(pngs_c.get(name) != data for name, data in pngs_a.items())


def test_patients_are_independent_of_how_many_are_written(tmp_path):
    write_folder_layout(tmp_path / "one", 1, 9, size=32)
    write_folder_layout(tmp_path / "two", 2, 9, size=32)
    for png in (tmp_path / "one" / "images").iterdir():
        assert png.read_bytes() == (tmp_path / "two" / "images" / png.name).read_bytes()


@pytest.mark.parametrize("kwargs", [dict(n_patients=-1), dict(seed=-3), dict(size=8), dict(n_patients=2.5)])
def test_bad_arguments_are_refused(tmp_path, kwargs):
    args = dict(n_patients=1, seed=0, size=32) | kwargs
    with pytest.raises(ValueError):
        write_folder_layout(tmp_path, args.pop("n_patients"), args.pop("seed"), **args)
