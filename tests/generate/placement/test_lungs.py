import numpy as np
import pytest
from scipy import ndimage

from pathosynth.data.image import MedicalImage
from pathosynth.data.phantoms.chest_ct import Phantom, make_chest_ct
from pathosynth.errors import UserError
from pathosynth.generate.placement import (
    check_inside_lungs, format_position, lung_mask, parse_position, position_units, random_lung_positions)


def _drawn_phantom(seed, patient, size):
    """The phantom's scan with the lung mask it drew (the truth, made without any HU threshold)."""
    phantom = Phantom(np.random.default_rng([seed, patient]), size)
    array = phantom.build()
    return MedicalImage(array, phantom.spacing_zyx, phantom.origin_xyz), phantom


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def tiny_lungs(chest):
    scan, nodules = chest
    return scan, nodules, lung_mask(scan)


def test_the_mask_holds_the_phantoms_nodules_and_a_plausible_share_of_the_volume(tiny_lungs):
    scan, nodules, mask = tiny_lungs
    assert mask.dtype == bool and mask.shape == scan.array.shape
    assert 0.05 < mask.mean() < 0.30
    assert len(nodules) == 3
    for nodule in nodules:  # solid nodules are above -400 HU: hole filling must have taken them in
        assert mask[tuple(np.rint(scan.world_to_index(np.array(nodule.world))).astype(int))]


@pytest.mark.parametrize("seed, patient, size", [(0, 0, "tiny"), (0, 3, "tiny"), (1, 2, "tiny"), (0, 1, "default")])
def test_the_mask_matches_the_lungs_the_phantom_drew(seed, patient, size):
    scan, phantom = _drawn_phantom(seed, patient, size)
    if (seed, patient, size) == (0, 0, "tiny"):
        np.testing.assert_array_equal(scan.array, make_chest_ct(0, 0, size="tiny")[0].array)
    mask = lung_mask(scan)
    assert _dice(mask, phantom.lung) > 0.95
    assert not (mask & ~phantom.body).any()  # no air outside the patient, no table foam


def test_positions_outside_the_body_and_in_the_mediastinum_are_refused():
    scan, phantom = _drawn_phantom(0, 0, "tiny")
    mask = lung_mask(scan)
    with pytest.raises(UserError, match=r"^scans/p0\.mhd: position 0,0,24 is not in the lungs; .*e\.g\. "):
        check_inside_lungs(scan, parse_position("0,0,24", scan), mask, "scans/p0.mhd")
    # the mediastinum: body voxels of a mid slice between the two lungs, 6 mm from any lung
    z = scan.spatial_shape[0] // 2
    columns = np.flatnonzero(phantom.lung[z].any(axis=0))
    far = ndimage.distance_transform_edt(~phantom.lung[z], sampling=scan.spacing[1:]) > 6
    between = np.zeros_like(far)
    left_of_gap = np.flatnonzero(np.diff(columns) > 1)
    assert len(left_of_gap) >= 1  # two lungs in this slice
    gap = slice(columns[left_of_gap[0]] + 1, columns[left_of_gap[0] + 1])
    between[:, gap] = True
    rows = np.flatnonzero(phantom.lung[z].any(axis=1))
    between[: rows.min()] = between[rows.max() + 1:] = False
    candidates = np.argwhere(between & far & phantom.body[z])
    assert len(candidates) > 5
    for y, x in candidates[:: max(1, len(candidates) // 10)]:
        with pytest.raises(UserError, match="not in the lungs; choose a position inside the lungs"):
            check_inside_lungs(scan, np.array([z, y, x], float), mask, "p0.mhd")


def test_the_refusal_suggests_the_nearest_lung_position_in_the_units_given(tiny_lungs):
    scan, _, mask = tiny_lungs
    refused = 0
    for text in ("33,34,24", "0,0,24", scan_world_text(scan, np.array([24.0, 40.0, 33.0]))):
        index = parse_position(text, scan)
        if mask[tuple(np.rint(index).astype(int))]:
            continue
        units = position_units(text)
        with pytest.raises(UserError) as error:
            check_inside_lungs(scan, index, mask, "p0.mhd", units=units)
        suggestion = str(error.value).split("e.g. ")[1].split(" ")[0]
        assert suggestion.endswith(",world") == (units == "world")
        assert f"position {format_position(scan, index, units)} is not in the lungs" in str(error.value)
        suggested = parse_position(suggestion, scan)
        check_inside_lungs(scan, suggested, mask, "p0.mhd")  # accepted
        # nothing in the lungs is closer (brute force over the mask, in mm)
        lung_mm = np.argwhere(mask) * np.asarray(scan.spacing)
        nearest = np.sqrt(((lung_mm - index * np.asarray(scan.spacing)) ** 2).sum(axis=1)).min()
        got = np.linalg.norm((suggested - index) * np.asarray(scan.spacing))
        assert got <= nearest + (0.3 if units == "world" else 1e-6)
        refused += 1
    assert refused == 3


def scan_world_text(scan, index):
    return ",".join(f"{v:.2f}" for v in scan.index_to_world(index)) + ",world"


def test_a_margin_refuses_positions_near_the_lung_boundary(tiny_lungs):
    scan, _, mask = tiny_lungs
    depth = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=scan.spacing)[1:-1, 1:-1, 1:-1]
    shallow = np.argwhere(mask & (depth < 4))[0].astype(float)
    check_inside_lungs(scan, shallow, mask, "p0.mhd")
    with pytest.raises(UserError, match="at least 4 mm from their boundary"):
        check_inside_lungs(scan, shallow, mask, "p0.mhd", margin_mm=4)


def test_random_positions_lie_in_the_lungs_at_least_the_margin_from_their_boundary(tiny_lungs):
    scan, _, mask = tiny_lungs
    positions = random_lung_positions(scan, mask, 40, np.random.default_rng(3), margin_mm=6.0)
    assert len(positions) == 40 and all(p.shape == (3,) for p in positions)
    # distance to the nearest non-lung voxel centre, the volume's outside counting as non-lung
    depth = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=scan.spacing)[1:-1, 1:-1, 1:-1]
    for p in positions:
        voxel = tuple(p.astype(int))
        assert np.array_equal(p, np.rint(p)) and mask[voxel] and depth[voxel] >= 6.0
    assert len({tuple(p) for p in positions}) == 40  # drawn without repeats
    eligible = np.argwhere(depth >= 6.0)
    assert len(eligible) > 40
    spread = np.ptp(np.array(positions), axis=0) / np.ptp(eligible, axis=0)
    assert np.all(spread > 0.5)  # spread over the room, not stuck in one corner
    again = random_lung_positions(scan, mask, 40, np.random.default_rng(3), margin_mm=6.0)
    assert all(np.array_equal(a, b) for a, b in zip(positions, again))


