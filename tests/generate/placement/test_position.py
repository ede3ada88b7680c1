import numpy as np
import pytest

from pathosynth.data.image import MedicalImage
from pathosynth.errors import UserError
from pathosynth.generate.placement import (
    check_spacing, format_position, jitter_position, parse_position, position_units)
from tests.generate.placement.frames import oblique_direction, oblique_scan


def _world_by_hand(scan: MedicalImage, index) -> np.ndarray:
    """origin + sum_j index_j * spacing_j * (column j of direction), written out axis by axis."""
    world = np.array(scan.origin, dtype=float)
    for j in range(3):
        world = world + index[j] * scan.spacing[j] * scan.direction[:, j]
    return world


def test_oblique_frame_is_a_proper_rotation_times_a_flip():
    direction = oblique_direction()
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-12)
    assert np.linalg.det(direction) == pytest.approx(-1.0)
    assert np.abs(direction).max() < 0.99  # no axis runs along a world axis


def test_world_index_round_trip_is_exact_for_an_oblique_flipped_anisotropic_scan():
    scan = oblique_scan()
    rng = np.random.default_rng(0)
    index = rng.uniform(-0.5, 39.5, (200, 3))
    world = scan.index_to_world(index)
    np.testing.assert_allclose(world, np.array([_world_by_hand(scan, i) for i in index]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(scan.world_to_index(world), index, rtol=0, atol=1e-9)
    world = rng.uniform(-500, 500, (200, 3))
    np.testing.assert_allclose(scan.index_to_world(scan.world_to_index(world)), world, rtol=0, atol=1e-9)


def test_voxel_text_is_x_y_z_and_maps_to_array_order_index():
    scan = oblique_scan(shape=(20, 30, 40))
    np.testing.assert_array_equal(parse_position("3,5,7", scan), [7.0, 5.0, 3.0])
    np.testing.assert_array_equal(parse_position(" 39 , 29.5, 0 ", scan), [0.0, 29.5, 39.0])
    assert scan.array[tuple(parse_position("3,5,7", scan).astype(int))] == scan.array[7, 5, 3]


def test_world_text_maps_to_the_index_of_that_world_position():
    scan = oblique_scan()
    index = np.array([12.25, 3.5, 30.75])
    x, y, z = (float(v) for v in _world_by_hand(scan, index))
    text = f"{x!r},{y!r},{z!r},world"
    assert position_units(text) == "world" and position_units("1,2,3") == "voxel"
    np.testing.assert_allclose(parse_position(text, scan), index, rtol=0, atol=1e-9)
    # format_position writes what parse_position reads, in either unit
    np.testing.assert_allclose(parse_position(format_position(scan, index), scan), index, atol=0.01)
    np.testing.assert_allclose(parse_position(format_position(scan, index, "world"), scan), index, atol=0.2)


@pytest.mark.parametrize("text", ["", "1,2", "a,b,c", "1,2,3,4", "1,2,3,foo", "nan,1,2", "1;2;3", "1,2,,3"])
def test_malformed_position_text_names_the_option_and_the_expected_form(text):
    scan = oblique_scan()
    with pytest.raises(UserError) as error:
        parse_position(text, scan, source="--at")
    assert "--at" in str(error.value) and "'x,y,z'" in str(error.value) and "world" in str(error.value)


def test_position_outside_the_volume_states_its_extent_in_the_units_given():
    scan = oblique_scan(shape=(20, 30, 40))
    with pytest.raises(UserError, match=r"--at '40,3,4'.*x 0\.\.39, y 0\.\.29, z 0\.\.19 voxels"):
        parse_position("40,3,4", scan)
    with pytest.raises(UserError, match=r"--at '1,2,-0.6'.* voxels"):
        parse_position("1,2,-0.6", scan)
    parse_position("39.5,29.5,-0.5", scan)  # the outer voxel edges still belong to the scan
    corner = scan.index_to_world(np.array([-5.0, 0.0, 0.0]))
    text = ",".join(f"{v:.3f}" for v in corner) + ",world"
    with pytest.raises(UserError, match=r"--nodule '.*,world' \(scan a\.mhd\).*x -?\d+\.\d\.\.-?\d+\.\d, .* mm"):
        parse_position(text, scan, source="--nodule", path="a.mhd")


@pytest.mark.parametrize("spacing, problem", [
    ((0.0, 0.7, 0.7), "not positive"), ((-1.0, 0.7, 0.7), "not positive"), ((float("nan"), 1, 1), "not positive"),
    ((3.5, 0.7, 0.7), "coarser than 3 mm"), ((2.8, 0.4, 0.45), "too anisotropic"),
])
def test_spacing_check_names_the_file_the_spacing_and_the_fix(spacing, problem):
    scan = MedicalImage(np.zeros((4, 4, 4), np.int16), spacing)
    with pytest.raises(UserError) as error:
        check_spacing(scan, "scans/x.mhd")
    message = str(error.value)
    assert message.startswith("scans/x.mhd:") and problem in message and "resample" in message
    assert f"{spacing[1]:g}" in message


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.5, 0.5), (2.5, 0.7, 0.7)])
def test_spacing_check_accepts_usual_ct_spacings(spacing):
    check_spacing(MedicalImage(np.zeros((4, 4, 4), np.int16), spacing), "x.mhd")


def test_jitter_stays_within_a_tenth_of_the_diameter_per_axis_in_mm_and_the_zoom_range(chest):
    scan, _ = chest
    spacing = np.asarray(scan.spacing)
    assert spacing[0] != spacing[2]  # the conversion per axis is what is tested
    centre = np.array([20.3, 31.0, 40.7])
    rng = np.random.default_rng(1)
    draws = [jitter_position(centre, scan, 12.0, rng) for _ in range(400)]
    shifts_mm = np.array([(c - centre) * spacing for c, _ in draws])
    zooms = np.array([z for _, z in draws])
    assert np.abs(shifts_mm).max() <= 1.2 + 1e-9
    assert np.all(np.abs(shifts_mm).max(axis=0) > 1.1)  # every axis uses the whole range, in mm
    assert zooms.min() >= 0.9 and zooms.max() <= 1.1 and zooms.min() < 0.91 and zooms.max() > 1.09
    narrow = [jitter_position(centre, scan, 12.0, rng, shift=0.05, zoom=0.0) for _ in range(50)]
    assert max(np.abs((c - centre) * spacing).max() for c, _ in narrow) <= 0.6 + 1e-9
    assert {z for _, z in narrow} == {1.0}


def test_jitter_is_deterministic_for_a_seeded_generator(chest):
    scan, _ = chest
    centre = np.array([20.0, 31.0, 40.0])
    first = [jitter_position(centre, scan, 8.0, np.random.default_rng(7)) for _ in range(2)]
    np.testing.assert_array_equal(first[0][0], first[1][0])
    assert first[0][1] == first[1][1]
    other = jitter_position(centre, scan, 8.0, np.random.default_rng(8))
    assert not np.array_equal(other[0], first[0][0])
