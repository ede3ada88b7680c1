"""Image-to-image GAN: the CPGGAN paper's baseline (METHODS.md section 3), pix2pix-style.

"Image-to-image GAN = conditional GAN with a U-Net-like generator", conditioned on the same box
image as CPGGAN (``data.boxes.box_image``: 1 inside the boxes, 0 elsewhere). Built from MONAI's
networks rather than our own layers:

- generator: ``monai.networks.nets.UNet`` (strided 3x3 convolutions down, transposed 3x3
  convolutions up, skip connections, batch norm). As in pix2pix, the encoder uses LeakyReLU 0.2
  without dropout and the decoder ReLU with dropout (every decoder layer but the last, which is
  MONAI's linear output convolution: no activation, no tanh). Its input is the box image
  concatenated channel-wise with a noise map ``z`` of shape (N, latent_channels, R, R) (R, R, R
  in 3D). Randomness comes from both: the noise map (pix2pix found G learns to ignore it, which
  is why it added dropout) and the decoder's dropout, active in ``train()`` mode only. In
  ``eval()`` mode the output is a deterministic function of (z, boxes).
- discriminator: ``monai.networks.nets.PatchDiscriminator``, which with its defaults is pix2pix's
  70x70 PatchGAN (4x4 convolutions, ``layers`` stride-2 ones, then a stride-1 one and a 1-channel
  4x4 output convolution; LeakyReLU 0.2, batch norm). It judges the image concatenated with the
  box image and returns one logit per patch, flattened to (N, P): the losses in
  ``pathosynth.losses`` take ``.mean()``, so they average over patches and batch as pix2pix does,
  and ``gradient_penalty`` differentiates ``scores.sum()``, which works for (N, P) too.

Labels are accepted for interface compatibility with the other families and ignored: this
baseline is box-conditional only. Both networks work in 2D and 3D (``spatial_dims``, MONAI style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from monai.networks.nets import PatchDiscriminator, UNet
from torch import nn

from pathosynth.errors import UserError
from pathosynth.models.family import Family, ImageGAN
from pathosynth.training.adversarial import ImageGANStep

LEAKY = ("LEAKYRELU", {"negative_slope": 0.2})


def _check_spatial_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return spatial_dims


def _check_boxes(boxes: torch.Tensor | None, shape: tuple[int, ...], batch: int) -> torch.Tensor:
    if boxes is None:
        raise ValueError("this network is box-conditional (image-to-image GAN): pass boxes")
    if boxes.dim() != 2 + len(shape) or boxes.shape[0] != batch or boxes.shape[1] != 1 \
            or tuple(boxes.shape[2:]) != shape:
        raise ValueError(f"boxes must be a ({batch}, 1, {', '.join(map(str, shape))}) box image, "
                         f"got {tuple(boxes.shape)}")
    return boxes


class _Pix2PixUNet(UNet):
    """MONAI's UNet with pix2pix's split: encoder (and bottom) LeakyReLU 0.2 without dropout,
    decoder ReLU with the given dropout. Built with ``act=LEAKY`` and the decoder's dropout."""

    def _get_down_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        dropout, self.dropout = self.dropout, 0.0
        try:
            return super()._get_down_layer(in_channels, out_channels, strides, is_top)
        finally:
            self.dropout = dropout

    def _get_up_layer(self, in_channels: int, out_channels: int, strides: int, is_top: bool) -> nn.Module:
        act, self.act = self.act, "RELU"
        try:
            return super()._get_up_layer(in_channels, out_channels, strides, is_top)
        finally:
            self.act = act


class UNetCGANGenerator(nn.Module):
    """Box image + noise map -> image, (N, channels, R, R) (R, R, R in 3D).

    ``widths`` are the U-Net's channels per level, top first; there are ``len(widths) - 1``
    stride-2 downsamplings, so ``resolution`` must be divisible by ``2 ** (len(widths) - 1)``.
    ``dropout`` is the decoder's dropout (pix2pix: 0.5). ``latent_channels`` may be 0: then the
    only randomness is dropout, as in pix2pix, and ``z`` may be None.
    """

    def __init__(self, resolution: int, channels: int = 1, spatial_dims: int = 2, latent_channels: int = 1,
                 widths: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.5):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2:
            raise ValueError(f"widths needs at least 2 levels, got {widths}")
        factor = 2 ** (len(widths) - 1)
        if resolution < factor or resolution % factor:
            raise ValueError(f"resolution must be a positive multiple of 2**{len(widths) - 1} = {factor} "
                             f"({len(widths) - 1} downsamplings), got {resolution}")
        if latent_channels < 0:
            raise ValueError(f"latent_channels must be >= 0, got {latent_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.resolution = resolution
        self.channels = channels
        self.latent_channels = latent_channels
        self.unet = _Pix2PixUNet(
            spatial_dims=spatial_dims, in_channels=1 + latent_channels, out_channels=channels,
            channels=widths, strides=(2,) * (len(widths) - 1), kernel_size=3, up_kernel_size=3,
            num_res_units=0, act=LEAKY, norm="BATCH", dropout=dropout)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.resolution,) * self.spatial_dims

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_channels, *self.shape)

    def noise(self, batch: int, generator: torch.Generator | None = None,
              device: torch.device | str | None = None) -> torch.Tensor:
        """A standard normal noise map, (batch, latent_channels, R, R) (R, R, R in 3D)."""
        return torch.randn(batch, self.latent_channels, *self.shape, generator=generator, device=device)

    def forward(self, z: torch.Tensor | None, labels: torch.Tensor | None = None,
                boxes: torch.Tensor | None = None) -> torch.Tensor:
        batch = boxes.shape[0] if boxes is not None else (z.shape[0] if z is not None else 0)
        boxes = _check_boxes(boxes, self.shape, batch)
        if self.latent_channels:
            expected = (batch, self.latent_channels, *self.shape)
            if z is None or tuple(z.shape) != expected:
                raise ValueError(f"z must be a noise map of shape {expected} (see noise()), "
                                 f"got {None if z is None else tuple(z.shape)}")
            x = torch.cat([boxes.to(z.dtype), z], dim=1)
        else:
            x = boxes
        return self.unet(x)


