"""The 2D GAN families' step (DCGAN, WGAN, PGGAN/CPGGAN, the U-Net box GAN): critic updates, then
one generator update reusing the last critic step's fakes; PGGAN's stages and fade-ins.

Every 2D generator is called as ``G(z, labels=..., boxes=..., **phase)`` and every discriminator as
``D(x, labels=..., boxes=..., **phase)``, where ``phase`` is PGGAN's ``stage``/``alpha`` and empty
for the others.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pathosynth.training import distributed
from pathosynth.training.batches import draw_batch
from pathosynth.training.data import load_training_set
from pathosynth.training.ema import standing_statistics
from pathosynth.training.objectives import CriticObjective, augmenter, conditions, generator_loss
from pathosynth.training.samples import COLUMNS, ROWS, grid_labels, grid_latents, to_full_resolution
from pathosynth.training.schedule import growth_phase, real_at_stage
from pathosynth.training.step import GANStep

class ImageGANStep(GANStep):
    loss_names = ("loss_d", "adversarial_d", "gradient_penalty", "drift", "loss_g", "adversarial_g")

    def __init__(self, config, family, data, processes, sampler):
        self.num_classes = len(data.classes) if config.classes == "conditional" else 0
        self.channels = data.images.shape[1]
        self.classes = data.classes if self.num_classes else []
        super().__init__(config, family, data, processes, sampler)
        self.settings = config.family
        self.critic = distributed.wrap(CriticObjective(self.discriminator, self.settings), processes)
        self.augment = augmenter(self.settings)
        self.levels = getattr(self.generator, "levels", 0) if family.grows else 0
        self._fixed_conditions()

    @staticmethod
    def load_data(config, progress: bool) -> Any:
        return load_training_set(config, progress=progress)

    def _fixed_conditions(self) -> None:
        """The grid's latents, labels and box layouts: the same at every grid of the run."""
        n = COLUMNS * ROWS
        self.fixed_z = grid_latents(self.generator, self.config.seed, self.device)
        self.fixed_labels = grid_labels(self.num_classes, self.device)
        self.fixed_boxes, self.fixed_box_lists = None, None
        if self.data.box_images is not None:
            with_boxes = [i for i, b in enumerate(self.data.boxes) if b]
            rng = torch.Generator().manual_seed(self.config.seed)
            picks = [with_boxes[int(i)] for i in torch.randint(len(with_boxes), (n,), generator=rng)]
            self.fixed_boxes = self.data.box_images[picks].to(self.device)
            self.fixed_box_lists = [self.data.boxes[i] for i in picks]
            if self.num_classes:  # each box layout with its own image's class
                self.fixed_labels = self.data.labels[picks].to(self.device)

    def phase(self, step: int) -> dict:
        if not self.family.grows:
            return {}
        stage, alpha = growth_phase(step, self.settings.phase_steps, self.levels)
        return {"stage": stage, "alpha": alpha}

    def __call__(self, step: int) -> torch.Tensor:
        settings, phase = self.settings, self.phase(step)
        self.discriminator.requires_grad_(True)
        for critic_step in range(settings.critic_steps):
            real, labels, boxes = draw_batch(self.data, self.sampler, settings.random_crop, self.device)
            real = real.contiguous(memory_format=self.memory_format)
            labels = labels if self.num_classes else None
            if phase:
                real = real_at_stage(real, 4 * 2 ** phase["stage"], phase["alpha"])
            z = torch.randn(real.shape[0], *self.fixed_z.shape[1:], device=self.device)
            last = critic_step == settings.critic_steps - 1
            # The last critic step's fakes are kept with their graph and reused for G's update
            # (as the DCGAN reference does): one generator forward per step instead of two.
            with torch.set_grad_enabled(last), self.autocast:
                fake = (self.generator_ddp if last else self.generator)(z, **conditions(labels, boxes), **phase)
            with self.autocast:
                d_parts = self.critic(real, fake.detach().float(), labels, boxes, phase)
            self.update_discriminator(d_parts[0])
            if settings.clip:
                with torch.no_grad():
                    for p in self.discriminator.parameters():
                        p.clamp_(-settings.clip, settings.clip)
        self.discriminator.requires_grad_(False)
        with self.autocast:
            g_total, g_adv = generator_loss(settings, self.discriminator, self.augment, fake.float(), real,
                                            labels, boxes, phase)
        self.update_generator(g_total)
        return torch.cat([d_parts.detach().float(), torch.stack([g_total, g_adv]).detach().float()])

    def _forward(self, model: nn.Module, phase: dict) -> torch.Tensor:
        return model(self.fixed_z, **conditions(self.fixed_labels, self.fixed_boxes), **phase)

    def settle(self, model: nn.Module, phase: dict) -> None:
        standing_statistics(model, lambda: self._forward(model, phase))

    def grid(self, model: nn.Module, phase: dict) -> tuple[torch.Tensor, list | None, int | None]:
        with torch.no_grad():
            images = self._forward(model, phase)
        return to_full_resolution(images, self.config.resolution), self.fixed_box_lists, None
