"""GAN generators and discriminators, one file per family (METHODS.md), and the registry: a family
is its file (settings, presets, networks, checks: `models/family.py`) plus one line in FAMILIES.

Every 2D generator is called as ``G(z, labels=..., boxes=..., **phase)`` and every discriminator as
``D(x, labels=..., boxes=..., **phase)``, where ``phase`` is PGGAN's ``stage``/``alpha`` and empty
for the others. 3D MCGAN inpaints instead (``G(noise-box VOI + conditions)``, two discriminators);
its step lives in training/mcgan_run.py. A generator is rebuilt at generation time from ``(model, generator_kwargs)``
alone, which is what the exported weights file records.
"""

from __future__ import annotations

import torch
from torch import nn

from pathosynth.errors import UserError
from pathosynth.models.dcgan import DCGAN, WGAN
from pathosynth.models.family import Family
from pathosynth.models.mcgan3d import MCGAN3D
from pathosynth.models.pggan import PGGAN
from pathosynth.models.unet_cgan import UNET_CGAN, UNetCGANGenerator

# The registry: one line per family; everything else finds a family here.
FAMILIES: dict[str, Family] = {family.name: family for family in (
    DCGAN,
    WGAN,
    PGGAN,
    UNET_CGAN,
    MCGAN3D,
)}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"unknown model '{name}'; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def generator_kwargs(config, channels: int, num_classes: int) -> dict:
    return family(config.model).generator_kwargs(config, channels, num_classes)


def build_generator(model: str, kwargs: dict) -> nn.Module:
    return family(model).generator_class(**kwargs)


def build_discriminator(config, channels: int, num_classes: int) -> nn.Module:
    return family(config.model).discriminator(config, channels, num_classes)


def latent_shape(generator: nn.Module) -> tuple[int, ...]:
    """The shape of one sample's latent (without the batch axis)."""
    if isinstance(generator, UNetCGANGenerator):
        return (generator.latent_channels, *generator.shape)
    return (generator.latent_dim,)  # type: ignore[return-value]  # an int attribute of the 1-D families


def latents_for_seeds(generator: nn.Module, seeds: list[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """One latent per seed, each drawn from its own seeded RNG: an image depends only on its seed,
    never on which batch it was generated in."""
    shape = latent_shape(generator)
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))) for seed in seeds]
    return torch.stack(rows).to(device)
