"""Progressive-growing GAN (PGGAN) and its conditional forms (METHODS.md sections 2, 3, 5).

Karras et al. 2018, as used by the thesis: the networks grow from 4x4 to the full resolution one
stage at a time, each new stage faded in smoothly. Its parts: equalised learning rate (weights
stored N(0, 1), scaled at runtime by He's constant), pixel-wise feature normalisation in G,
minibatch standard deviation in D's last block, LeakyReLU 0.2, 1x1 toRGB/fromRGB per stage,
nearest upsampling, average-pool downsampling, and a linear output (no tanh).

Conditional forms, which can be combined:
- class-conditional (section 5, physician training): G concatenates a learned label embedding to
  the noise; D is a projection discriminator, as in dcgan.py;
- CPGGAN (section 3, detection): a box image (0 outside, 1 inside the boxes) is resized to every
  stage's resolution and concatenated channel-wise to that stage's input in G (the noise still
  makes the first 4x4), and concatenated to the image at D's input.

Networks only: the training loop (WGAN-GP, growing schedule) lives elsewhere. A generator and a
discriminator built with the same arguments are meant to be used with the same ``stage``/``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pathosynth.models.family import Family, ImageGAN, Loss, require_at_least_one
from pathosynth.training.adversarial import ImageGANStep
from pathosynth.models.layers import LabelToLatent, ProjectionHead

LEAKY_SLOPE = 0.2


def _levels(resolution: int) -> int:
    """Number of stages above 4x4, so the stages are 4 * 2**0 .. 4 * 2**levels."""
    levels = int(math.log2(resolution)) - 2 if resolution >= 1 else -1
    if levels < 0 or 2 ** (levels + 2) != resolution:
        raise ValueError(f"PGGAN resolution must be a power of two >= 4, got {resolution}")
    return levels


def _stage_widths(levels: int, width: int, max_width: int) -> list[int]:
    # Narrowest at the top stage, doubling per stage down, capped: the full-resolution stages are
    # the expensive ones, so they get the fewest channels.
    return [min(max_width, width * 2 ** (levels - stage)) for stage in range(levels + 1)]


class EqualizedLinear(nn.Module):
    """Linear layer with the equalised learning rate: weights N(0, 1), scaled by gain/sqrt(fan_in).

    Scaling at runtime rather than at init keeps every weight's effective step size the same
    under Adam, whatever the layer's fan-in.
    """

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """Conv layer with the equalised learning rate (see EqualizedLinear); 'same' padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit mean square: stops G's magnitudes escalating."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MinibatchStd(nn.Module):
    """Append one channel: the std over the batch of each feature at each pixel, averaged.

    It lets D see the batch's variety, so a generator that collapses to few modes is caught.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(x.var(dim=0, unbiased=False) + 1e-8).mean()
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


def _conv_block(in_channels: int, out_channels: int, pixel_norm: bool) -> list[nn.Module]:
    layers = [EqualizedConv2d(in_channels, out_channels, 3), nn.LeakyReLU(LEAKY_SLOPE)]
    return layers + [PixelNorm()] if pixel_norm else layers


def _check_stage(stage: int | None, levels: int, alpha: float) -> int:
    stage = levels if stage is None else stage
    if not 0 <= stage <= levels:
        raise ValueError(f"stage must be in 0..{levels}, got {stage}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return stage


def _resized_boxes(boxes: torch.Tensor | None, resolution: int, size: int) -> torch.Tensor:
    if boxes is None:
        raise ValueError("this network is box-conditional (CPGGAN): pass boxes")
    if boxes.dim() != 4 or boxes.shape[1] != 1 or tuple(boxes.shape[2:]) != (resolution, resolution):
        raise ValueError(f"boxes must be a (N, 1, {resolution}, {resolution}) box image, "
                         f"got {tuple(boxes.shape)}")
    # Area resizing: a pixel's value is the fraction of it covered by boxes.
    return F.avg_pool2d(boxes, resolution // size) if size < resolution else boxes


class PGGANGenerator(nn.Module):
    def __init__(self, resolution: int = 256, channels: int = 1, latent_dim: int = 512, width: int = 16,
                 max_width: int = 512, num_classes: int = 0, box_condition: bool = False):
        super().__init__()
        self.levels = _levels(resolution)
        self.resolution = resolution
        self.latent_dim = latent_dim
        self.latent_shape = (latent_dim,)
        self.box_condition = box_condition
        widths = _stage_widths(self.levels, width, max_width)
        extra = 1 if box_condition else 0  # the box image's channel at every stage's input
        self.labels = LabelToLatent(num_classes, latent_dim)
        # Noise -> 4x4 features: a dense layer is the paper's 4x4 convolution on a 1x1 input.
        self.stem = EqualizedLinear(self.labels.out_features, widths[0] * 16)
        self.stem_act = nn.Sequential(nn.LeakyReLU(LEAKY_SLOPE), PixelNorm())
        blocks = [nn.Sequential(*_conv_block(widths[0] + extra, widths[0], True))]
        for stage in range(1, self.levels + 1):
            blocks.append(nn.Sequential(*_conv_block(widths[stage - 1] + extra, widths[stage], True),
                                        *_conv_block(widths[stage], widths[stage], True)))
        self.blocks = nn.ModuleList(blocks)
        # toRGB is linear (gain 1): the output is an image, not an activation.
        self.to_rgb = nn.ModuleList(EqualizedConv2d(w, channels, 1, gain=1.0) for w in widths)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                stage: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        stage = _check_stage(stage, self.levels, alpha)
        z = self.labels(z, labels)
        if self.box_condition:
            _resized_boxes(boxes, self.resolution, self.resolution)  # fail early on missing/bad boxes
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # the paper normalises the latent
        x = self.stem_act(self.stem(z).view(z.shape[0], -1, 4, 4))
        previous = x
        for index in range(stage + 1):
            if index > 0:
                previous = x
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            if self.box_condition:
                x = torch.cat([x, _resized_boxes(boxes, self.resolution, x.shape[-1])], dim=1)
            x = self.blocks[index](x)
        image = self.to_rgb[stage](x)
        if stage > 0 and alpha < 1.0:
            # Fade-in: the new stage's RGB is blended in over the previous stage's, upsampled.
            old = F.interpolate(self.to_rgb[stage - 1](previous), scale_factor=2, mode="nearest")
            image = (1.0 - alpha) * old + alpha * image
        return image


class PGGANDiscriminator(nn.Module):
    def __init__(self, resolution: int = 256, channels: int = 1, width: int = 16, max_width: int = 512,
                 num_classes: int = 0, box_condition: bool = False):
        super().__init__()
        self.levels = _levels(resolution)
        self.resolution = resolution
        self.box_condition = box_condition
        widths = _stage_widths(self.levels, width, max_width)
        in_channels = channels + (1 if box_condition else 0)  # image + box image
        self.from_rgb = nn.ModuleList(
            nn.Sequential(EqualizedConv2d(in_channels, w, 1), nn.LeakyReLU(LEAKY_SLOPE)) for w in widths)
        # blocks[s] takes stage s's resolution down to stage s-1's; blocks[0] is the last block.
        blocks = [nn.Sequential(MinibatchStd(), *_conv_block(widths[0] + 1, widths[0], False))]
        for stage in range(1, self.levels + 1):
            blocks.append(nn.Sequential(*_conv_block(widths[stage], widths[stage], False),
                                        *_conv_block(widths[stage], widths[stage - 1], False),
                                        nn.AvgPool2d(2)))
        self.blocks = nn.ModuleList(blocks)
        # The paper's 4x4 valid convolution on the 4x4 map is this dense layer.
        self.dense = nn.Sequential(nn.Flatten(), EqualizedLinear(widths[0] * 16, widths[0]),
                                   nn.LeakyReLU(LEAKY_SLOPE))
        self.score = EqualizedLinear(widths[0], 1, gain=1.0)
        self.projection = ProjectionHead(num_classes, widths[0])

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                stage: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        stage = _check_stage(stage, self.levels, alpha)
        size = 4 * 2 ** stage
        if tuple(x.shape[-2:]) != (size, size):
            raise ValueError(f"stage {stage} takes {size}x{size} images, got {tuple(x.shape[-2:])}")
        if self.box_condition:
            x = torch.cat([x, _resized_boxes(boxes, self.resolution, size)], dim=1)
        h = self.blocks[stage](self.from_rgb[stage](x))
        if stage > 0 and alpha < 1.0:
            # Fade-in, mirroring G: the downsampled input through the previous stage's fromRGB.
            old = self.from_rgb[stage - 1](F.avg_pool2d(x, 2))
            h = (1.0 - alpha) * old + alpha * h
        for index in range(stage - 1, -1, -1):
            h = self.blocks[index](h)
        features = self.dense(h)
        return self.projection(self.score(features).flatten(), features, labels)


# --------------------------------------------------------------------------------------- family

@dataclass
class PGGANConfig(ImageGAN):
    loss: Loss = "wgan-gp"
    gp_weight: float = 10.0
    drift_weight: float = 1e-3
    latent_dim: int = 512
    width: int = 16  # channels at the full-resolution stage
    max_width: int = 512  # cap on the coarse stages' channels
    phase_steps: int = 0  # steps per fade-in and per stabilisation phase (0: no growing)

    def check(self, config) -> None:
        super().check(config)
        require_at_least_one(self, "latent_dim", "width", "max_width")


def _generator_kwargs(config, channels: int, num_classes: int) -> dict:
    own = config.family
    return dict(resolution=config.resolution, channels=channels, latent_dim=own.latent_dim,
                width=own.width, max_width=own.max_width, num_classes=num_classes,
                box_condition=config.boxes)


def _discriminator(config, channels: int, num_classes: int) -> nn.Module:
    own = config.family
    return PGGANDiscriminator(resolution=config.resolution, channels=channels, width=own.width,
                              max_width=own.max_width, num_classes=num_classes, box_condition=config.boxes)


# PGGAN (section 4): WGAN-GP with drift, Adam 1e-3 (0, 0.99); with --boxes, CPGGAN (section 3).
PGGAN = Family(
    name="pggan", spatial_dims=2, config=PGGANConfig, step=ImageGANStep, generator_class=PGGANGenerator,
    generator_kwargs=_generator_kwargs, discriminator=_discriminator, boxes="optional", grows=True,
    training=dict(optimizer="adam", lr_g=1e-3, lr_d=1e-3, betas=(0.0, 0.99)),
    presets={
        # 100 epochs of the paper's 8,429 training images at batch 16 = 52,681 steps, over the 13
        # phases of growing 4 -> 256 (stage 4x4, then a fade-in and a stabilisation per doubling).
        "paper": dict(resolution=256, width=64, max_width=512, latent_dim=512, batch=16, steps=52_681,
                      phase_steps=4_053, random_crop=15, classes="separate",
                      notes={"steps": "100 epochs x 8,429 images / batch 16 (two-step GAN paper)"}),
        # Narrow channels: a full-width PGGAN is unusable on a CPU.
        "small": dict(resolution=64, width=16, max_width=64, latent_dim=64, batch=16, steps=2400, phase_steps=240,
                      random_crop=4, sample_every=400, checkpoint_every=400),
        "tiny": dict(phase_steps=1)},
    # CPGGAN (section 3) differs from the two-step PGGAN in batch, learning rate and length.
    box_presets={"paper": dict(batch=4, lr_g=2e-4, lr_d=2e-4, steps=3_000_000, phase_steps=230_769,
                               classes="none",
                               notes={"steps": "3,000,000 steps, batch 4, Adam 2e-4 (thesis section 5)"})})
