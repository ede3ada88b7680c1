"""DICOM reading against real files shipped with pydicom and pydicom-data.

Expected values come from independent code: pydicom's own modality LUT, per-frame functional
groups read in the test, and SimpleITK/GDCM's ImageSeriesReader for whole series.
"""

from __future__ import annotations

import importlib.resources
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
import SimpleITK as sitk
from pydicom.pixels import apply_modality_lut
from pydicom.uid import generate_uid

from pathosynth.data.readers import read_image
from pathosynth.errors import BadInputError

# Direct paths, never pydicom.data.get_testdata_file(s) on names outside pydicom's own folder:
# those fall back to downloading.
PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"
PYDICOM_DATA = Path(str(importlib.resources.files("data_store") / "data"))
DICOMDIR_TESTS = PYDICOM_FILES / "dicomdirtests"
CT5N = DICOMDIR_TESTS / "98892001" / "CT5N"  # real 5-slice axial CT, files out of order


def sitk_series(folder: Path):
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    assert names, f"GDCM found no series in {folder}"
    reader.SetFileNames(names)
    return reader.Execute()


def assert_matches_sitk(image, itk) -> None:
    """Our [z, y, x] image against a SimpleITK image of the same data (x, y, z order there)."""
    np.testing.assert_array_equal(image.array, sitk.GetArrayFromImage(itk))
    np.testing.assert_allclose(image.spacing, itk.GetSpacing()[::-1], rtol=1e-5)
    np.testing.assert_allclose(image.origin, itk.GetOrigin(), atol=1e-4)
    itk_direction = np.asarray(itk.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(image.direction, itk_direction[:, ::-1], atol=1e-5)


def write_series(folder: Path, orientation, positions, *, keep_positions=True, seed=0) -> list[np.ndarray]:
    """Slices of the real CT_small.dcm at the given positions, each with its own pixel offset
    so the order can be checked, saved under shuffled names. Returns the HU slices in the order
    given."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{random.Random(seed + k).getrandbits(40):x}.dcm" for k in range(len(positions))]
    random.Random(seed).shuffle(names)
    series_uid = generate_uid()
    expected = []
    for k, (position, name) in enumerate(zip(positions, names)):
        ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
        stored = ds.pixel_array.astype(np.int16) + np.int16(37 * k)
        ds.PixelData = stored.tobytes()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        if keep_positions:
            ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        else:
            del ds.ImagePositionPatient
        ds.save_as(folder / name)
        expected.append(apply_modality_lut(stored, ds))
    return expected


# --- single files -----------------------------------------------------------------------------


def test_ct_small_is_hounsfield_units_from_pydicom_modality_lut():
    path = PYDICOM_FILES / "CT_small.dcm"
    ds = pydicom.dcmread(path)
    image = read_image(path)
    assert image.array.shape == (128, 128)
    assert image.array.dtype == np.int16  # slope 1, intercept -1024: whole numbers
    np.testing.assert_array_equal(image.array, apply_modality_lut(ds.pixel_array, ds))
    assert image.array.min() < -800  # air in HU, so the intercept was applied
    assert image.spacing == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert image.origin == pytest.approx([float(v) for v in ds.ImagePositionPatient[:2]])
    np.testing.assert_array_equal(image.direction, [[0, 1], [1, 0]])


def test_mr_small_matches_simpleitk_single_file():
    path = PYDICOM_FILES / "MR_small.dcm"
    image = read_image(path)
    itk = sitk.ReadImage(str(path))  # GDCM reads one slice as a 3D image of depth 1
    np.testing.assert_array_equal(image.array, sitk.GetArrayFromImage(itk)[0])
    np.testing.assert_allclose(image.spacing, itk.GetSpacing()[:2][::-1])
    np.testing.assert_allclose(image.origin, itk.GetOrigin()[:2])


@pytest.mark.parametrize("variant", ["MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                                     "MR_small_expb.dcm"])
def test_other_encodings_of_mr_small_read_the_same(variant):
    reference = read_image(PYDICOM_FILES / "MR_small.dcm")
    image = read_image(PYDICOM_FILES / variant)
    np.testing.assert_array_equal(image.array, reference.array)
    assert image.array.dtype.isnative
    assert image.spacing == reference.spacing and image.origin == reference.origin


def test_mr_with_fractional_rescale_is_float32():
    path = PYDICOM_DATA / "MR2_UNCI.dcm"  # sagittal-oblique MR, slope 3.77..
    ds = pydicom.dcmread(path)
    image = read_image(path)
    assert image.array.dtype == np.float32
    np.testing.assert_allclose(image.array, apply_modality_lut(ds.pixel_array, ds), rtol=1e-6)
    # Not an axial plane: a 2D image cannot hold its 3D frame, so it keeps the plain one.
    assert image.origin == (0.0, 0.0)
    np.testing.assert_array_equal(image.direction, [[0, 1], [1, 0]])


def test_enhanced_ct_frames_are_sorted_along_the_normal():
    path = PYDICOM_DATA / "eCT_Supplemental.dcm"  # 2 frames, geometry in functional groups
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    row_col = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(row_col[:3], row_col[3:])
    positions = np.array([f.PlanePositionSequence[0].ImagePositionPatient
                          for f in ds.PerFrameFunctionalGroupsSequence], dtype=float)
    order = np.argsort(positions @ normal)
    transform = shared.PixelValueTransformationSequence[0]
    hu = ds.pixel_array * float(transform.RescaleSlope) + float(transform.RescaleIntercept)

    image = read_image(path)
    assert list(order) == [1, 0]  # stored order is against the normal: the test sees a real sort
    np.testing.assert_array_equal(image.array, hu[order])
    step = positions[order[1]] - positions[order[0]]
    pixel_spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    assert image.spacing == pytest.approx([np.linalg.norm(step)] + pixel_spacing)
    assert image.origin == pytest.approx(positions[order[0]])
    np.testing.assert_allclose(image.direction[:, 0], step / np.linalg.norm(step))
    np.testing.assert_allclose(image.direction[:, 1], row_col[3:])
    np.testing.assert_allclose(image.direction[:, 2], row_col[:3])
    # Every voxel lands where the per-frame position says its frame is.
    for k, i in enumerate(order):
        np.testing.assert_allclose(image.index_to_world([k, 0, 0]), positions[i], atol=1e-6)


def test_enhanced_mr_without_geometry_keeps_frame_order():
    path = PYDICOM_DATA / "emri_small.dcm"  # 10 frames, no positions, SpacingBetweenSlices 1.2
    ds = pydicom.dcmread(path)
    image = read_image(path)
    np.testing.assert_array_equal(image.array, ds.pixel_array)
    assert image.spacing == pytest.approx((1.2, 1.0, 1.0))


def test_rt_dose_frames_follow_grid_frame_offsets():
    path = PYDICOM_FILES / "rtdose.dcm"
    ds = pydicom.dcmread(path)
    image = read_image(path)
    np.testing.assert_array_equal(image.array, ds.pixel_array)
    offsets = np.array(ds.GridFrameOffsetVector, dtype=float)
    assert image.spacing == pytest.approx([offsets[1] - offsets[0]] + [float(v) for v in ds.PixelSpacing])
    assert image.origin == pytest.approx([float(v) for v in ds.ImagePositionPatient])


def test_colour_is_reduced_to_luminance():
    path = PYDICOM_FILES / "SC_rgb_small_odd.dcm"
    rgb = pydicom.dcmread(path).pixel_array.astype(float)
    image = read_image(path)
    assert image.array.ndim == 2
    np.testing.assert_array_equal(image.array, np.rint(rgb @ [0.299, 0.587, 0.114]))


# --- series folders ---------------------------------------------------------------------------


def test_real_ct_series_matches_simpleitk(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for k, source in enumerate(sorted(CT5N.iterdir())):
        shutil.copy(source, folder / f"slice_{(7 * k) % 5}.dcm")  # names in no useful order
    shutil.copy(DICOMDIR_TESTS / "DICOMDIR", folder / "DICOMDIR")
    (folder / "notes.txt").write_text("not an image\n")
    image = read_image(folder)
    assert image.array.shape == (5, 16, 16)
    assert image.spacing == pytest.approx((2.5, 0.488281, 0.488281))
    assert image.origin[2] == pytest.approx(-1.2375)  # the lowest slice comes first
    assert_matches_sitk(image, sitk_series(CT5N))


@pytest.mark.parametrize("orientation", [
    (1, 0, 0, 0, 1, 0),  # axial
    (0.866025, 0.5, 0, 0, 0, -1),  # oblique sagittal-coronal
])
def test_written_series_is_sorted_by_position_and_matches_simpleitk(tmp_path, orientation):
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    start = np.array([-30.0, 12.5, 40.0])
    steps = [3, 0, 4, 1, 2]  # files are written in this order of position along the normal
    expected = write_series(tmp_path, orientation, [start + 2.5 * s * normal for s in steps])
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array, np.stack([expected[steps.index(s)] for s in range(5)]))
    assert image.spacing == pytest.approx((2.5, 0.661468, 0.661468))
    assert image.origin == pytest.approx(start, abs=1e-5)
    assert_matches_sitk(image, sitk_series(tmp_path))


def test_series_without_positions_falls_back_to_instance_number(tmp_path):
    expected = write_series(tmp_path, (1, 0, 0, 0, 1, 0), [np.zeros(3)] * 3, keep_positions=False)
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array, np.stack(expected))  # InstanceNumber k + 1
    assert image.spacing[0] == pytest.approx(5.0)  # CT_small's SpacingBetweenSlices


def test_single_slice_folder_is_a_volume_with_header_spacing(tmp_path):
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", tmp_path / "only.dcm")
    image = read_image(tmp_path)
    assert image.array.shape == (1, 128, 128)
    assert image.spacing[0] == pytest.approx(5.0)
    assert image.origin == pytest.approx((-158.135803, -179.035797, -75.699997))


def test_file_without_preamble_and_suffix_is_read(tmp_path):
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    ds.preamble = None  # old ACR-NEMA style: no 128-byte preamble, no 'DICM'
    ds.save_as(tmp_path / "IM0001", enforce_file_format=False)
    (tmp_path / "LICENSE").write_text("some text a forced parse must not take for DICOM\n")
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array[0], apply_modality_lut(ds.pixel_array, ds))


def test_sheared_stack_is_rejected(tmp_path):
    # Each slice moves 1 mm sideways per 2.5 mm along the normal: gantry tilt.
    write_series(tmp_path, (1, 0, 0, 0, 1, 0), [np.array([0.0, 1.0 * k, 2.5 * k]) for k in range(4)])
    with pytest.raises(BadInputError, match="drift"):
        read_image(tmp_path)


def test_duplicated_positions_are_rejected(tmp_path):
    write_series(tmp_path, (1, 0, 0, 0, 1, 0), [np.zeros(3), np.zeros(3) + [0, 0, 2], np.zeros(3)])
    with pytest.raises(BadInputError, match="same position") as info:
        read_image(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_real_series_with_a_gap_is_rejected():
    # CT2 holds slices at z = -99.48, 103.02, 104.27, 105.52: three adjacent ones and a stray.
    with pytest.raises(BadInputError, match="unevenly spaced") as info:
        read_image(DICOMDIR_TESTS / "77654033" / "CT2")
    assert "CT2" in str(info.value)


def test_real_radial_series_is_rejected():
    with pytest.raises(BadInputError, match="different orientations"):
        read_image(DICOMDIR_TESTS / "98892003" / "MR700")


def test_folder_with_two_series_lists_them(tmp_path):
    for source in [*CT5N.iterdir(), *(DICOMDIR_TESTS / "77654033" / "CT2").iterdir()]:
        shutil.copy(source, tmp_path / f"{source.parent.name}_{source.name}")
    uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID) for p in tmp_path.iterdir()}
    with pytest.raises(BadInputError, match="2 series") as info:
        read_image(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and all(uid in message for uid in uids)
    assert "folder of its own" in message


def test_real_folder_with_three_series_is_rejected():
    with pytest.raises(BadInputError, match="3 series"):
        read_image(DICOMDIR_TESTS / "98892003" / "MR2")


# --- bad input --------------------------------------------------------------------------------


def test_file_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    del ds.PixelData
    path = tmp_path / "no_pixels.dcm"
    ds.save_as(path)
    with pytest.raises(BadInputError, match="no pixel data") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_real_non_image_file_without_preamble():
    path = PYDICOM_FILES / "rtstruct.dcm"  # no 'DICM' preamble, read via the forced fallback
    with pytest.raises(BadInputError, match="no pixel data") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_pixel_data():
    path = PYDICOM_FILES / "MR_truncated.dcm"
    with pytest.raises(BadInputError, match="cannot be decoded") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_garbage_named_dcm(tmp_path):
    path = tmp_path / "garbage.dcm"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(BadInputError) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_compressed_without_decoder_names_the_transfer_syntax():
    from pydicom.pixels import get_decoder

    path = PYDICOM_FILES / "MR_small_jpeg_ls_lossless.dcm"
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if get_decoder(syntax).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(BadInputError, match="JPEG-LS Lossless") as info:
        read_image(path)
    assert str(path) in str(info.value) and "gdcmconv --raw" in str(info.value)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here\n")
    shutil.copy(PYDICOM_FILES / "rtplan.dcm", tmp_path / "plan.dcm")  # DICOM, but not an image
    with pytest.raises(BadInputError, match="no DICOM image files") as info:
        read_image(tmp_path)
    assert str(tmp_path) in str(info.value) and "one series" in str(info.value)


def test_empty_folder(tmp_path):
    with pytest.raises(BadInputError, match="no DICOM image files"):
        read_image(tmp_path)


@pytest.mark.parametrize("signed", [True, False])
def test_monochrome1_is_inverted_so_high_attenuation_is_bright(tmp_path, signed):
    ds = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm")  # signed 16-bit
    original = ds.pixel_array.astype(np.int64)
    if not signed:  # the same picture as 12-bit unsigned, as CR/DX detectors store it
        original = original - original.min()
        original = original * 4095 // original.max()
        ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
        ds.PixelData = original.astype(np.uint16).tobytes()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "inverted.dcm")
    image = read_image(tmp_path / "inverted.dcm")
    expected = -1 - original if signed else 4095 - original
    np.testing.assert_array_equal(image.array.astype(np.int64), expected)


def test_a_dicom_file_without_suffix_is_recognised(tmp_path):
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", tmp_path / "IM0001")
    image = read_image(tmp_path / "IM0001")
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    np.testing.assert_array_equal(image.array, apply_modality_lut(ds.pixel_array, ds))
