import csv

import numpy as np
import pydicom
import SimpleITK as sitk
import pytest
from scipy import ndimage

from pathosynth.data.dataset import Dataset
from pathosynth.data.importers.luna16 import Luna16Options, import_luna16, size_class
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError
from tests.layouts import make_luna_layout


def _import(src, out, **options):
    return Dataset.load(import_luna16(src, out, Luna16Options(**options), SplitPlan(seed=0), progress=False))


def test_vois_are_centred_on_nodules_with_conditions(tmp_path):
    nodules = make_luna_layout(tmp_path / "src")
    dataset = _import(tmp_path / "src", tmp_path / "ds", voi_size=32, nodule_box=16)
    assert len(dataset.samples) == len(nodules)
    assert dataset.info.spacing == [1.0, 1.0, 1.0] and dataset.info.intensity_unit == "HU"
    for sample, nodule in zip(dataset.samples, nodules):  # ids sort like the layout's order
        assert sample.attributes["scan"] == nodule.uid
        assert sample.attributes["size"] == size_class(nodule.diameter_mm)
        assert sample.attributes["attenuation"] == nodule.attenuation
        assert sample.boxes == [[8, 8, 8, 24, 24, 24]]
        voi = dataset.read(sample)[0]
        assert voi.shape == (32, 32, 32)
        assert voi[16, 16, 16] == 40  # the nodule's centre is the VOI's centre
        components, _ = ndimage.label(voi > -400)
        nodule_voxels = components == components[16, 16, 16]
        extent = [int(np.ptp(np.nonzero(nodule_voxels)[axis])) + 1 for axis in range(3)]
        # at 1 mm the nodule spans its diameter (cut at the VOI's edge for the large one)
        assert extent == pytest.approx([min(nodule.diameter_mm, 32)] * 3, abs=2)


def test_size_classes_follow_the_paper():
    assert [size_class(d) for d in (3, 10, 10.5, 20, 20.1, 35)] == \
        ["small", "small", "medium", "medium", "large", "large"]


