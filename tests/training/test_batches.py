"""Batch order and PGGAN's random-crop augmentation."""

import numpy as np
import torch

from pathosynth.training.batches import BatchSampler, random_crop


def test_random_crop_matches_numpy_edge_padding_and_moves_boxes_along():
    torch.manual_seed(3)
    images = torch.rand(5, 2, 12, 10)
    boxes = (torch.rand(5, 1, 12, 10) > 0.7).float()
    state = torch.get_rng_state()
    cropped, cropped_boxes = random_crop(images, boxes, 3)
    torch.set_rng_state(state)
    offsets = torch.randint(0, 7, (5, 2)).numpy()  # the same draws the crop made
    for i, (dy, dx) in enumerate(offsets):
        padded = np.pad(images[i].numpy(), ((0, 0), (3, 3), (3, 3)), mode="edge")
        np.testing.assert_array_equal(cropped[i].numpy(), padded[:, dy:dy + 12, dx:dx + 10])
        padded_boxes = np.pad(boxes[i].numpy(), ((0, 0), (3, 3), (3, 3)))
        np.testing.assert_array_equal(cropped_boxes[i].numpy(), padded_boxes[:, dy:dy + 12, dx:dx + 10])
    assert random_crop(images, None, 0)[0] is images


def test_sampler_visits_every_image_once_per_epoch_and_restores_its_state():
    sampler = BatchSampler(10, 5, seed=1)
    epoch = torch.cat([sampler.next_indices(), sampler.next_indices()])
    assert sorted(epoch.tolist()) == list(range(10))
    saved = sampler.state_dict()
    ahead = [sampler.next_indices() for _ in range(3)]
    other = BatchSampler(10, 5, seed=99)
    other.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(ahead, [other.next_indices() for _ in range(3)]))
    # two processes split each global batch between them
    ranks = [BatchSampler(10, 5, seed=1, rank=r, world=2).next_indices() for r in (0, 1)]
    assert sorted(torch.cat(ranks).tolist()) == list(range(10))


def test_sample_grid_draws_boxes_narrower_than_a_pixel(tmp_path):
    from PIL import Image

    from pathosynth.training.samples import grid_png

    grid_png(torch.zeros(2, 1, 8, 8), tmp_path / "grid.png", [[[2.0, 2.0, 2.6, 2.4]], []])
    pixels = np.asarray(Image.open(tmp_path / "grid.png"))
    assert (pixels[..., 0] == 255).any()  # the tiny box is outlined, not a crash
