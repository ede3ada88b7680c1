"""One discriminator update's loss and one generator update's loss, for every family.

The critic's whole loss is computed in one module call so that, under DDP, a single forward is
followed by a single backward (the gradient penalty's double backward included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from typing import TYPE_CHECKING

from pathosynth import losses
from pathosynth.training.augment import DiffAugment

if TYPE_CHECKING:
    from pathosynth.models.family import ImageGAN

_D_LOSS = {"nonsaturating": losses.nonsaturating_d, "wasserstein": losses.wasserstein_d,
           "wgan-gp": losses.wasserstein_d, "least-squares": losses.least_squares_d}
_G_LOSS = {"nonsaturating": losses.nonsaturating_g, "wasserstein": losses.wasserstein_g,
           "wgan-gp": losses.wasserstein_g, "least-squares": losses.least_squares_g}


def augmenter(settings: ImageGAN) -> DiffAugment | None:
    return DiffAugment(settings.diffaugment) if settings.diffaugment else None


def augment(augment: DiffAugment | None, images: torch.Tensor, boxes: torch.Tensor | None
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DiffAugment on a batch and its box image. PGGAN's early stages see small images but
    full-resolution box images: augment at full resolution so both move together, then go back."""
    if augment is None:
        return images, boxes
    if boxes is None:
        return augment(images), None
    factor = boxes.shape[-1] // images.shape[-1]
    if factor > 1:
        images = F.interpolate(images, scale_factor=factor, mode="nearest")
    images, boxes = augment(images, boxes)
    return (F.avg_pool2d(images, factor) if factor > 1 else images), boxes


def conditions(labels: torch.Tensor | None, boxes: torch.Tensor | None) -> dict:
    """Keyword conditions for a network call; boxes only for the box-conditioned families."""
    return {"labels": labels} if boxes is None else {"labels": labels, "boxes": boxes}


class CriticObjective(nn.Module):
    """(real, fake, conditions) -> [total, adversarial, gradient penalty, drift] for D's update."""

    def __init__(self, discriminator: nn.Module, settings: ImageGAN):
        super().__init__()
        self.discriminator = discriminator
        self.loss = _D_LOSS[settings.loss]
        self.gp_weight = settings.gp_weight
        self.drift_weight = settings.drift_weight
        self.augment = augmenter(settings)

    def forward(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                boxes: torch.Tensor | None, phase: dict) -> torch.Tensor:
        real_in, real_boxes = augment(self.augment, real, boxes)
        fake_in, fake_boxes = augment(self.augment, fake, boxes)
        real_scores = self.discriminator(real_in, **conditions(labels, real_boxes), **phase).float()
        fake_scores = self.discriminator(fake_in, **conditions(labels, fake_boxes), **phase).float()
        adversarial = self.loss(real_scores, fake_scores)
        zero = adversarial.new_zeros(())
        penalty = drift = zero
        if self.gp_weight:
            with torch.autocast(real.device.type, enabled=False):  # the double backward in float32
                penalty = losses.gradient_penalty(
                    self.discriminator, real.float(), fake.float(), **conditions(labels, boxes), **phase)
        if self.drift_weight:
            drift = losses.drift_penalty(real_scores)
        total = adversarial + self.gp_weight * penalty + self.drift_weight * drift
        return torch.stack([total, adversarial, penalty, drift])


def generator_loss(settings: ImageGAN, discriminator: nn.Module, augment_op: DiffAugment | None,
                   fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor | None,
                   boxes: torch.Tensor | None, phase: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(total, adversarial) for G's update; the U-Net baseline adds pix2pix's L1 to the real image."""
    fake_in, fake_boxes = augment(augment_op, fake, boxes)
    scores = discriminator(fake_in, **conditions(labels, fake_boxes), **phase).float()
    adversarial = _G_LOSS[settings.loss](scores)
    total = adversarial
    if settings.l1_weight:
        total = total + settings.l1_weight * (fake.float() - real.float()).abs().mean()
    return total, adversarial
