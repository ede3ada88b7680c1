"""PGGAN's growing schedule: which stage trains at a step, and how far its fade-in has come."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def growth_phase(step: int, phase_steps: int, levels: int) -> tuple[int, float]:
    """(stage, alpha) at `step`: the 4x4 stage stabilises for `phase_steps`, then each further stage
    fades in (alpha 0 -> 1) for `phase_steps` and stabilises for `phase_steps`; after the last
    stage's stabilisation training continues at full resolution. phase_steps=0: no growing."""
    if phase_steps <= 0 or levels == 0:
        return levels, 1.0
    phase = step // phase_steps
    if phase == 0:
        return 0, 1.0
    stage = (phase + 1) // 2
    if stage > levels:
        return levels, 1.0
    fading = phase % 2 == 1
    return stage, ((step % phase_steps) / phase_steps if fading else 1.0)


def growth_steps(phase_steps: int, levels: int) -> int:
    """Steps until the last stage has faded in and stabilised."""
    return phase_steps * (2 * levels + 1)


def real_at_stage(images: torch.Tensor, size: int, alpha: float) -> torch.Tensor:
    """Real images as the stage's discriminator sees them: downsampled to `size`, and during a
    fade-in blended with their coarser version, as the generator's output is."""
    if images.shape[-1] != size:
        images = F.avg_pool2d(images, images.shape[-1] // size)
    if alpha < 1.0:
        coarse = F.interpolate(F.avg_pool2d(images, 2), scale_factor=2, mode="nearest")
        images = alpha * images + (1.0 - alpha) * coarse
    return images
