"""Where 2D lesions may go and how they are blended in: checked against scipy's distance transform
and on drawn shapes whose answer is known."""

import numpy as np
import pytest
from scipy import ndimage

from pathosynth.generate.placement.slices import (MARGIN, box_distance, fit_shape, lesion_weight, organ_mask,
                                                   random_boxes)


@pytest.mark.parametrize("box", [[10, 12, 20, 15], [0, 0, 5, 5], [30, 25, 40, 40]])
def test_box_distance_is_the_chessboard_distance_to_the_box(box):
    shape = (40, 50)
    inside = np.zeros(shape, dtype=bool)
    inside[box[1]:box[3], box[0]:box[2]] = True
    reference = ndimage.distance_transform_cdt(~inside, metric="chessboard")
    assert np.array_equal(box_distance(shape, box), reference)


def test_organ_mask_finds_a_noisy_disc_and_ignores_a_speck_outside_it():
    yy, xx = np.mgrid[:128, :128]
    disc = (yy - 60) ** 2 + (xx - 70) ** 2 < 40 ** 2
    image = np.where(disc, 600.0, 0.0) + np.random.default_rng(1).normal(0, 40, disc.shape)
    image[60, 65:75] = 0.0  # a dark line inside: a hole to fill
    image[5:8, 5:8] = 900.0  # a bright speck outside: not the organ
    mask = organ_mask(image)
    assert (mask & disc).sum() / (mask | disc).sum() > 0.97
    assert not mask[5:8, 5:8].any()


def test_random_boxes_lie_inside_the_organ_and_keep_apart():
    yy, xx = np.mgrid[:128, :128]
    organ = (yy - 64) ** 2 + (xx - 64) ** 2 < 50 ** 2
    own = [[60.0, 60.0, 70.0, 70.0]]
    boxes = random_boxes(organ, [(12, 10), (8, 8), (20, 16), (6, 9)], np.random.default_rng(3), avoid=own)
    assert len(boxes) == 4
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = map(int, box)
        assert organ[y0:y1, x0:x1].all()
        for other in boxes[:i] + own:
            assert box_distance(organ.shape, other)[y0:y1, x0:x1].min() > MARGIN
    assert random_boxes(organ, [(200, 200)], np.random.default_rng(3)) == []  # too big: left out


def test_a_lesion_shape_fills_its_box_and_keeps_its_labels():
    shape = np.zeros((10, 6), dtype=np.uint8)
    shape[2:8, 1:5] = 2
    shape[4:6, 2:4] = 4
    for seed in range(6):
        fitted = fit_shape(shape, [3, 5, 20, 12], np.random.default_rng(seed))
        assert fitted.shape == (7, 17)
        assert set(np.unique(fitted)) == {0, 2, 4}


def test_the_lesion_feather_is_full_next_to_the_lesion_and_zero_from_4_px():
    lesion = np.zeros((30, 30), dtype=bool)
    lesion[10:15, 12:18] = True
    weight = lesion_weight(lesion)
    distance = ndimage.distance_transform_cdt(~lesion, metric="chessboard")
    assert (weight[distance <= 1] == 1).all() and (weight[distance >= 4] == 0).all()
    assert ((weight > 0) & (weight < 1) == ((distance > 1) & (distance < 4))).all()
