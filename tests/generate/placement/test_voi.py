import numpy as np
import pytest
from scipy import ndimage

from pathosynth.data.boxes import boxes_from_mask
from pathosynth.data.image import MedicalImage
from pathosynth.data.preprocess import crop_centered
from pathosynth.generate.placement import extract_voi, nodule_box, paste_block

ANISOTROPIC = (2.5, 0.7, 0.9)


def _offsets_mm(shape, spacing, centre):
    """Per-voxel offsets (mm) from a continuous centre along each array axis, broadcastable."""
    return [((np.arange(n) - c) * s).reshape([-1 if a == i else 1 for a in range(3)])
            for i, (n, s, c) in enumerate(zip(shape, spacing, centre))]


def _ramp(shape, spacing):
    """A linear HU ramp in mm, which trilinear interpolation reproduces exactly."""
    dz, dy, dx = _offsets_mm(shape, spacing, (0, 0, 0))
    return (-900 + 3.0 * dz + 2.0 * dy - 1.5 * dx).astype(np.float32)


def _central_block(voi, box=32):
    low = voi.shape[0] // 2 - box // 2
    return voi[low:low + box, low:low + box, low:low + box]


def _box_mask(shape, box):
    mask = np.zeros(shape, dtype=bool)
    x0, y0, z0, x1, y1, z1 = box
    mask[z0:z1, y0:y1, x0:x1] = True
    return mask


def test_voi_at_an_integer_centre_of_a_1mm_scan_is_the_plain_crop(chest):
    scan, _ = chest
    one_mm = MedicalImage(scan.array, (1.0, 1.0, 1.0))
    for centre in [(24, 32, 32), (3, 60, 5), (47, 0, 63)]:  # the last two reach past the edges
        voi = extract_voi(one_mm, np.array(centre, dtype=float))
        assert voi.dtype == np.float32 and voi.shape == (64, 64, 64)
        np.testing.assert_array_equal(voi, crop_centered(scan.array, centre, 64, -1024).astype(np.float32))


def test_a_sphere_drawn_in_mm_on_an_anisotropic_scan_is_a_sphere_of_that_radius_in_the_voi():
    shape, radius, centre = (40, 120, 100), 9.0, np.array([19.3, 61.6, 47.2])
    dz, dy, dx = _offsets_mm(shape, ANISOTROPIC, centre)
    scan = MedicalImage(np.where(dz ** 2 + dy ** 2 + dx ** 2 <= radius ** 2, 100, -1000).astype(np.int16), ANISOTROPIC)
    voi = extract_voi(scan, centre)
    inside = voi > -450
    volume_radius = (3 * inside.sum() / (4 * np.pi)) ** (1 / 3)
    assert volume_radius == pytest.approx(radius, abs=1.0)
    np.testing.assert_allclose(ndimage.center_of_mass(inside), [32, 32, 32], atol=0.5)
    for axis, spacing in enumerate(ANISOTROPIC):  # extent through the centre, per axis
        line = np.moveaxis(inside, axis, 0)[:, 32, 32]
        assert line.sum() == pytest.approx(2 * radius, abs=spacing + 1)


def test_a_scan_stored_flipped_gives_the_flipped_voi(chest):
    scan, _ = chest
    last = scan.spatial_shape[2] - 1
    direction = scan.direction.copy()
    direction[:, 2] *= -1
    origin = scan.index_to_world(np.array([0.0, 0.0, last]))
    flipped = MedicalImage(scan.array[:, :, ::-1].copy(), scan.spacing, tuple(origin), direction)
    centre = np.array([21.4, 30.2, 40.6])
    world = scan.index_to_world(centre)
    voi = extract_voi(scan, centre)
    voi_flipped = extract_voi(flipped, flipped.world_to_index(world))
    np.testing.assert_allclose(voi_flipped[:, :, 1:], voi[:, :, :0:-1], atol=1e-3)


