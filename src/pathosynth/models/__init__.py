"""GAN generators and discriminators, one file per family (METHODS.md), and the registry that
builds them from a config.

Every 2D generator is called as ``G(z, labels=..., boxes=..., **phase)`` and every discriminator as
``D(x, labels=..., boxes=..., **phase)``, where ``phase`` is PGGAN's ``stage``/``alpha`` and empty
for the others. 3D MCGAN inpaints instead (``G(noise-box VOI + conditions)``, two discriminators);
its step lives in training/mcgan_run.py. A generator is rebuilt at generation time from ``(model, generator_kwargs)``
alone, which is what the exported weights file records.
"""

from __future__ import annotations

import torch
from torch import nn

from pathosynth.models.dcgan import DCGANDiscriminator, DCGANGenerator
from pathosynth.models.mcgan3d import MCGANDiscriminators, MCGANGenerator
from pathosynth.models.pggan import PGGANDiscriminator, PGGANGenerator
from pathosynth.models.unet_cgan import PatchGANDiscriminator, UNetCGANGenerator

_GENERATORS = {"dcgan": DCGANGenerator, "wgan": DCGANGenerator, "pggan": PGGANGenerator,
               "unet-cgan": UNetCGANGenerator, "mcgan3d": MCGANGenerator}


def generator_kwargs(config, channels: int, num_classes: int) -> dict:
    if config.model in ("dcgan", "wgan"):
        return dict(resolution=config.resolution, channels=channels, latent_dim=config.latent_dim,
                    width=config.width, num_classes=num_classes)
    if config.model == "pggan":
        return dict(resolution=config.resolution, channels=channels, latent_dim=config.latent_dim,
                    width=config.width, max_width=config.max_width, num_classes=num_classes,
                    box_condition=config.boxes)
    if config.model == "mcgan3d":
        return dict(voi_size=config.resolution, box=config.nodule_box, widths=list(config.unet_widths))
    return dict(resolution=config.resolution, channels=channels, latent_channels=config.latent_dim,
                widths=list(config.unet_widths))


def build_generator(model: str, kwargs: dict) -> nn.Module:
    return _GENERATORS[model](**kwargs)


def build_discriminator(config, channels: int, num_classes: int) -> nn.Module:
    if config.model in ("dcgan", "wgan"):
        return DCGANDiscriminator(resolution=config.resolution, channels=channels, width=config.width,
                                  num_classes=num_classes, spectral_norm=config.spectral_norm)
    if config.model == "pggan":
        return PGGANDiscriminator(resolution=config.resolution, channels=channels, width=config.width,
                                  max_width=config.max_width, num_classes=num_classes,
                                  box_condition=config.boxes)
    if config.model == "mcgan3d":
        return MCGANDiscriminators(voi_size=config.resolution, box=config.nodule_box, width=config.width)
    # PatchGAN depth: as many stride-2 layers as leave at least 1 patch (pix2pix's 3 at 256 px).
    layers = 3 if config.resolution >= 32 else 1
    return PatchGANDiscriminator(channels=channels, width=config.unet_widths[0] * 2, layers=layers)


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