class PatchGANDiscriminator(nn.Module):
    """(image, box image) -> per-patch logits, (N, P).

    ``width`` is the first layer's channels (doubled per layer), ``layers`` MONAI's
    ``num_layers_d``: ``layers`` stride-2 convolutions, so a side of S pixels gives
    P = (S // 2**layers - 2) ** spatial_dims patches (layers=3 is pix2pix's 70x70 PatchGAN:
    S=256 gives 30x30). Sides too small for that raise ValueError.
    """

    def __init__(self, channels: int = 1, spatial_dims: int = 2, width: int = 32, layers: int = 3):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.channels = channels
        self.layers = layers
        self.net = PatchDiscriminator(
            spatial_dims=spatial_dims, channels=width, in_channels=channels + 1, out_channels=1,
            num_layers_d=layers, kernel_size=4, activation=LEAKY, norm="BATCH", bias=False, padding=1,
            dropout=0.0)

    def patches(self, size: int) -> int:
        """Per-patch logits along one side for an input side of ``size`` pixels (0 if too small)."""
        for _ in range(self.layers):
            size //= 2  # 4x4, stride 2, padding 1
        return max(size - 2, 0)  # the stride-1 4x4 layer and the 4x4 output layer each take one

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                boxes: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 + self.spatial_dims or x.shape[1] != self.channels:
            raise ValueError(f"x must be (N, {self.channels}, {'S, ' * (self.spatial_dims - 1)}S), "
                             f"got {tuple(x.shape)}")
        shape = tuple(x.shape[2:])
        boxes = _check_boxes(boxes, shape, x.shape[0])
        if min(self.patches(s) for s in shape) < 1:
            smallest = 3 * 2 ** self.layers
            raise ValueError(f"a {self.layers}-layer PatchGAN needs sides >= {smallest}, got {shape}")
        # MONAI returns the intermediate features followed by the output: keep the output.
        return self.net(torch.cat([x, boxes.to(x.dtype)], dim=1))[-1].flatten(1)


# --------------------------------------------------------------------------------------- family

@dataclass
class UNetCGANConfig(ImageGAN):
    l1_weight: float = 100.0
    latent_dim: int = 1  # noise channels beside the box image
    unet_widths: tuple[int, ...] = (16, 32, 64, 128)  # the generator's channels per level

    def check(self, config) -> None:
        super().check(config)
        if not config.boxes:
            raise UserError("unet-cgan turns box images into images: it needs --boxes")
        if config.classes == "conditional":
            raise UserError("unet-cgan is conditioned on boxes only; use --classes separate or none")
        if config.resolution % 2 ** (len(self.unet_widths) - 1):
            raise UserError(f"resolution {config.resolution} is too small for a U-Net of {len(self.unet_widths)} "
                            "levels")


def _generator_kwargs(config, channels: int, num_classes: int) -> dict:
    return dict(resolution=config.resolution, channels=channels, latent_channels=config.family.latent_dim,
                widths=list(config.family.unet_widths))


def _discriminator(config, channels: int, num_classes: int) -> nn.Module:
    # PatchGAN depth: as many stride-2 layers as leave at least 1 patch (pix2pix's 3 at 256 px).
    layers = 3 if config.resolution >= 32 else 1
    return PatchGANDiscriminator(channels=channels, width=config.family.unet_widths[0] * 2, layers=layers)


# pix2pix-style image-to-image baseline: non-saturating + L1, Adam 2e-4 (0.5, 0.999).
UNET_CGAN = Family(
    name="unet-cgan", spatial_dims=2, config=UNetCGANConfig, step=ImageGANStep, generator_class=UNetCGANGenerator,
    generator_kwargs=_generator_kwargs, discriminator=_discriminator, boxes="required",
    training=dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), boxes=True, classes="none"),
    presets={"paper": dict(resolution=256, unet_widths=(64, 128, 256, 512, 512), batch=1, steps=200_000,
                           notes={"steps": "not stated in the thesis; pix2pix-like schedule"}),
             "small": dict(resolution=64, unet_widths=(16, 32, 64, 128), batch=16, steps=1500, sample_every=500,
                           checkpoint_every=500)})
