import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from pathosynth.data.image import MedicalImage
from pathosynth.data.preprocess import crop_centered, normalise_percentile, pad_to_square, reorient_to_plain, resample
from pathosynth.data.readers import read_image
from pathosynth.data.writers import write_sitk

AXIS_CASES = [(perm, signs) for perm in itertools.permutations(range(3))
              for signs in itertools.product((1, -1), repeat=3)][::5]


@pytest.mark.parametrize("perm, signs", AXIS_CASES)
def test_reorientation_matches_simpleitk_dicomorient_lps(tmp_path, perm, signs):
    rng = np.random.default_rng(0)
    direction = np.zeros((3, 3))
    for column, (row, sign) in enumerate(zip(perm, signs)):
        direction[row, column] = sign
    image = MedicalImage(rng.integers(0, 1000, (4, 5, 6)).astype(np.int16), (1.5, 0.7, 0.9), (10.0, -20.0, 30.0),
                         direction)
    write_sitk(tmp_path / "v.mha", image)
    ours = reorient_to_plain(read_image(tmp_path / "v.mha"))
    reference = sitk.DICOMOrient(sitk.ReadImage(str(tmp_path / "v.mha")), "LPS")
    np.testing.assert_array_equal(ours.array, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(ours.spacing, reference.GetSpacing()[::-1])
    np.testing.assert_allclose(ours.origin, reference.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(ours.direction, np.asarray(reference.GetDirection()).reshape(3, 3)[:, ::-1], atol=1e-9)


def test_resample_keeps_geometry_and_matches_scipy_zoom_on_a_ramp():
    ramp = np.broadcast_to(np.arange(11, dtype=np.float32)[:, None, None] * 2.0, (11, 6, 6)).copy()
    image = MedicalImage(ramp, (2.0, 1.0, 1.0), (1.0, 2.0, 3.0))
    out = resample(image, (1.0, 1.0, 1.0))
    assert out.array.shape == (21, 6, 6) and out.origin == image.origin and out.spacing == (1.0, 1.0, 1.0)
    # world position z (mm from the first voxel) has value z on this ramp, linear interpolation is exact
    np.testing.assert_allclose(out.array[:, 0, 0], np.arange(21, dtype=np.float32))
    reference = ndimage.zoom(ramp, (21 / 11, 1, 1), order=1, grid_mode=False, mode="nearest")
    np.testing.assert_allclose(out.array, reference, atol=1e-4)


def test_pad_crop_and_normalise():
    padded, (top, left) = pad_to_square(np.ones((2, 3, 5), np.float32), 8)
    assert padded.shape == (2, 8, 8) and (top, left) == (2, 1) and padded.sum() == 30
    with pytest.raises(ValueError):
        pad_to_square(np.ones((9, 3)), 8)
    volume = np.arange(27).reshape(3, 3, 3)
    block = crop_centered(volume, (0, 0, 0), 3, -1)
    assert block[1, 1, 1] == 0 and block[0].max() == -1 and block[1:, 1:, 1:].tolist() == volume[:2, :2, :2].tolist()
    data = np.array([0.0, 1.0, 2.0, 4.0, 100.0])
    normalised = normalise_percentile(data, data > 0, percentile=75)
    np.testing.assert_allclose(normalised, np.clip(data / np.percentile([1.0, 2.0, 4.0, 100.0], 75), 0, 1))