def test_paste_keeps_shape_dtype_and_geometry_and_never_modifies_the_input(chest):
    scan, nodules = chest
    before, geometry = scan.array.copy(), (scan.spacing, scan.origin, scan.direction.copy())
    centre = scan.world_to_index(np.array(nodules[0].world))
    out, box = paste_block(scan, centre, np.full((32,) * 3, 500.0, np.float32))
    assert out.shape == scan.array.shape and out.dtype == scan.array.dtype == np.int16
    np.testing.assert_array_equal(scan.array, before)
    assert (scan.spacing, scan.origin) == geometry[:2] and np.array_equal(scan.direction, geometry[2])
    changed = out != before
    assert changed.any()
    np.testing.assert_array_equal(out[~_box_mask(out.shape, box)], before[~_box_mask(out.shape, box)])
    assert boxes_from_mask(changed) == [box]  # the box is the changed region, not more


def test_pasting_a_vois_own_centre_block_back_on_a_1mm_scan_is_bit_identical(chest):
    scan, _ = chest
    one_mm = MedicalImage(scan.array, (1.0, 1.0, 1.0))
    centre = np.array([22.0, 30.0, 41.0])
    out, box = paste_block(one_mm, centre, _central_block(extract_voi(one_mm, centre)))
    np.testing.assert_array_equal(out, scan.array)
    assert box == [41 - 16, 30 - 16, 22 - 16, 41 + 16, 30 + 16, 22 + 16]


@pytest.mark.parametrize("zoom, feather_mm", [(1.0, 2.0), (1.07, 0.0), (0.85, 0.0)])
def test_pasting_back_on_an_anisotropic_scan_reproduces_a_linear_ramp_exactly(zoom, feather_mm):
    # the VOI's voxel j is (j - 32) mm from the centre; pasted with a zoom, the scan voxel d mm
    # from the centre shows the VOI at d / zoom mm: on a ramp, the ramp's value there
    shape, centre = (30, 90, 80), np.array([14.6, 44.3, 39.8])
    scan = MedicalImage(_ramp(shape, ANISOTROPIC), ANISOTROPIC)
    out, box = paste_block(scan, centre, _central_block(extract_voi(scan, centre)), zoom=zoom,
                           feather_mm=feather_mm)
    dz, dy, dx = _offsets_mm(shape, ANISOTROPIC, centre)
    # the block has values between its first and last voxel centres (-16 .. 15 mm); in the
    # outer half voxel it holds its edge value, so compare within the centres only
    inside = _box_mask(shape, box)
    for d in (dz, dy, dx):
        inside = inside & (d / zoom >= -16) & (d / zoom <= 15)
    assert inside.sum() > 1000
    at_centre = -900 + 3.0 * centre[0] * 2.5 + 2.0 * centre[1] * 0.7 - 1.5 * centre[2] * 0.9
    expected = at_centre + (3.0 * dz + 2.0 * dy - 1.5 * dx) / zoom
    # float32 HU near -900: 2e-3 HU is rounding, a geometric slip of 0.01 mm would be more
    np.testing.assert_allclose(out[inside], expected[inside], rtol=0, atol=2e-3)


def test_pasting_back_the_real_phantom_changes_voxels_by_at_most_their_neighbourhood_range(chest):
    # Each 1 mm VOI sample mixes the 8 scan voxels around it, and pasting back mixes VOI samples
    # closer than one scan voxel (all spacings here exceed 1 mm): a pasted voxel is a convex
    # combination of its 3^3 neighbourhood, so it moves by at most that neighbourhood's range,
    # plus 0.5 HU of rounding to int16. Typical changes are a small fraction of that.
    scan, nodules = chest
    assert min(scan.spacing) > 1.0
    centre = scan.world_to_index(np.array(nodules[1].world))
    out, box = paste_block(scan, centre, _central_block(extract_voi(scan, centre)))
    original = scan.array.astype(float)
    spread = ndimage.maximum_filter(original, size=3) - ndimage.minimum_filter(original, size=3)
    change = np.abs(out.astype(float) - original)
    assert np.all(change <= spread + 0.5)
    region = _box_mask(out.shape, box)
    assert change[region].mean() < 0.1 * spread[region].mean()  # about 20 HU here: the noise smoothed away


