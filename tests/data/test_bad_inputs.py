"""Hostile and careless inputs through the real CLI (`pathosynth.cli.main`), one table per command.

Every row builds a real bad file on the fly and must end in one line `error: ...` on stderr that
names the file, exit status 1, no traceback (an unexpected exception fails the test), no warning
a user would see, and no output folder (not even its temporary twin). Inputs that look odd but
are fine (Excel's encodings, a label above 255) must import correctly instead.
"""

import csv
import os
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest

from pathosynth.cli import main
from pathosynth.data.dataset import Dataset
from pathosynth.data.image import MedicalImage
from pathosynth.data.writers import write_nifti, write_png, write_sitk
from tests.layouts import (make_brats_layout, make_folder_layout, make_luna_layout, write_decompression_bomb,
                           write_float_tiff, write_labels)

# ---------------------------------------------------------------------------------------------
# running the CLI


def run_cli(capfd, *args) -> tuple[int, list[str], list[str]]:
    """Exit status, non-empty stderr lines and the warnings a terminal would show, of one call."""
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as stop:
            code = stop.code
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    shown = [f"{w.category.__name__}: {w.message}" for w in caught
             if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    return code, lines, shown


def assert_refused(capfd, args, out, needles) -> str:
    code, lines, shown = run_cli(capfd, *args)
    assert code == 1, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert not shown, shown
    if out is not None:
        assert not out.exists()
        assert not list(out.parent.glob(f".{out.name}.partial-*"))
    return lines[0]


def assert_imported(capfd, args, out) -> Dataset:
    code, lines, shown = run_cli(capfd, *args)
    assert code == 0, lines
    assert not lines and not shown, (lines, shown)
    return Dataset.load(out)


# ---------------------------------------------------------------------------------------------
# folder + CSV


def _outside_png(src):
    path = src.parent / "outside.png"
    write_png(path, np.full((40, 50), 7, np.uint16))
    return path


def _set(rows, index, **cells):
    rows[index].update(cells)
    return rows


def _csv_text(src, text, encoding="utf-8"):
    (src / "labels.csv").write_bytes(text.encode(encoding))


def _nifti_with_pixdim(path, array, axis, value):
    image = nib.Nifti1Image(np.ascontiguousarray(array.T), np.eye(4))
    image.header["pixdim"][axis] = value
    nib.save(image, str(path))


def folder_duplicate(src, rows):
    write_labels(src / "labels.csv", _set(rows, 3, file=rows[0]["file"], label="fracture", patient_id="P9"))


def folder_duplicate_spelled_otherwise(src, rows):
    write_labels(src / "labels.csv", _set(rows, 3, file="images/./../images/p0_left.png", patient_id="P9"))


def folder_parent_path(src, rows):
    _outside_png(src)
    write_labels(src / "labels.csv", _set(rows, 0, file="../outside.png"))


def folder_absolute_path(src, rows):
    write_labels(src / "labels.csv", _set(rows, 0, file=str(_outside_png(src))))


def folder_symlink_out(src, rows):
    os.symlink(_outside_png(src), src / "images" / "link.png")
    write_labels(src / "labels.csv", _set(rows, 0, file="images/link.png"))


def folder_bomb(src, rows):
    write_decompression_bomb(src / "images" / "p0_left.png", 30000, 30000)


def folder_nan_pixels(src, rows):
    array = np.ones((40, 50), np.float32)
    array[3, 4] = np.nan
    write_float_tiff(src / "images" / "nan.tif", array)
    write_labels(src / "labels.csv", _set(rows, 0, file="images/nan.tif"))


def folder_inf_pixels(src, rows):
    array = np.ones((40, 50), np.float32)
    array[3, 4:6] = [np.inf, -np.inf]
    write_float_tiff(src / "images" / "inf.tif", array)
    write_labels(src / "labels.csv", _set(rows, 0, file="images/inf.tif"))


def folder_float32_overflow(src, rows):
    write_nifti(src / "images" / "big.nii.gz", MedicalImage(np.full((40, 50), 1e300), (1.0, 1.0)))
    write_labels(src / "labels.csv", _set(rows, 0, file="images/big.nii.gz"))


def folder_nan_spacing(src, rows):
    _nifti_with_pixdim(src / "images" / "spacing.nii", np.ones((40, 50), np.int16), 1, np.nan)
    write_labels(src / "labels.csv", _set(rows, 0, file="images/spacing.nii"))


def folder_cells(index, **cells):
    def damage(src, rows):
        write_labels(src / "labels.csv", _set(rows, index, **cells))
    return damage


def folder_no_labels(src, rows):
    write_labels(src / "labels.csv", [{**row, "label": ""} for row in rows])


def folder_unquoted_boxes(src, rows):
    _csv_text(src, "file,label\nimages/p0_left.png,fracture,5,6,20,30\n")


def folder_workbook(src, rows):
    (src / "labels.csv").write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00xl/workbook.xml")


def folder_missing_column(src, rows):
    _csv_text(src, "file,diagnosis\nimages/p0_left.png,normal\n")


def folder_repeated_column(src, rows):
    _csv_text(src, "file,label,label\nimages/p0_left.png,normal,normal\n")


def folder_empty_table(src, rows):
    _csv_text(src, "")


FOLDER_REFUSALS = [
    pytest.param(folder_duplicate, ["labels.csv line 2", "labels.csv line 5", "p0_left.png", "same image file"],
                 id="same-image-two-labels-two-patients"),
    pytest.param(folder_duplicate_spelled_otherwise, ["line 2", "line 5", "p0_left.png", "same image file"],
                 id="same-image-other-spelling"),
    pytest.param(folder_parent_path, ["labels.csv line 2", "'../outside.png'", "outside the source folder"],
                 id="parent-path"),
    pytest.param(folder_absolute_path, ["labels.csv line 2", "outside.png", "outside the source folder"],
                 id="absolute-path"),
    pytest.param(folder_symlink_out, ["labels.csv line 2", "'images/link.png'", "outside the source folder"],
                 id="symlink-out-of-source"),
    pytest.param(folder_bomb, ["p0_left.png", "900,000,000 pixels", "decompression bomb"], id="decompression-bomb"),
    pytest.param(folder_nan_pixels, ["nan.tif", "non-finite", "1 NaN", "--skip-bad"], id="nan-pixels"),
    pytest.param(folder_inf_pixels, ["inf.tif", "non-finite", "2 infinite"], id="inf-pixels"),
    pytest.param(folder_float32_overflow, ["big.nii.gz", "float32 cannot hold"], id="float32-overflow"),
    pytest.param(folder_nan_spacing, ["spacing.nii", "voxel spacing"], id="nan-spacing"),
    pytest.param(folder_cells(1, boxes="nan,0,5,5"), ["labels.csv line 3", "non-finite"], id="box-nan"),
    pytest.param(folder_cells(1, boxes="0,0,1e400,5"), ["labels.csv line 3", "non-finite"], id="box-huge-float"),
    pytest.param(folder_cells(1, boxes="0,0,99999999999999999999,5"), ["line 3", "outside the 50x40 image"],
                 id="box-huge-int"),
    pytest.param(folder_cells(1, boxes="20,6,5,30"), ["labels.csv line 3", "max corner"], id="box-inverted"),
    pytest.param(folder_cells(1, boxes="5,6,5,30"), ["labels.csv line 3", "max corner"], id="box-empty"),
    pytest.param(folder_cells(1, label=""), ["labels.csv line 3", "has no label"], id="label-empty"),
    pytest.param(folder_no_labels, ["labels.csv", "label column is empty"], id="label-column-empty"),
    pytest.param(folder_cells(1, file=""), ["labels.csv line 3", "has no file name"], id="file-empty"),
    pytest.param(folder_cells(1, file="x" * 300 + ".png"), ["x" * 300, "cannot be looked up", "too long"],
                 id="file-name-too-long"),
    pytest.param(folder_unquoted_boxes, ["labels.csv line 2", "quote cells"], id="unquoted-boxes"),
    pytest.param(folder_workbook, ["labels.csv", "not a text CSV"], id="excel-workbook"),
    pytest.param(folder_missing_column, ["labels.csv", "missing column(s) label", "found: file, diagnosis"],
                 id="missing-column"),
    pytest.param(folder_repeated_column, ["labels.csv", "label appear more than once"], id="repeated-column"),
    pytest.param(folder_empty_table, ["labels.csv", "is empty"], id="empty-table"),
]


def _folder_args(src, out, *extra):
    return ["data", "import", "folder", src, "--out", out, "--quiet", *extra]


@pytest.mark.parametrize("damage, needles", FOLDER_REFUSALS)
def test_folder_import_refuses(tmp_path, capfd, damage, needles):
    src, out = tmp_path / "src", tmp_path / "ds"
    damage(src, make_folder_layout(src, n_patients=2))
    assert_refused(capfd, _folder_args(src, out), out, needles)


def test_folder_output_may_not_be_the_input_or_under_a_file(tmp_path, capfd):
    src = tmp_path / "src"
    make_folder_layout(src, n_patients=1)
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    # --overwrite replaces --out: with --out SRC it would delete the images being imported
    assert_refused(capfd, _folder_args(src, src, "--overwrite"), None, [str(src), "would delete"])
    assert_refused(capfd, _folder_args(src, tmp_path, "--overwrite"), None, ["holds the input"])
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before
    (tmp_path / "file").write_text("x")
    assert_refused(capfd, _folder_args(src, tmp_path / "file" / "ds"), tmp_path / "file" / "ds", ["is a file"])
    assert_refused(capfd, _folder_args(src, tmp_path / ("o" * 300)), None, ["o" * 300, "cannot be looked up"])
    assert_refused(capfd, _folder_args(src, tmp_path / "ds", "--csv", tmp_path / ("c" * 300)), tmp_path / "ds",
                   ["c" * 300, "cannot be looked up"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "src"]


def _rows_text(rows, delimiter=","):
    lines = [delimiter.join(rows[0])] + [delimiter.join(row.values()) for row in rows]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("encoding, prefix, delimiter", [
    ("latin-1", "", ","),  # Excel "CSV" on a Western-European Windows (and Zoë)
    ("cp1252", "", ","),  # the euro sign exists in cp1252 only
    ("utf-8", "\ufeff", ","),  # Excel "CSV UTF-8": a byte-order mark before the header
    ("utf-8", "", ";"),  # Excel where the decimal mark is a comma
    ("utf-16", "", "\t"),  # Excel "Unicode text"
])
def test_folder_tables_as_excel_writes_them_import_correctly(tmp_path, capfd, encoding, prefix, delimiter):
    src, out = tmp_path / "src", tmp_path / "ds"
    rows = make_folder_layout(src, n_patients=2)
    patient = "Zoë" if encoding == "latin-1" else "P€0"
    for row in rows:
        row["patient_id"] = row["patient_id"].replace("P0", patient)
        row["boxes"] = f'"{row["boxes"]}"' if delimiter == "," and row["boxes"] else row["boxes"]
    _csv_text(src, prefix + _rows_text(rows, delimiter), encoding)
    dataset = assert_imported(capfd, _folder_args(src, out), out)
    assert sorted({s.patient_id for s in dataset.samples}) == sorted({patient, "P1"})
    assert sorted(s.attributes["source_file"] for s in dataset.samples) == sorted(r["file"] for r in rows)
    assert [s.boxes for s in dataset.samples if s.label == "fracture"] == [[[5, 6, 20, 30]]]


def test_folder_skip_bad_skips_non_finite_pixels(tmp_path, capfd):
    src, out = tmp_path / "src", tmp_path / "ds"
    rows = make_folder_layout(src, n_patients=2)
    folder_nan_pixels(src, rows)
    dataset = assert_imported(capfd, _folder_args(src, out, "--skip-bad"), out)
    assert len(dataset.samples) == len(rows) - 1
    assert "nan.tif" not in {s.attributes["source_file"] for s in dataset.samples}
    skipped = list(csv.DictReader((out / "skipped.csv").open()))
    assert [r["source"] for r in skipped] == [str(src / "images" / "nan.tif")]
    assert "non-finite" in skipped[0]["reason"]


def test_folder_split_file_is_read_like_any_table(tmp_path, capfd):
    src, out = tmp_path / "src", tmp_path / "ds"
    make_folder_layout(src, n_patients=2)
    split_file = tmp_path / "splits.csv"
    split_file.write_bytes("\ufeffpatient_id;split\nP0;train\nP1;test\n".encode("utf-8"))
    dataset = assert_imported(capfd, _folder_args(src, out, "--split-file", split_file), out)
    assert {(s.patient_id, s.split) for s in dataset.samples} == {("P0", "train"), ("P1", "test")}
    split_file.write_bytes(b"patient_id,split\nP0,train\n,test\n")
    assert_refused(capfd, _folder_args(src, tmp_path / "ds2", "--split-file", split_file), tmp_path / "ds2",
                   ["splits.csv line 3", "no patient_id"])
    split_file.write_bytes(b"\x00\x01binary")
    assert_refused(capfd, _folder_args(src, tmp_path / "ds2", "--split-file", split_file), tmp_path / "ds2",
                   ["splits.csv", "not a text CSV"])


# ---------------------------------------------------------------------------------------------
# BraTS


def _seg(src, case="Case_000"):
    return src / case / f"{case}_seg.nii.gz"


def _t1ce(src, case="Case_001"):
    return src / case / f"{case}_t1ce.nii.gz"


def _rewrite(path, array):
    write_nifti(path, MedicalImage(array, (1.0, 1.0, 1.0)))


def brats_seg_values(dtype, value):
    def damage(src, cases):
        seg = cases[0].seg.astype(dtype)
        seg[np.nonzero(seg)[0][0], 0, 0] = value
        _rewrite(_seg(src), seg)
    return damage


def brats_t1ce_values(dtype, value):
    def damage(src, cases):
        volume = cases[1].volumes["t1ce"].astype(dtype)
        volume[10, 12, 12] = value
        _rewrite(_t1ce(src), volume)
    return damage


def brats_same_case_name_twice(src, cases):
    (src / "HGG").mkdir()
    shutil.copytree(src / "Case_000", src / "LGG" / "Case_000")
    shutil.move(src / "Case_000", src / "HGG" / "Case_000")


def brats_two_segmentations(src, cases):
    _rewrite(src / "Case_000" / "Case_000_seg.nii", cases[0].seg)


def brats_segmentation_out_of_source(src, cases):
    outside = src.parent / "elsewhere_seg.nii.gz"
    shutil.move(_seg(src), outside)
    os.symlink(outside, _seg(src))


def brats_infinite_spacing(src, cases):
    path = src / "Case_001" / "Case_001_t1ce.nii"
    _t1ce(src).unlink()
    _nifti_with_pixdim(path, cases[1].volumes["t1ce"], 3, np.inf)


BRATS_REFUSALS = [
    pytest.param(brats_seg_values(np.float32, 0.5), ["Case_000_seg.nii.gz", "not a non-negative integer", "0.5"],
                 id="seg-half-label"),
    pytest.param(brats_seg_values(np.int16, -1), ["Case_000_seg.nii.gz", "not a non-negative integer", "-1"],
                 id="seg-negative-label"),
    pytest.param(brats_seg_values(np.float32, np.nan), ["Case_000_seg.nii.gz", "nan"], id="seg-nan-label"),
    pytest.param(brats_seg_values(np.int32, 70000), ["Case_000_seg.nii.gz", "label 70000"], id="seg-label-too-big"),
    pytest.param(brats_t1ce_values(np.float32, np.nan), ["Case_001_t1ce.nii.gz", "non-finite", "--skip-bad"],
                 id="nan-pixels"),
    pytest.param(brats_t1ce_values(np.float32, -np.inf), ["Case_001_t1ce.nii.gz", "1 infinite"], id="inf-pixels"),
    pytest.param(brats_t1ce_values(np.float64, 1e300), ["Case_001_t1ce.nii.gz", "float32 cannot hold"],
                 id="float32-overflow"),
    pytest.param(brats_same_case_name_twice, ["HGG/Case_000", "LGG/Case_000", "same name"], id="case-in-hgg-and-lgg"),
    pytest.param(brats_two_segmentations, ["Case_000", "2 seg files", "Case_000_seg.nii,"], id="two-segmentations"),
    pytest.param(brats_segmentation_out_of_source, ["Case_000_seg.nii.gz", "outside the source folder"],
                 id="symlink-out-of-source"),
    pytest.param(brats_infinite_spacing, ["Case_001_t1ce.nii", "voxel spacing"], id="infinite-spacing"),
]


def _brats_args(src, out, *extra):
    return ["data", "import", "brats", src, "--out", out, "--quiet", "--slices", "0-19", "--pad-to", "0", *extra]


@pytest.mark.parametrize("damage, needles", BRATS_REFUSALS)
def test_brats_import_refuses(tmp_path, capfd, damage, needles):
    src, out = tmp_path / "src", tmp_path / "ds"
    damage(src, make_brats_layout(src, n_cases=2))
    assert_refused(capfd, _brats_args(src, out), out, needles)


@pytest.mark.parametrize("dtype, label", [(np.int16, 256), (np.float32, 4), (np.uint16, 1000)])
def test_brats_labels_keep_their_value_whatever_the_dtype(tmp_path, capfd, dtype, label):
    src, out = tmp_path / "src", tmp_path / "ds"
    cases = make_brats_layout(src, n_cases=2)
    seg = np.where(cases[0].seg > 0, label, 0).astype(dtype)
    _rewrite(_seg(src), seg)
    dataset = assert_imported(capfd, _brats_args(src, out), out)
    for z in range(20):
        sample = next(s for s in dataset.samples if s.id == f"Case_000_z{z:03d}")
        tumour = seg[z] > 0
        assert sample.label == ("tumour" if tumour.any() else "non-tumour")
        np.testing.assert_array_equal(dataset.read_mask(sample), seg[z].astype(np.int64))
    assert max(int(dataset.read_mask(s).max()) for s in dataset.samples) == label


def test_brats_skip_bad_skips_the_case_with_non_finite_pixels(tmp_path, capfd):
    src, out = tmp_path / "src", tmp_path / "ds"
    cases = make_brats_layout(src, n_cases=2)
    brats_t1ce_values(np.float32, np.nan)(src, cases)
    dataset = assert_imported(capfd, _brats_args(src, out, "--skip-bad"), out)
    assert {s.patient_id for s in dataset.samples} == {"Case_000"} and len(dataset.samples) == 20
    skipped = list(csv.DictReader((out / "skipped.csv").open()))
    assert [r["source"] for r in skipped] == [str(_t1ce(src))]


# ---------------------------------------------------------------------------------------------
# LUNA16


def _annotations(src):
    return src / "annotations.csv"


def luna_cell(line, column, value):
    def damage(src, nodules):
        rows = list(csv.DictReader(_annotations(src).open()))
        rows[line - 2][column] = value
        write_labels(_annotations(src), rows)
    return damage


def luna_repeated_row(src, nodules):
    lines = _annotations(src).read_text().splitlines()
    _annotations(src).write_text("\n".join(lines + [lines[1]]) + "\n")


def luna_uid_twice(src, nodules):
    (src / "subset1").mkdir()
    for name in ("1.2.3.1.mhd", "1.2.3.1.raw"):
        shutil.copy(src / "subset0" / name, src / "subset1" / name)


def luna_mha_beside_mhd(src, nodules):
    image = MedicalImage(np.zeros((4, 4, 4), np.int16), (1.0, 1.0, 1.0))
    write_sitk(src / "subset0" / "1.2.3.2.mha", image)


def _rewrite_scan(src, array, uid="1.2.3.1"):
    write_sitk(src / "subset0" / f"{uid}.mhd", MedicalImage(array, (2.0, 0.8, 0.8), (-20.0, -30.0, 100.0)))


def luna_nan_pixels(src, nodules):
    volume = np.full((30, 60, 60), -850, np.float32)
    volume[3, 4, 5] = np.nan
    _rewrite_scan(src, volume)


def luna_not_hounsfield(src, nodules):
    _rewrite_scan(src, np.full((30, 60, 60), 1e6, np.float32))


def luna_scan_out_of_source(src, nodules):
    outside = src.parent / "1.2.3.3.mha"
    write_sitk(outside, MedicalImage(np.zeros((4, 4, 4), np.int16), (1.0, 1.0, 1.0)))
    os.symlink(outside, src / "subset0" / "1.2.3.3.mha")


def luna_zero_spacing(src, nodules):
    header = src / "subset0" / "1.2.3.1.mhd"
    text = header.read_text()
    start = text.index("ElementSpacing")
    end = text.index("\n", start)
    header.write_text(text[:start] + "ElementSpacing = 0.8 0 2" + text[end:])


def luna_annotations_workbook(src, nodules):
    _annotations(src).write_bytes(b"PK\x03\x04\x00\x00binary")


def luna_missing_diameter(src, nodules):
    rows = list(csv.DictReader(_annotations(src).open()))
    write_labels(_annotations(src), [{k: v for k, v in row.items() if k != "diameter_mm"} for row in rows])


def luna_dicom_uid_with_path(src, nodules):
    import pydicom

    from tests.data.test_dicom import PYDICOM_FILES

    dataset = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the malformed uid being written
        dataset.SeriesInstanceUID = "../../escape"
    (src / "dicom").mkdir()
    dataset.save_as(src / "dicom" / "slice.dcm")


LUNA_REFUSALS = [
    *[pytest.param(luna_cell(2, "diameter_mm", value), ["annotations.csv line 2", f"diameter_mm is '{value}'"],
                   id=f"diameter-{value}") for value in ("inf", "nan", "-3", "0", "1e999", "500", "")],
    pytest.param(luna_cell(3, "coordX", "nan"), ["annotations.csv line 3", "coordX is 'nan'"], id="coordinate-nan"),
    pytest.param(luna_cell(3, "coordZ", "-inf"), ["annotations.csv line 3", "coordZ is '-inf'"], id="coordinate-inf"),
    pytest.param(luna_cell(3, "coordY", "1e300"), ["annotations.csv", "line 3", "lies outside its scan 1.2.3.1.mhd"],
                 id="coordinate-huge"),
    pytest.param(luna_cell(4, "seriesuid", ""), ["annotations.csv line 4", "has no seriesuid"], id="uid-empty"),
    pytest.param(luna_repeated_row, ["annotations.csv line 2", "annotations.csv line 5", "same nodule"],
                 id="annotation-twice"),
    pytest.param(luna_uid_twice, ["subset0/1.2.3.1.mhd", "subset1/1.2.3.1.mhd", "series uid 1.2.3.1"],
                 id="scan-uid-twice"),
    pytest.param(luna_mha_beside_mhd, ["1.2.3.2.mha", "1.2.3.2.mhd", "series uid 1.2.3.2"], id="mha-beside-mhd"),
    pytest.param(luna_nan_pixels, ["1.2.3.1.mhd", "non-finite", "1 NaN", "--skip-bad"], id="nan-pixels"),
    pytest.param(luna_not_hounsfield, ["1.2.3.1.mhd", "int16 cannot hold", "Hounsfield"], id="beyond-int16"),
    pytest.param(luna_scan_out_of_source, ["1.2.3.3.mha", "outside the source folder"], id="symlink-out-of-source"),
    pytest.param(luna_zero_spacing, ["1.2.3.1.mhd", "cannot be read", "spacing"], id="zero-spacing"),
    pytest.param(luna_annotations_workbook, ["annotations.csv", "not a text CSV"], id="annotations-workbook"),
    pytest.param(luna_missing_diameter, ["annotations.csv", "missing column(s) diameter_mm"], id="missing-column"),
    pytest.param(luna_dicom_uid_with_path, ["slice.dcm", "'../../escape'", "not a DICOM UID"], id="dicom-uid-path"),
]


def _luna_args(src, out, *extra):
    return ["data", "import", "luna16", src, "--out", out, "--quiet", "--voi-size", "32", "--nodule-box", "16",
            *extra]


@pytest.mark.parametrize("damage, needles", LUNA_REFUSALS)
def test_luna16_import_refuses(tmp_path, capfd, damage, needles):
    src, out = tmp_path / "src", tmp_path / "ds"
    damage(src, make_luna_layout(src))
    assert_refused(capfd, _luna_args(src, out), out, needles)


@pytest.mark.parametrize("encoding, prefix", [("latin-1", ""), ("utf-8", "\ufeff"), ("utf-16", "")])
def test_luna16_annotations_as_excel_writes_them_import_correctly(tmp_path, capfd, encoding, prefix):
    src, out = tmp_path / "src", tmp_path / "ds"
    nodules = make_luna_layout(src)
    rows = list(csv.DictReader(_annotations(src).open()))
    for row in rows:
        row["comment"] = "près de la plèvre"
    _annotations(src).write_bytes((prefix + _rows_text(rows)).encode(encoding))
    dataset = assert_imported(capfd, _luna_args(src, out), out)
    assert [s.attributes["scan"] for s in dataset.samples] == [n.uid for n in nodules]
    assert [s.attributes["diameter_mm"] for s in dataset.samples] == [n.diameter_mm for n in nodules]


def test_luna16_skip_bad_skips_the_scan_with_non_finite_pixels(tmp_path, capfd):
    src, out = tmp_path / "src", tmp_path / "ds"
    nodules = make_luna_layout(src)
    luna_nan_pixels(src, nodules)
    dataset = assert_imported(capfd, _luna_args(src, out, "--skip-bad"), out)
    assert [s.attributes["scan"] for s in dataset.samples] == ["1.2.3.2"]
    assert "1.2.3.1.mhd" in (out / "skipped.csv").read_text()


# ---------------------------------------------------------------------------------------------
# data phantom


def phantom_keep_raw_is_a_file(tmp_path):
    (tmp_path / "raw").write_text("keep me")
    return ["--keep-raw", tmp_path / "raw"], ["raw", "is a file"]


def phantom_keep_raw_is_out(tmp_path):
    return ["--keep-raw", tmp_path / "ds"], ["ds", "holds the input"]


def phantom_out_inside_keep_raw(tmp_path):
    return ["--keep-raw", tmp_path], ["ds", "lies inside --keep-raw"]


def phantom_out_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return ["--keep-raw", tmp_path / "raw"], ["file", "is a file"]


def phantom_split_file_binary(tmp_path):
    (tmp_path / "splits.csv").write_bytes(b"\x00\xff")
    return ["--split-file", tmp_path / "splits.csv"], ["splits.csv", "not a text CSV"]


def phantom_split_file_unknown_split(tmp_path):
    (tmp_path / "splits.json").write_bytes('\ufeff{"training": ["P0"]}'.encode("utf-8"))
    return ["--split-file", tmp_path / "splits.json"], ["splits.json", "unknown split 'training'"]


def phantom_split_file_ids_not_a_list(tmp_path):
    (tmp_path / "splits.json").write_text('{"train": "P0"}')
    return ["--split-file", tmp_path / "splits.json"], ["splits.json", "needs a list of patient ids"]


@pytest.mark.parametrize("damage", [phantom_keep_raw_is_a_file, phantom_keep_raw_is_out, phantom_out_inside_keep_raw,
                                    phantom_out_under_a_file, phantom_split_file_binary,
                                    phantom_split_file_unknown_split, phantom_split_file_ids_not_a_list])
def test_phantom_refuses(tmp_path, capfd, damage):
    extra, needles = damage(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / ("file/ds" if damage is phantom_out_under_a_file else "ds")
    assert_refused(capfd, ["data", "phantom", "radiograph", "--tiny", "--patients", "2", "--quiet", "--out", out,
                           *extra], out, needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ---------------------------------------------------------------------------------------------
# data info / data show on a damaged dataset folder


@pytest.fixture
def small_dataset(tmp_path, capfd):
    make_folder_layout(tmp_path / "src", n_patients=2)
    assert_imported(capfd, _folder_args(tmp_path / "src", tmp_path / "ds"), tmp_path / "ds")
    return tmp_path / "ds"


def _manifest_rows(root):
    return list(csv.DictReader((root / "manifest.csv").open()))


def dataset_cell(column, value):
    def damage(root):
        rows = _manifest_rows(root)
        rows[0][column] = value
        write_labels(root / "manifest.csv", rows)
    return damage


def dataset_info_json(text):
    def damage(root):
        (root / "dataset.json").write_text(text)
    return damage


def dataset_duplicate_id(root):
    rows = _manifest_rows(root)
    write_labels(root / "manifest.csv", rows + [rows[0]])


def dataset_without_image_column(root):
    write_labels(root / "manifest.csv", [{k: v for k, v in r.items() if k != "image"} for r in _manifest_rows(root)])


def dataset_missing_image(root):
    (root / _manifest_rows(root)[0]["image"]).unlink()


def dataset_patient_in_two_splits(root):
    rows = _manifest_rows(root)
    rows[0]["split"] = "val" if rows[1]["split"] != "val" else "test"
    rows[0]["patient_id"] = rows[1]["patient_id"]
    write_labels(root / "manifest.csv", rows)


DATASET_REFUSALS = [
    pytest.param(dataset_cell("image", "../src/images/p0_left.png"),
                 ["manifest.csv line 2", "'../src/images/p0_left.png'", "outside the dataset folder"],
                 id="image-outside-dataset"),
    pytest.param(dataset_cell("boxes", "[[1, 2"), ["manifest.csv line 2", "JSON cell is damaged"], id="broken-json"),
    pytest.param(dataset_cell("image", ""), ["manifest.csv line 2", "image cell is empty"], id="image-empty"),
    pytest.param(dataset_info_json("[1, 2]"), ["dataset.json", "damaged"], id="info-not-an-object"),
    pytest.param(dataset_info_json("{"), ["dataset.json", "damaged"], id="info-not-json"),
    pytest.param(dataset_duplicate_id, ["manifest.csv line 2", "both hold the sample id"], id="duplicate-id"),
    pytest.param(dataset_without_image_column, ["manifest.csv", "missing column(s) image"], id="missing-column"),
    pytest.param(dataset_missing_image, ["p0_left.png", "does not exist"], id="image-file-gone"),
    pytest.param(dataset_patient_in_two_splits, ["manifest.csv", "more than one split"], id="patient-two-splits"),
]


@pytest.mark.parametrize("command", ["info", "show"])
@pytest.mark.parametrize("damage, needles", DATASET_REFUSALS)
def test_info_and_show_refuse_a_damaged_dataset(small_dataset, capfd, command, damage, needles):
    damage(small_dataset)
    picture = small_dataset.parent / "grid.png"
    extra = ["--quiet"] if command == "info" else ["--out", picture]
    assert_refused(capfd, ["data", command, small_dataset, *extra], None, needles)
    assert not picture.exists()


@pytest.mark.parametrize("extra, needles", [
    (["--out", "{tmp}/missing/grid.png"], ["missing/grid.png", "does not exist"]),
    (["--out", "{tmp}"], ["is a folder"]),
    (["--channel", "3"], ["has 1 channel(s)", "--channel 0 to 0"]),
])
def test_show_refuses_a_bad_picture_request(small_dataset, capfd, extra, needles):
    tmp = small_dataset.parent
    extra = [e.format(tmp=tmp) for e in extra]
    before = sorted(tmp.rglob("*"))
    assert_refused(capfd, ["data", "show", small_dataset, *extra], None, needles)
    assert sorted(tmp.rglob("*")) == before


@pytest.mark.parametrize("command", ["info", "show"])
def test_info_and_show_refuse_a_path_they_cannot_look_up(tmp_path, capfd, command):
    assert_refused(capfd, ["data", command, tmp_path / ("d" * 300)], None, ["d" * 300, "cannot be looked up"])
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_saved_by_excel_still_opens(small_dataset, capfd):
    manifest = small_dataset / "manifest.csv"
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    code, lines, shown = run_cli(capfd, "data", "info", small_dataset, "--quiet")
    assert code == 0 and not lines and not shown
    assert [s.id for s in Dataset.load(small_dataset).samples] == ["p0_left", "p0_right", "p1_left", "p1_right"]
