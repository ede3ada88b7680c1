"""Latent vectors for the generators that draw images from noise: one per seed, so that an image
depends only on its seed, never on which batch it was generated in."""

from __future__ import annotations

import torch
from torch import nn


def latents_for_seeds(generator: nn.Module, seeds: list[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """One latent of the generator's `latent_shape` per seed, each drawn from its own seeded RNG."""
    shape = tuple(generator.latent_shape)  # type: ignore[arg-type]  # declared by every latent generator
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))) for seed in seeds]
    return torch.stack(rows).to(device)