def test_a_bright_cube_lands_where_expected_on_an_anisotropic_scan():
    shape, centre = (30, 90, 80), np.array([13.4, 41.7, 37.2])
    scan = MedicalImage(np.full(shape, -1000, np.int16), ANISOTROPIC)
    block = np.full((32,) * 3, -1000.0, np.float32)
    block[11:21, 11:21, 11:21] = 1000.0  # voxel j is (j - 16) mm from the centre: cube spans -5.5..4.5 mm
    out, box = paste_block(scan, centre, block)
    offsets = _offsets_mm(shape, ANISOTROPIC, centre)
    surely_in = np.ones(shape, bool)
    surely_out = np.zeros(shape, bool)
    for d in offsets:  # trilinear: exact within a block voxel of the cube's voxel centres (-5 .. 4 mm)
        surely_in = surely_in & (d >= -5) & (d <= 4)
        surely_out = surely_out | (d <= -6) | (d >= 5)
    assert surely_in.sum() > 50
    assert np.all(out[surely_in] == 1000) and np.all(out[surely_out] == -1000)
    assert np.all(_box_mask(shape, box)[out != -1000])


@pytest.mark.parametrize("zoom", [0.8, 1.0, 1.25])
def test_the_box_spans_the_block_and_zoom_scales_it(zoom):
    shape, centre = (40, 120, 100), np.array([19.4, 60.1, 50.3])
    scan = MedicalImage(np.full(shape, -1000, np.int16), ANISOTROPIC)
    out, box = paste_block(scan, centre, np.full((32,) * 3, 200.0, np.float32), zoom=zoom, feather_mm=2.0)
    width_mm = (np.array(box[3:]) - np.array(box[:3])) * np.array(ANISOTROPIC[::-1])  # x, y, z
    assert np.all(np.abs(width_mm - 32 * zoom) <= np.array(ANISOTROPIC[::-1]) + 1e-9)
    changed = out != -1000
    assert boxes_from_mask(changed) == [box]
    # the weight is 1 once feather_mm inside the faces: those voxels carry the block's value
    full = np.ones(shape, bool)
    for d in _offsets_mm(shape, ANISOTROPIC, centre):
        full = full & (d > (-16.5 * zoom + 2)) & (d < (15.5 * zoom - 2))
    rim = out[changed & ~full]
    assert np.all(out[full] == 200) and np.all(rim <= 200) and rim.min() < -900


def test_feathering_blends_smoothly_and_integer_values_are_clipped():
    shape, centre = (30, 60, 60), np.array([15.0, 30.0, 30.0])
    scan = MedicalImage(np.zeros(shape, np.int16), (1.0, 1.0, 1.0))
    out, _ = paste_block(scan, centre, np.full((32,) * 3, 1000.0, np.float32), feather_mm=4.0)
    profile = out[15, 30, :].astype(float)  # x from the face at 13.5 inwards
    ramp = profile[14:19]
    assert np.all(np.diff(ramp) > 0) and ramp[0] > 0 and profile[18] == 1000 and profile[13] == 0
    hot, _ = paste_block(scan, centre, np.full((32,) * 3, 1e6, np.float32), feather_mm=0.0)
    assert hot.max() == np.iinfo(np.int16).max


def test_nodule_box_holds_every_voxel_centre_of_the_ball_and_little_more():
    shape, diameter = (40, 120, 100), 11.0
    scan = MedicalImage(np.zeros(shape, np.int16), ANISOTROPIC)
    for centre in (np.array([19.3, 60.6, 47.2]), np.array([1.2, 3.0, 98.7])):  # the second is clipped
        dz, dy, dx = _offsets_mm(shape, ANISOTROPIC, centre)
        [tight] = boxes_from_mask(dz ** 2 + dy ** 2 + dx ** 2 <= (diameter / 2) ** 2)
        box = nodule_box(scan, centre, diameter)
        # the ball may miss the outermost voxel centres of its box: a slack of two voxels
        assert all(b <= t <= b + 2 for b, t in zip(box[:3], tight[:3]))
        assert all(b - 2 <= t <= b for b, t in zip(box[3:], tight[3:]))
        assert min(box) >= 0 and all(b <= n for b, n in zip(box[3:], (100, 120, 40)))
