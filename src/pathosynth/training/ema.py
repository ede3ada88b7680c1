"""Exponential moving average of the generator's weights (Karras et al.), used for samples and export.

Batch-norm statistics are not averaged: before the EMA generator is used, `standing_statistics`
re-estimates them from its own outputs on a fixed set of latents, so they match the averaged weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        # Ramp the decay up as (1 + step) / (10 + step) early on: a plain 0.999 would keep the
        # random initial weights in the average for thousands of steps, a short run's whole length.
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema, live in zip(self.model.parameters(), model.parameters()):
            ema.lerp_(live.detach(), 1.0 - decay)
        for ema, live in zip(self.model.buffers(), model.buffers()):
            ema.copy_(live)


@torch.no_grad()
def standing_statistics(model: nn.Module, forward: Callable[[], torch.Tensor], batches: int = 8) -> None:
    """Recompute every batch norm's running mean/var as the plain average over `batches` calls of
    `forward` (which must use fixed latents, so the result is deterministic); leaves `model` in eval."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        model.eval()
        return
    saved = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    model.train()
    for m in dropouts:
        m.eval()  # generation runs without dropout, so the statistics must too
    for _ in range(batches):
        forward()
    for norm, momentum in zip(norms, saved):
        norm.momentum = momentum
    model.eval()
