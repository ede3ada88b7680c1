"""A family's training step: what one update does, which the one loop (`loop.py`) calls.

The division follows StyleGAN/EDM's `Loss.accumulate_gradients`: the step owns its networks, its
optimizers, its objective, what one update does, and the fixed conditions its sample grid shows;
the loop and the run (`run.py`) own the step counter, the batch order, EMA, checkpoints, grids,
logging, the NaN stop, signals and the process group. A family names its step class in its
declaration (`models/family.py`).

This module must not import `pathosynth.models` or `pathosynth.config`: the family files import it.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pathosynth.training import distributed
from pathosynth.training.batches import BatchSampler

if TYPE_CHECKING:
    from pathosynth.config import TrainConfig
    from pathosynth.models.family import Family


class TrainingStep:
    """The base every family's step derives from; `GANStep` adds a generator and a discriminator."""

    loss_names: tuple[str, ...] = ()
    generator: nn.Module  # what the loop keeps an EMA of, grids and exports
    generator_kwargs: dict  # the recipe generation rebuilds the generator from
    classes: list[str]  # the class labels the generator is conditioned on ([] if none)

    def __init__(self, config: TrainConfig, family: Family, data: Any, processes: Any, sampler: BatchSampler):
        self.config, self.family, self.data, self.processes, self.sampler = config, family, data, processes, sampler
        self.device = processes.device
        self.cuda = self.device.type == "cuda"
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if (self.cuda and config.amp)
                         else nullcontext())

    @staticmethod
    def load_data(config: TrainConfig, progress: bool) -> Any:
        """The training set this step draws from (with `images`: the sampler counts its rows)."""
        raise NotImplementedError

    def parts(self) -> dict[str, Any]:
        """Every module and optimizer a checkpoint holds, by its key in the checkpoint."""
        raise NotImplementedError

    def learning_rates(self) -> dict[str, float]:
        """Each optimizer's learning rate from the config: a resumed run may lower it."""
        raise NotImplementedError

    def __call__(self, step: int) -> torch.Tensor:
        """One update at `step`; returns the losses named by `loss_names`, detached."""
        raise NotImplementedError

    @property
    def passes_per_step(self) -> int:
        """Batches through the networks per step, for the throughput the log reports."""
        return 1

    def progress_text(self, record: dict) -> str:
        """The progress bar's summary of a stats record."""
        return f"{self.loss_names[0]} {record[self.loss_names[0]]:.3f} {record['images_per_s']:.1f} img/s"

    def phase(self, step: int) -> dict:
        """Keyword arguments the generator needs at `step` (PGGAN: stage and fade-in)."""
        return {}

    def settle(self, model: nn.Module, phase: dict) -> None:
        """Fix `model`'s (the EMA generator's) batch-norm statistics on the grid's conditions."""
        raise NotImplementedError

    def grid(self, model: nn.Module, phase: dict) -> tuple[torch.Tensor, list | None, int | None]:
        """The sample grid's images (N, C, H, W) from `model`, their boxes, and the grid's columns."""
        raise NotImplementedError

    def export_extras(self) -> dict:
        """What generation needs beyond the weights and the recipe (e.g. MCGAN's VOI geometry)."""
        return {}


class GANStep(TrainingStep):
    """A generator and a discriminator built from the family's declaration, each with its optimizer."""

    channels: int = 1
    num_classes: int = 0

    def __init__(self, config: TrainConfig, family: Family, data: Any, processes: Any, sampler: BatchSampler):
        super().__init__(config, family, data, processes, sampler)
        self.generator_kwargs = family.generator_kwargs(config, self.channels, self.num_classes)
        self.generator = family.generator_class(**self.generator_kwargs).to(self.device)
        assert family.discriminator is not None, f"{family.name} declares no discriminator"
        self.discriminator = family.discriminator(config, self.channels, self.num_classes).to(self.device)
        self.memory_format = self._memory_format()
        self.generator.to(memory_format=self.memory_format)
        self.discriminator.to(memory_format=self.memory_format)
        self.opt_g = optimizer(config, self.generator.parameters(), config.lr_g)
        self.opt_d = optimizer(config, self.discriminator.parameters(), config.lr_d)
        self.generator_ddp = distributed.wrap(self.generator, processes)

    def _memory_format(self) -> torch.memory_format:
        if not (self.cuda and self.config.channels_last):
            return torch.contiguous_format
        return torch.channels_last_3d if self.family.spatial_dims == 3 else torch.channels_last

    @property
    def passes_per_step(self) -> int:
        return self.config.family.critic_steps + 1  # critic updates, then one generator update

    def progress_text(self, record: dict) -> str:
        return f"D {record['loss_d']:.3f} G {record['loss_g']:.3f} {record['images_per_s']:.1f} img/s"

    def parts(self) -> dict[str, Any]:
        return {"generator": self.generator, "discriminator": self.discriminator, "opt_g": self.opt_g,
                "opt_d": self.opt_d}

    def learning_rates(self) -> dict[str, float]:
        return {"opt_g": self.config.lr_g, "opt_d": self.config.lr_d}

    def update_discriminator(self, loss: torch.Tensor) -> None:
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()

    def update_generator(self, loss: torch.Tensor) -> None:
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()


def optimizer(config: TrainConfig, params, lr: float) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=config.betas, eps=1e-8)
