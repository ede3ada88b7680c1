"""Blocks that several GAN families share unchanged."""

from __future__ import annotations

import torch
from torch import nn


class LabelToLatent(nn.Module):
    """Class conditioning for a generator: a learned label embedding appended to the noise.

    With no classes it passes the noise through, so unconditional models use it too.
    """

    def __init__(self, num_classes: int, latent_dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.out_features = latent_dim * (2 if num_classes else 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None:
            return z
        if labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        return torch.cat([z, self.embed(labels)], dim=1)


class ProjectionHead(nn.Module):
    """Class conditioning for a discriminator (Miyato & Koyama 2018): the score gains the inner
    product of a label embedding with the pooled features, instead of the label entering the input.
    """

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, features) if num_classes else None
        if self.embed is not None:
            # Without spectral norm (which the papers' discriminators do not use), nn.Embedding's
            # N(0, 1) makes the projection ~sqrt(features) times larger than the score and
            # saturates the loss from the first step; 1/sqrt(features) keeps it about unit size.
            nn.init.normal_(self.embed.weight, 0.0, features ** -0.5)

    def forward(self, score: torch.Tensor, pooled: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None:
            return score
        if labels is None:
            raise ValueError("this discriminator is class-conditional: pass labels")
        return score + (self.embed(labels) * pooled).sum(dim=1)
