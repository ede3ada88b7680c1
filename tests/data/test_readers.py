"""`read_image` and the writers against real files and independent implementations.

NIfTI geometry is checked against nibabel's own affine (voxel -> RAS world, flipped to LPS here)
and against SimpleITK, which implements NIfTI -> LPS on its own.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nibabel.testing import data_path
from PIL import Image

from pathosynth.data.image import MedicalImage, plain_direction
from pathosynth.data.readers import read_image
from pathosynth.data.writers import write_image, write_nifti, write_png, write_sitk
from pathosynth.errors import BadInputError

NIBABEL_DATA = Path(data_path)
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
NIFTI_FILES = ["anatomical.nii", "standard.nii.gz", "example4d.nii.gz", "functional.nii",
               "reoriented_anat_moved.nii", "example_nifti2.nii.gz"]
SITK_READABLE = {"anatomical.nii", "standard.nii.gz", "example4d.nii.gz", "functional.nii",
                 "reoriented_anat_moved.nii"}


def assert_same_geometry(a: MedicalImage, b: MedicalImage, atol: float = 1e-6) -> None:
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(a.origin, b.origin, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, atol=atol)


# --- NIfTI from nibabel's test data -------------------------------------------------------------


@pytest.mark.parametrize("name", NIFTI_FILES)
def test_nifti_matches_nibabel_affine(name):
    path = NIBABEL_DATA / name
    nifti = nib.load(path)
    data = np.asanyarray(nifti.dataobj)
    image = read_image(path)
    np.testing.assert_array_equal(image.array, data.transpose(tuple(range(data.ndim))[::-1]))
    assert image.array.dtype.isnative
    # Any voxel: our index (array order) must land where nibabel's affine puts (i, j, k).
    ijk = np.array([[0, 0, 0], [1, 2, 3], [s - 1 for s in data.shape[:3]]], dtype=float)
    expected_lps = (RAS_TO_LPS @ nib.affines.apply_affine(nifti.affine, ijk).T).T
    np.testing.assert_allclose(image.index_to_world(ijk[:, ::-1]), expected_lps, atol=1e-4)
    assert image.spacing == pytest.approx(nifti.header.get_zooms()[:3][::-1], rel=1e-6)


@pytest.mark.parametrize("name", sorted(SITK_READABLE))
def test_nifti_matches_simpleitk(name):
    path = NIBABEL_DATA / name
    image = read_image(path)
    itk = sitk.ReadImage(str(path))
    dims = 3  # SimpleITK keeps a 4D file 4D; its first three axes are our spatial ones
    itk_direction = np.asarray(itk.GetDirection()).reshape(itk.GetDimension(), -1)[:dims, :dims]
    np.testing.assert_allclose(image.spacing, itk.GetSpacing()[:dims][::-1], rtol=1e-6)
    np.testing.assert_allclose(image.origin, itk.GetOrigin()[:dims], atol=1e-4)
    np.testing.assert_allclose(image.direction, itk_direction[:, ::-1], atol=1e-6)
    itk_array = sitk.GetArrayFromImage(itk)  # [t, z, y, x] for 4D, like our [c, z, y, x]
    np.testing.assert_allclose(image.array, itk_array, rtol=1e-6)


# --- MetaImage / NRRD written by SimpleITK ----------------------------------------------------


@pytest.mark.parametrize("suffix", [".mha", ".mhd", ".nrrd"])
def test_sitk_written_file_reads_back(tmp_path, suffix):
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 50
    itk = sitk.GetImageFromArray(array)
    itk.SetSpacing((0.7, 1.3, 2.5))
    itk.SetOrigin((-10.0, 20.5, 3.25))
    rotation = sitk.VersorTransform((0.3, -0.2, 0.9), 0.4).GetMatrix()  # oblique frame
    itk.SetDirection(rotation)
    path = tmp_path / f"volume{suffix}"
    sitk.WriteImage(itk, str(path))
    image = read_image(path)
    np.testing.assert_array_equal(image.array, array)
    np.testing.assert_allclose(image.spacing, (2.5, 1.3, 0.7))
    np.testing.assert_allclose(image.origin, (-10.0, 20.5, 3.25))
    np.testing.assert_allclose(image.direction, np.asarray(rotation).reshape(3, 3)[:, ::-1], atol=1e-6)
    # Index -> world agrees with ITK's own transform.
    for index in [(0, 0, 0), (3, 1, 4)]:
        world = itk.TransformIndexToPhysicalPoint(tuple(int(i) for i in index[::-1]))
        np.testing.assert_allclose(image.index_to_world(index), world, atol=1e-5)


# --- writer round trips -----------------------------------------------------------------------


def random_direction(data, dims: int) -> np.ndarray:
    values = data.draw(st.lists(st.floats(-1, 1), min_size=dims * dims, max_size=dims * dims))
    matrix = np.asarray(values).reshape(dims, dims) + 2.5 * np.eye(dims)  # keep it well conditioned
    q, r = np.linalg.qr(matrix)
    q = q * np.sign(np.diag(r))
    if data.draw(st.booleans()):
        q[:, 0] = -q[:, 0]  # a reflection: left-handed frames must survive too
    return q


@st.composite
def medical_images(draw, dims: int, channels: bool, dtype=np.float32):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=dims, max_size=dims)))
    if channels:
        shape = (draw(st.integers(2, 3)),) + shape
    spacing = tuple(draw(st.lists(st.floats(0.05, 20), min_size=dims, max_size=dims)))
    origin = tuple(draw(st.lists(st.floats(-500, 500), min_size=dims, max_size=dims)))
    data = draw(st.data())
    array = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    return MedicalImage(array, spacing, origin, random_direction(data, dims))


SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(image=st.one_of(medical_images(3, False), medical_images(2, False), medical_images(3, True)))
def test_write_nifti_round_trip(tmp_path, image):
    path = tmp_path / "image.nii.gz"
    write_nifti(path, image)
    back = read_image(path)
    np.testing.assert_array_equal(back.array, image.array)
    assert back.array.shape == image.array.shape
    # NIfTI keeps the affine in float32.
    np.testing.assert_allclose(back.spacing, image.spacing, rtol=1e-5)
    np.testing.assert_allclose(back.origin, image.origin, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(back.direction, image.direction, atol=1e-5)


@SETTINGS
@given(image=st.one_of(medical_images(3, False), medical_images(2, False), medical_images(3, True),
                       medical_images(2, True)),
       suffix=st.sampled_from([".nrrd", ".mha", ".mhd"]))
def test_write_sitk_round_trip(tmp_path, image, suffix):
    path = tmp_path / f"image{suffix}"
    write_sitk(path, image)
    back = read_image(path)
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.spacing, image.spacing, rtol=1e-5)
    np.testing.assert_allclose(back.origin, image.origin, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(back.direction, image.direction, atol=1e-5)


def test_2d_nifti_round_trip_through_write_image(tmp_path):
    image = MedicalImage(np.arange(12, dtype=np.int16).reshape(3, 4), (0.5, 0.25), (10.0, -4.0))
    path = tmp_path / "slice.nii"
    write_image(path, image)
    assert nib.load(path).shape == (4, 3)  # stored x-first
    back = read_image(path)
    np.testing.assert_array_equal(back.array, image.array)
    assert_same_geometry(back, image)


def test_4d_multichannel_nifti_round_trip(tmp_path):
    direction = plain_direction(3)[:, [0, 2, 1]]  # a coronal-like frame
    image = MedicalImage(np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5),
                         (3.0, 1.5, 0.75), (1.0, 2.0, 3.0), direction)
    path = tmp_path / "channels.nii.gz"
    write_image(path, image)
    assert nib.load(path).shape == (5, 4, 3, 2)
    back = read_image(path)
    np.testing.assert_array_equal(back.array, image.array)
    assert_same_geometry(back, image, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip(tmp_path, dtype):
    top = np.iinfo(dtype).max
    array = (np.linspace(0, top, 6 * 9).reshape(6, 9)).astype(dtype)
    path = tmp_path / "image.png"
    write_png(path, array)
    back = read_image(path)
    assert back.array.dtype == dtype
    np.testing.assert_array_equal(back.array, array)
    assert back.spacing == (1.0, 1.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, ">u2"])
def test_tiff_round_trip(tmp_path, dtype):
    array = (np.linspace(0, np.iinfo(np.dtype(dtype)).max, 7 * 5).reshape(7, 5)).astype(dtype)
    path = tmp_path / "image.tif"
    Image.fromarray(array).save(path, dpi=(254, 127))
    back = read_image(path)
    np.testing.assert_array_equal(back.array, array)
    assert back.array.dtype.isnative and back.array.dtype.itemsize == np.dtype(dtype).itemsize
    assert back.spacing == pytest.approx((0.2, 0.1))  # 25.4 mm / dpi, (y, x)


def test_colour_png_reads_as_grey(tmp_path):
    grey = np.arange(30, dtype=np.uint8).reshape(5, 6) * 8
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png").array, grey)


# --- bad input --------------------------------------------------------------------------------


def assert_bad(path: Path, match: str = "") -> None:
    with pytest.raises(BadInputError, match=match) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_nifti(tmp_path):
    source = (NIBABEL_DATA / "anatomical.nii").read_bytes()
    path = tmp_path / "cut.nii"
    path.write_bytes(source[: len(source) // 2])
    assert_bad(path, "cannot be read as NIfTI")


def test_truncated_header_nifti(tmp_path):
    path = tmp_path / "header_only.nii"
    path.write_bytes((NIBABEL_DATA / "anatomical.nii").read_bytes()[:200])
    assert_bad(path, "cannot be read as NIfTI")


def test_corrupt_gzip_nifti(tmp_path):
    packed = bytearray((NIBABEL_DATA / "standard.nii.gz").read_bytes())
    packed[len(packed) // 2:] = bytes(len(packed) - len(packed) // 2)  # zero the second half
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises((OSError, EOFError, gzip.BadGzipFile, Exception)):
        gzip.decompress(bytes(packed))  # really corrupt, not just odd
    assert_bad(path, "cannot be read as NIfTI")


def test_garbage_named_nii(tmp_path):
    path = tmp_path / "garbage.nii"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    assert_bad(path, "cannot be read as NIfTI")


def test_garbage_named_mha(tmp_path):
    path = tmp_path / "garbage.mha"
    path.write_text("not a metaimage header\n")
    assert_bad(path, "cannot be read")


def test_garbage_named_png(tmp_path):
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(50))
    assert_bad(path, "cannot be read as an image")


def test_unknown_suffix(tmp_path):
    path = tmp_path / "image.xyz"
    path.write_bytes(b"data")
    assert_bad(path, "unknown image type '.xyz'")


def test_missing_path(tmp_path):
    assert_bad(tmp_path / "nowhere.nii.gz", "does not exist")


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_bool_and_int64_arrays_are_written_in_a_portable_type(tmp_path, suffix):
    from pathosynth.data.writers import write_image

    mask = np.zeros((3, 4, 5), bool)
    mask[1, 2, 3] = True
    write_image(tmp_path / f"m{suffix}", MedicalImage(mask, (1.0, 1.0, 1.0)))
    np.testing.assert_array_equal(read_image(tmp_path / f"m{suffix}").array, mask.astype(np.uint8))
    counts = np.arange(60, dtype=np.int64).reshape(3, 4, 5) - 30
    write_image(tmp_path / f"c{suffix}", MedicalImage(counts, (1.0, 1.0, 1.0)))
    np.testing.assert_array_equal(read_image(tmp_path / f"c{suffix}").array, counts)