def test_scans_keep_whole_volume_boxes(tmp_path):
    nodules = make_luna_layout(tmp_path / "src")
    dataset = _import(tmp_path / "src", tmp_path / "ds", kind="scans")
    scan = next(s for s in dataset.samples if s.id == "1.2.3.1")
    volume = dataset.read(scan)[0]
    assert volume.shape == (59, 48, 48)  # (30-1)*2+1, (60-1)*0.8+1 rounded down at 1 mm
    assert len(scan.boxes) == 2
    components, _ = ndimage.label(volume > -400)
    for box, nodule in zip(scan.boxes, [n for n in nodules if n.uid == "1.2.3.1"]):
        x0, y0, z0, x1, y1, z1 = box
        assert x1 - x0 == pytest.approx(nodule.diameter_mm, abs=2)
        centre = components[(z0 + z1) // 2, (y0 + y1) // 2, (x0 + x1) // 2]
        assert centre > 0
        found = ndimage.find_objects(components)[centre - 1]
        found_box = [found[2].start, found[1].start, found[0].start, found[2].stop, found[1].stop, found[0].stop]
        assert found_box == pytest.approx(box, abs=1)
    assert scan.attributes["nodules"][0]["size"] == "small"


def test_lidc_texture_column_maps_to_attenuation(tmp_path):
    make_luna_layout(tmp_path / "src", attenuation_column="texture")
    path = tmp_path / "src" / "annotations.csv"
    rows = list(csv.reader(path.open()))
    for row, texture in zip(rows[1:], ("5", "1", "3")):
        row[-1] = texture
    csv.writer(path.open("w", newline="")).writerows(rows)
    dataset = _import(tmp_path / "src", tmp_path / "ds", voi_size=32, nodule_box=16)
    assert [s.attributes["attenuation"] for s in dataset.samples] == ["solid", "ggn", "part-solid"]


def test_bad_annotations_are_clear(tmp_path):
    make_luna_layout(tmp_path / "src")
    path = tmp_path / "src" / "annotations.csv"
    original = path.read_text()
    path.write_text(original.replace("ggn", "fuzzy"))
    with pytest.raises(UserError, match=r"annotations.csv line 3: unknown attenuation 'fuzzy'"):
        _import(tmp_path / "src", tmp_path / "ds")
    lines = original.splitlines()
    lines[1] = lines[1].replace(lines[1].split(",")[3], "900.0", 1)  # coordZ far outside the scan
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"line 2: the nodule at .* lies outside its scan 1.2.3.1.mhd"):
        _import(tmp_path / "src", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    path.write_text("seriesuid,x,y\n")
    with pytest.raises(UserError, match="missing column"):
        _import(tmp_path / "src", tmp_path / "ds")


def test_corrupt_scan_is_skipped_with_skip_bad(tmp_path):
    make_luna_layout(tmp_path / "src")
    raw = tmp_path / "src" / "subset0" / "1.2.3.2.raw"
    raw.write_bytes(raw.read_bytes()[:1000])
    with pytest.raises(UserError, match="1.2.3.2.mhd: cannot be read"):
        _import(tmp_path / "src", tmp_path / "ds")
    dataset = Dataset.load(import_luna16(tmp_path / "src", tmp_path / "ds", Luna16Options(voi_size=32, nodule_box=16),
                                         SplitPlan(), skip_bad=True, progress=False))
    assert {s.attributes["scan"] for s in dataset.samples} == {"1.2.3.1"}
    assert "1.2.3.2.mhd" in (tmp_path / "ds" / "skipped.csv").read_text()


def test_nifti_scans_import_like_their_metaimage_originals(tmp_path):
    make_luna_layout(tmp_path / "src")
    reference = _import(tmp_path / "src", tmp_path / "ref", voi_size=32, nodule_box=16)
    for mhd in (tmp_path / "src" / "subset0").glob("*.mhd"):
        sitk.WriteImage(sitk.ReadImage(str(mhd)), str(mhd.with_suffix(".nii.gz")))
        mhd.unlink()
        mhd.with_suffix(".raw").unlink()
    converted = _import(tmp_path / "src", tmp_path / "nii", voi_size=32, nodule_box=16)
    assert [s.attributes for s in converted.samples] == [s.attributes for s in reference.samples]
    for a, b in zip(converted.samples, reference.samples):
        # NIfTI stores spacing as float32: interpolation may round a .5 the other way
        np.testing.assert_allclose(converted.read(a), reference.read(b), atol=1)


def test_a_dicom_series_folder_is_one_scan_named_by_its_series_uid(tmp_path):
    from tests.data.test_dicom import write_series

    slices = write_series(tmp_path / "src" / "patient7", [1, 0, 0, 0, 1, 0],
                          [(-50.0, -60.0, 2.5 * k) for k in range(12)])
    uid = pydicom.dcmread(next((tmp_path / "src" / "patient7").iterdir())).SeriesInstanceUID
    spacing = float(pydicom.dcmread(next((tmp_path / "src" / "patient7").iterdir())).PixelSpacing[0])
    centre = (-50.0 + 64 * spacing, -60.0 + 60 * spacing, 2.5 * 6)
    (tmp_path / "src" / "annotations.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm,attenuation\n"
        f"{uid},{centre[0]},{centre[1]},{centre[2]},6,solid\n")
    dataset = _import(tmp_path / "src", tmp_path / "ds", voi_size=16, nodule_box=8)
    (sample,) = dataset.samples
    assert sample.attributes["scan"] == uid and sample.attributes["size"] == "small"
    voi = dataset.read(sample)[0]
    assert voi.shape == (16, 16, 16)
    # slice 6 lies exactly at z = 15 mm, a voxel centre after resampling to 1 mm: no interpolation in z;
    # in-plane, resampled voxel i sits at i mm, i.e. at index i / spacing of the original slice
    row, column = round(60 * spacing), round(64 * spacing)
    expected = ndimage.map_coordinates(slices[6].astype(float), [[row / spacing] * 16,
                                                                 [(column + x - 8) / spacing for x in range(16)]],
                                       order=1)
    np.testing.assert_allclose(voi[8, 8, :], expected, atol=1.0)
