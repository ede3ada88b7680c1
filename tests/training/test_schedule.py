"""PGGAN's growing schedule and the real images each stage's discriminator sees."""

import torch
import torch.nn.functional as F

from pathosynth.training.schedule import growth_phase, growth_steps, real_at_stage


def test_growth_runs_stabilise_then_fade_and_stabilise_per_stage():
    phase_steps, levels = 10, 2
    seen = [growth_phase(step, phase_steps, levels) for step in range(growth_steps(phase_steps, levels) + 5)]
    assert seen[0] == (0, 1.0) and seen[9] == (0, 1.0)
    assert seen[10] == (1, 0.0) and seen[15] == (1, 0.5) and seen[19] == (1, 0.9)
    assert seen[20] == (1, 1.0) and seen[29] == (1, 1.0)
    assert seen[30] == (2, 0.0) and seen[45] == (2, 1.0)
    assert all(stage == 2 and alpha == 1.0 for stage, alpha in seen[50:])
    assert growth_phase(123, 0, 3) == (3, 1.0)  # no growing


def test_real_images_are_downsampled_and_faded_like_the_generator_output():
    images = torch.rand(2, 1, 16, 16)
    small = real_at_stage(images, 8, 1.0)
    assert torch.allclose(small, F.avg_pool2d(images, 2))
    half = real_at_stage(images, 8, 0.5)
    coarse = F.interpolate(F.avg_pool2d(small, 2), scale_factor=2, mode="nearest")
    assert torch.allclose(half, 0.5 * small + 0.5 * coarse)