def test_no_room_for_the_margin_is_a_user_error(tiny_lungs):
    scan, _, mask = tiny_lungs
    with pytest.raises(UserError, match=r"^p0\.mhd: no lung voxel is 200 mm from the lung boundary"):
        random_lung_positions(scan, mask, 1, np.random.default_rng(0), margin_mm=200, path="p0.mhd")


def test_a_scan_without_enclosed_air_has_no_lungs():
    body = np.full((20, 40, 40), -1000, np.int16)
    body[:, 5:35, 5:35] = 40
    assert not lung_mask(MedicalImage(body, (2.0, 1.0, 1.0))).any()


def test_small_holes_are_lung_large_holes_and_crumbs_are_not():
    # a body with one air cavity (2 mm slices, 1 mm pixels) holding a 5 mm "vessel" and a
    # 60 mm tissue island (mediastinum ringed by lung), plus an 8-voxel air bubble elsewhere
    body = np.full((10, 120, 120), -1000, np.int16)
    body[:, 5:115, 5:115] = 40
    body[:, 10:100, 10:100] = -850
    body[:, 20:80, 20:80] = 40
    body[:, 88:93, 88:93] = 40
    body[4:6, 105:107, 105:107] = -950
    mask = lung_mask(MedicalImage(body, (2.0, 1.0, 1.0)))
    assert mask[:, 88:93, 88:93].all()  # the vessel counts as lung
    assert not mask[:, 20:80, 20:80].any()  # the island does not
    assert not mask[:, 100:, 100:].any()  # nor the bubble
    assert mask.sum() == 10 * (90 * 90 - 60 * 60)


def test_the_volume_faces_count_as_lung_boundary():
    # lungs cut by the first or last slice: a centre there would put half the nodule off the scan
    scan = MedicalImage(np.full((10, 12, 14), -850, np.int16), (2.0, 1.0, 1.5))
    mask = np.ones(scan.spatial_shape, dtype=bool)
    positions = np.array(random_lung_positions(scan, mask, 200, np.random.default_rng(0), margin_mm=3.0))
    # distance to the nearest voxel centre just beyond the volume, axis by axis
    spacing, shape = np.asarray(scan.spacing), np.asarray(scan.spatial_shape)
    to_faces = np.minimum((positions + 1) * spacing, (shape - positions) * spacing).min(axis=1)
    assert to_faces.min() >= 3.0
    assert positions[:, 0].min() == 1 and positions[:, 2].min() == 1 and positions[:, 1].min() == 2
