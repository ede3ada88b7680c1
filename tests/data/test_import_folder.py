import numpy as np
import pytest
from PIL import Image

from pathosynth.data.dataset import Dataset
from pathosynth.data.importers.folder import FolderOptions, import_folder
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError
from tests.layouts import make_folder_layout, write_labels


def _import(src, out, skip_bad=False, **options):
    return Dataset.load(import_folder(src, out, FolderOptions(**options), SplitPlan(seed=3), skip_bad=skip_bad,
                                      progress=False))


@pytest.mark.parametrize("bits", [8, 16])
def test_images_labels_patients_and_boxes(tmp_path, bits):
    rows = make_folder_layout(tmp_path / "src", bits=bits)
    dataset = _import(tmp_path / "src", tmp_path / "ds")
    assert dataset.info.classes == ["fracture", "normal"]
    assert len(dataset.samples) == len(rows)
    by_source = {s.attributes["source_file"]: s for s in dataset.samples}
    for row in rows:
        sample = by_source[row["file"]]
        assert sample.label == row["label"] and sample.patient_id == row["patient_id"]
        assert sample.boxes == ([[5, 6, 20, 30]] if row["boxes"] else [])
        original = np.asarray(Image.open(tmp_path / "src" / row["file"]))
        np.testing.assert_array_equal(dataset.read(sample)[0], original)
        stored = Image.open(dataset.root / sample.image)
        assert stored.mode == ("L" if bits == 8 else "I;16")
    splits = {}
    for sample in dataset.samples:
        splits.setdefault(sample.patient_id, set()).add(sample.split)
    assert all(len(v) == 1 for v in splits.values())


def test_letterbox_moves_boxes_with_the_pixels(tmp_path):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    array = np.zeros((40, 80), np.uint16)
    array[10:20, 30:50] = 1000
    Image.fromarray(array).save(src / "images" / "a.png")
    write_labels(src / "labels.csv", [{"file": "images/a.png", "label": "fracture", "boxes": "30,10,50,20"}])
    dataset = _import(src, tmp_path / "ds", size=40, classes=("normal", "fracture"))
    sample = dataset.samples[0]
    image = dataset.read(sample)[0]
    assert image.shape == (40, 40)
    x0, y0, x1, y1 = sample.boxes[0]
    assert [x0, y0, x1, y1] == [15, 15, 25, 20]  # scale 0.5, 10 px of padding above
    inside = image[int(y0):int(y1), int(x0):int(x1)]
    assert inside.mean() > 900 and image.sum() == pytest.approx(inside.sum(), rel=0.15)
    assert dataset.samples[0].spacing == [2.0, 2.0]


def test_explicit_split_column_is_used(tmp_path):
    rows = make_folder_layout(tmp_path / "src", n_patients=3)
    for row in rows:
        row["split"] = {"P0": "train", "P1": "val", "P2": "test"}[row["patient_id"]]
    write_labels(tmp_path / "src" / "labels.csv", rows)
    dataset = _import(tmp_path / "src", tmp_path / "ds")
    assert {(s.patient_id, s.split) for s in dataset.samples} == {("P0", "train"), ("P1", "val"), ("P2", "test")}
    rows[1]["split"] = "test"  # P0's second image in another split
    write_labels(tmp_path / "src" / "labels.csv", rows)
    with pytest.raises(UserError, match="patient P0 is in split train on an earlier row and test here"):
        _import(tmp_path / "src", tmp_path / "ds2")


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(label="fractured"), "line 2: unknown label 'fractured'"),
    (lambda r: r.update(boxes="0,0,60,10"), "line 2: box .* is outside the 50x40 image"),
    (lambda r: r.update(boxes="1,2,3"), "line 2: boxes '1,2,3' cannot be read"),
    (lambda r: r.update(file="images/missing.png"), "missing.png: is listed on .* line 2 but does not exist"),
])
def test_bad_rows_stop_with_a_clear_message_or_are_skipped(tmp_path, change, message):
    rows = make_folder_layout(tmp_path / "src")
    change(rows[0])
    write_labels(tmp_path / "src" / "labels.csv", rows)
    with pytest.raises(UserError, match=message):
        _import(tmp_path / "src", tmp_path / "ds", classes=("normal", "fracture"))
    assert not (tmp_path / "ds").exists()
    dataset = _import(tmp_path / "src", tmp_path / "ds", skip_bad=True, classes=("normal", "fracture"))
    assert len(dataset.samples) == len(rows) - 1
    assert len((tmp_path / "ds" / "skipped.csv").read_text().splitlines()) == 2


def test_corrupt_png_and_missing_table(tmp_path):
    make_folder_layout(tmp_path / "src", n_patients=2)
    (tmp_path / "src" / "images" / "p0_left.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError, match="p0_left.png: cannot be read as an image"):
        _import(tmp_path / "src", tmp_path / "ds")
    (tmp_path / "src" / "labels.csv").unlink()
    with pytest.raises(UserError, match="labels.csv: label table not found"):
        _import(tmp_path / "src", tmp_path / "ds")


def test_dicom_images_are_imported_with_their_modality_values(tmp_path):
    import shutil

    import pydicom
    from pydicom.pixels import apply_modality_lut

    from tests.data.test_dicom import PYDICOM_FILES

    (tmp_path / "src").mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", tmp_path / "src" / "ct.dcm")
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", tmp_path / "src" / "mr.dcm")
    write_labels(tmp_path / "src" / "labels.csv", [{"file": "ct.dcm", "label": "a"}, {"file": "mr.dcm", "label": "b"}])
    dataset = _import(tmp_path / "src", tmp_path / "ds")
    for sample in dataset.samples:
        ds = pydicom.dcmread(tmp_path / "src" / sample.attributes["source_file"])
        expected = apply_modality_lut(ds.pixel_array, ds)
        np.testing.assert_array_equal(dataset.read(sample)[0], expected)
        assert sample.spacing == pytest.approx([float(v) for v in ds.PixelSpacing])


def test_split_column_without_patient_ids_names_patients_after_their_files(tmp_path):
    rows = make_folder_layout(tmp_path / "src", n_patients=2)
    for row, split in zip(rows, ("train", "val", "test", "train")):
        row.update(patient_id="", split=split)
    write_labels(tmp_path / "src" / "labels.csv", rows)
    dataset = _import(tmp_path / "src", tmp_path / "ds")
    assert {(s.patient_id, s.split) for s in dataset.samples} == {
        ("p0_left", "train"), ("p0_right", "val"), ("p1_left", "test"), ("p1_right", "train")}
