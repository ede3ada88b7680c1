"""DCGAN / WGAN for 64 and 128 px brain MR (METHODS.md section 1, thesis section 3).

The thesis's variant: all filters 4x4, half the usual channel count (32 instead of 64 at the
finest level), no tanh at the generator's output (images are normalised, not clipped to [-1, 1]),
ELU in the discriminator. WGAN uses the same two networks with the Wasserstein loss.
Optionally (beyond the thesis) the discriminator's convolutions are spectrally normalised, which
keeps it from being fooled by a generator that makes one image per class.

Class-conditional forms: the generator gets a learned label embedding concatenated to the
noise; the discriminator is a projection discriminator (Miyato & Koyama 2018), whose score adds
the inner product of a label embedding with its pooled features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pathosynth.models.family import Family, ImageGAN, Loss, require_at_least_one
from pathosynth.training.adversarial import ImageGANStep
from pathosynth.models.layers import LabelToLatent, ProjectionHead


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation (Radford et al.): conv weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _levels(resolution: int) -> int:
    levels = int(math.log2(resolution)) - 2  # 4x4 -> resolution in steps of 2
    if resolution < 8 or 2 ** (levels + 2) != resolution:
        raise ValueError(f"DCGAN resolution must be a power of two >= 8, got {resolution}")
    return levels


class DCGANGenerator(nn.Module):
    def __init__(self, resolution: int = 64, channels: int = 1, latent_dim: int = 100, width: int = 32,
                 num_classes: int = 0):
        super().__init__()
        levels = _levels(resolution)
        self.latent_dim = latent_dim
        self.latent_shape = (latent_dim,)
        self.labels = LabelToLatent(num_classes, latent_dim)
        top = width * 2 ** (levels - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.labels.out_features, top, 4, 1, 0, bias=False),
            nn.BatchNorm2d(top), nn.ReLU(inplace=True)]
        for level in range(levels - 1, 0, -1):
            wide, narrow = width * 2 ** level, width * 2 ** (level - 1)
            layers += [nn.ConvTranspose2d(wide, narrow, 4, 2, 1, bias=False), nn.BatchNorm2d(narrow),
                       nn.ReLU(inplace=True)]
        layers.append(nn.ConvTranspose2d(width, channels, 4, 2, 1))  # linear output: no tanh
        self.net = nn.Sequential(*layers)
        self.net.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.labels(z, labels)[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    def __init__(self, resolution: int = 64, channels: int = 1, width: int = 32, num_classes: int = 0,
                 spectral_norm: bool = False):
        super().__init__()
        levels = _levels(resolution)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.ELU(inplace=True)]
        for level in range(1, levels):
            narrow, wide = width * 2 ** (level - 1), width * 2 ** level
            layers += [nn.Conv2d(narrow, wide, 4, 2, 1, bias=False), nn.BatchNorm2d(wide), nn.ELU(inplace=True)]
        self.features = nn.Sequential(*layers)
        top = width * 2 ** (levels - 1)
        self.score = nn.Conv2d(top, 1, 4, 1, 0)
        self.projection = ProjectionHead(num_classes, top)
        self.features.apply(dcgan_init)
        self.score.apply(dcgan_init)
        if spectral_norm:
            for conv in [m for m in self.modules() if isinstance(m, nn.Conv2d)]:
                nn.utils.parametrizations.spectral_norm(conv)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.features(x)
        return self.projection(self.score(features).flatten(), features.mean(dim=(2, 3)), labels)


# ------------------------------------------------------------------------------------- families

@dataclass
class DCGANConfig(ImageGAN):
    latent_dim: int = 100
    width: int = 32  # channels at the finest level
    # Spectral normalisation on every discriminator convolution (Miyato et al. 2018), beyond the
    # papers: on the brain phantom it cut the small DCGAN's mode collapse (docs/benchmarks.md).
    spectral_norm: bool = False

    def check(self, config) -> None:
        super().check(config)
        require_at_least_one(self, "latent_dim", "width")


@dataclass
class WGANConfig(DCGANConfig):
    loss: Loss = "wasserstein"
    clip: float = 0.01
    critic_steps: int = 5


def _generator_kwargs(config, channels: int, num_classes: int) -> dict:
    return dict(resolution=config.resolution, channels=channels, latent_dim=config.family.latent_dim,
                width=config.family.width, num_classes=num_classes)


def _discriminator(config, channels: int, num_classes: int) -> nn.Module:
    return DCGANDiscriminator(resolution=config.resolution, channels=channels, width=config.family.width,
                              num_classes=num_classes, spectral_norm=config.family.spectral_norm)


_STEPS_NOTE = {"steps": "not stated in the thesis; 100k generator updates"}

# DCGAN of the thesis (section 3): Adam 2e-4, batch 64, half-width filters.
DCGAN = Family(
    name="dcgan", spatial_dims=2, config=DCGANConfig, step=ImageGANStep, generator_class=DCGANGenerator,
    generator_kwargs=_generator_kwargs, discriminator=_discriminator,
    training=dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
    presets={"paper": dict(resolution=128, width=32, batch=64, steps=100_000, notes=_STEPS_NOTE),
             "small": dict(resolution=64, width=32, batch=32, steps=3000, sample_every=500, checkpoint_every=500,
                           diffaugment="translation,cutout")})

# WGAN of the thesis: same networks, RMSprop 5e-5, weight clipping, 5 critic steps.
WGAN = Family(
    name="wgan", spatial_dims=2, config=WGANConfig, step=ImageGANStep, generator_class=DCGANGenerator,
    generator_kwargs=_generator_kwargs, discriminator=_discriminator,
    training=dict(optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5),
    presets={"paper": dict(resolution=128, width=32, batch=64, steps=100_000, notes=_STEPS_NOTE),
             "small": dict(resolution=64, width=32, batch=32, steps=1000, sample_every=250, checkpoint_every=250)})
