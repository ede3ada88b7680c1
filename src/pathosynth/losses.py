"""GAN objectives as plain functions of discriminator outputs (METHODS.md sections 1-5).

Each `*_d` returns the discriminator's loss, each `*_g` the generator's; both are means over the
batch. Penalties take the critic itself because they differentiate through it.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F


def nonsaturating_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """DCGAN: -log D(x) - log(1 - D(G(z))) on logits, written with softplus to stay finite."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def nonsaturating_g(fake: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)): strong gradients early, when D rejects every sample (Goodfellow et al.)."""
    return F.softplus(-fake).mean()


def wasserstein_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return fake.mean() - real.mean()


def wasserstein_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def least_squares_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN with targets 1 (real) and 0 (fake): the 3D MCGAN context discriminator's loss."""
    return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())


def least_squares_g(fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (fake - 1).pow(2).mean()


def gradient_penalty(critic: Callable[..., torch.Tensor], real: torch.Tensor, fake: torch.Tensor, *,
                     generator: torch.Generator | None = None, **conditions) -> torch.Tensor:
    """WGAN-GP: mean of (||grad of the critic at a random real/fake mix|| - 1)^2, unweighted.

    Keyword conditions (``labels=``, ``boxes=``, ``stage=``, ``alpha=``) go to the critic unchanged,
    by name, so each lands in its own argument: only the image is mixed.
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    mix = torch.rand(shape, device=real.device, dtype=real.dtype, generator=generator)
    points = (mix * real.detach() + (1 - mix) * fake.detach()).requires_grad_(True)
    scores = critic(points, **conditions)
    (grad,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def drift_penalty(real: torch.Tensor) -> torch.Tensor:
    """PGGAN's drift term, mean of D(x)^2 (weighted by 1e-3 in the paper): keeps scores near 0."""
    return real.pow(2).mean()
