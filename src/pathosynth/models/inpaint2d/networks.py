"""Networks of the 2D lesion inpainter, sized for a CPU.

Painter: a U-Net that runs at half resolution (the 2x2 pixels folded into channels), whose
features are upsampled and joined by a thin full-resolution head that also sees the full-resolution
input, for per-pixel detail (noise grain, thin enhancing rims). Input channels: the patch with the
hole set to 0, the hole, one channel per lesion label (e.g. BraTS oedema, enhancing rim, core),
noise in the hole. Output: the patch in [0, 1]. Full-resolution 3x3 convolutions cost the most on a
CPU; folding them into the half-resolution body made a step ~4x cheaper. (A PixelShuffle output
instead of the head drew a 2x2 checkerboard.)
Discriminator: a PatchGAN with spectral normalisation on (patch, hole, labels), so it judges
whether the painted tissue fits its labels and its surroundings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

def input_channels(labels: int) -> int:
    return 3 + labels  # patch with hole, hole, one channel per label, noise


def _block(cin: int, cout: int) -> nn.Sequential:
    # group norm: stable at the small batches a CPU affords
    groups = min(8, cout // 4)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.LeakyReLU(0.2, True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.LeakyReLU(0.2, True))


class _UNet(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...], cout: int):
        super().__init__()
        self.first = _block(cin, widths[0])
        self.downs = nn.ModuleList(nn.Conv2d(a, a, 4, stride=2, padding=1) for a in widths[:-1])
        self.encoders = nn.ModuleList(_block(a, b) for a, b in zip(widths[:-1], widths[1:]))
        backwards = widths[::-1]
        self.ups = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(backwards[:-1], backwards[1:]))
        self.decoders = nn.ModuleList(_block(2 * b, b) for b in backwards[1:])
        self.last = nn.Conv2d(widths[0], cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.first(x)]
        h = skips[0]
        for down, encoder in zip(self.downs, self.encoders):
            h = encoder(down(h))
            skips.append(h)
        for up, decoder, skip in zip(self.ups, self.decoders, skips[-2::-1]):
            h = decoder(torch.cat([up(F.interpolate(h, scale_factor=2, mode="nearest")), skip], 1))
        return self.last(h)


class LesionPainter(nn.Module):
    def __init__(self, patch: int = 96, labels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 192),
                 head: int = 16):
        super().__init__()
        if patch % (2 ** len(widths)):
            raise ValueError(f"patch {patch} must be divisible by {2 ** len(widths)}")
        self.patch, self.labels = patch, labels
        cin = input_channels(labels)
        self.fold = nn.PixelUnshuffle(2)
        self.body = _UNet(cin * 4, tuple(widths), head)
        self.head = nn.Sequential(nn.Conv2d(head + cin, head, 3, padding=1), nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(head, 1, 3, padding=1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, 3 + labels, P, P) inputs -> the painted patch in [0, 1], (N, 1, P, P)."""
        h = F.interpolate(self.body(self.fold(inputs)), scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.head(torch.cat([F.leaky_relu(h, 0.2), inputs], 1)))


class PatchDiscriminator(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 192), cin: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        for i, width in enumerate(widths):
            layers += [spectral_norm(nn.Conv2d(cin, width, 4, stride=2 if i < 3 else 1, padding=1)),
                       nn.LeakyReLU(0.2, True)]
            cin = width
        layers.append(spectral_norm(nn.Conv2d(cin, 1, 4, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
