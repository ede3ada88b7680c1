"""3D MCGAN's step inside the one training loop (METHODS.md section 4).

Everything but the step is the loop's: checkpoints, resume, EMA, NaN stop, DDP, logging. A step:
the training VOIs (flipped at random) get their central nodule box replaced by noise; the
generator, given that and the six condition channels, inpaints the box; the composite (real
surroundings, generated box) goes to the context discriminator (least squares, paired with the
generator's input as in pix2pix: the noise-box VOI and the conditions; targets swapped once in
three as the paper does) and the box alone, with its conditions, to the nodule discriminator
(WGAN-GP). Every random draw (flips, noise, swaps,
dropout) comes from the torch RNG that the checkpoint keeps, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pathosynth import losses
from pathosynth.data.nodules import ATTENUATIONS, SIZES
from pathosynth.models.mcgan3d.networks import (MCGANDiscriminators, centre_slices, condition_vector,
                                                generator_input, noise_box_input, paste_centre)
from pathosynth.training import distributed
from pathosynth.training.ema import standing_statistics
from pathosynth.training.step import GANStep
from pathosynth.training.vois import load_voi_set

GRID_CONTEXTS = 4  # grid rows: training VOIs; columns: the nine size x attenuation conditions
GRID_SEED = 1_000_003


class MCGANCritic(nn.Module):
    """Both discriminators' losses for one update, as one module so that DDP syncs them together."""

    def __init__(self, discriminators: MCGANDiscriminators, gp_weight: float):
        super().__init__()
        self.discriminators = discriminators
        self.gp_weight = gp_weight

    def forward(self, given, real_voi, fake_voi, real_box, fake_box, conditions, swap: bool):
        context, nodule = self.discriminators.context, self.discriminators.nodule
        real_scores, fake_scores = context(given, real_voi).float(), context(given, fake_voi).float()
        if swap:  # the paper's label flipping: real judged as synthetic and vice versa, this step
            real_scores, fake_scores = fake_scores, real_scores
        context_loss = losses.least_squares_d(real_scores, fake_scores)
        nodule_loss = losses.wasserstein_d(nodule(real_box, conditions).float(), nodule(fake_box, conditions).float())
        with torch.autocast(real_voi.device.type, enabled=False):  # the double backward in float32
            penalty = losses.gradient_penalty(lambda x: nodule(x, conditions), real_box.float(), fake_box.float())
        total = context_loss + nodule_loss + self.gp_weight * penalty
        return torch.stack([total, context_loss, nodule_loss, penalty])


class MCGANStep(GANStep):
    loss_names = ("loss_d", "context_d", "nodule_d", "gradient_penalty", "loss_g", "context_g", "nodule_g", "l1")
    classes: list[str] = []

    def __init__(self, config, family, data, processes, sampler):
        super().__init__(config, family, data, processes, sampler)
        self.settings = config.family
        self.critic = distributed.wrap(MCGANCritic(self.discriminator, self.settings.gp_weight), processes)
        self.centre = (slice(None), slice(None)) + centre_slices(config.resolution, self.settings.nodule_box, 3)
        self._fixed_conditions()

    @staticmethod
    def load_data(config, progress: bool) -> Any:
        return load_voi_set(config, progress=progress)

    def _fixed_conditions(self) -> None:
        """The grid: four training VOIs, each inpainted under the nine conditions."""
        picks = torch.randint(len(self.data.images), (GRID_CONTEXTS,),
                              generator=torch.Generator().manual_seed(self.config.seed))
        contexts = self.data.images[picks].repeat_interleave(len(SIZES) * len(ATTENUATIONS), dim=0)
        vectors = torch.stack([condition_vector(s, a) for s in SIZES for a in ATTENUATIONS])
        self.fixed_conditions = vectors.repeat(GRID_CONTEXTS, 1).to(self.device)
        noise = torch.Generator().manual_seed(GRID_SEED)
        self.fixed_input = generator_input(
            noise_box_input(contexts, self.settings.nodule_box, generator=noise).to(self.device),
            self.fixed_conditions)
        self.fixed_contexts = contexts.to(self.device)

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        indices = self.sampler.next_indices()
        voi, conditions = self.data.images[indices], self.data.conditions[indices]
        if self.settings.flips:  # left-right and front-back (x, y), each with probability 1/2
            for axis in (-1, -2):
                flip = torch.rand(voi.shape[0]) < 0.5
                voi = torch.where(flip[:, None, None, None, None], voi.flip(axis), voi)
        return (voi.to(self.device).contiguous(memory_format=self.memory_format), conditions.to(self.device))

    def __call__(self, step: int) -> torch.Tensor:
        settings, box = self.settings, self.settings.nodule_box
        self.discriminator.requires_grad_(True)
        for critic_step in range(settings.critic_steps):
            real, conditions = self._draw()
            given = generator_input(noise_box_input(real, box), conditions)
            swap = bool(torch.rand(()) < settings.label_flip)
            last = critic_step == settings.critic_steps - 1
            with torch.set_grad_enabled(last), self.autocast:
                generated = (self.generator_ddp if last else self.generator)(given)
            fake_box = generated[self.centre].float()
            real_box = real[self.centre]
            with self.autocast:
                d_parts = self.critic(given, real, paste_centre(real, fake_box.detach(), box),
                                      real_box, fake_box.detach(), conditions, swap)
            self.update_discriminator(d_parts[0])
        self.discriminator.requires_grad_(False)
        with self.autocast:
            fake_voi = paste_centre(real, fake_box, box)
            context_g = losses.least_squares_g(self.discriminator.context(given, fake_voi).float())
            nodule_g = losses.wasserstein_g(self.discriminator.nodule(fake_box, conditions).float())
        l1 = (fake_box - real_box.float()).abs().mean()
        g_total = context_g + nodule_g + settings.l1_weight * l1
        self.update_generator(g_total)
        g_parts = torch.stack([g_total, context_g, nodule_g, l1]).detach().float()
        return torch.cat([d_parts.detach().float(), g_parts])

    # ----------------------------------------------------------------------- grid, export
    def _seeded(self, forward):
        # Dropout is the generator's randomness: a fixed seed makes the grid and the standing
        # statistics the same at every call, without touching the training RNG.
        with torch.random.fork_rng(devices=[self.device] if self.cuda else []):
            torch.manual_seed(GRID_SEED)
            return forward()

    def settle(self, model: nn.Module, phase: dict) -> None:
        # two passes over the 36 grid VOIs: at 64^3 the default eight took ~30 s per checkpoint,
        # which made a Ctrl-C look like a hang
        self._seeded(lambda: standing_statistics(model, lambda: model(self.fixed_input), batches=2))

    def grid(self, model: nn.Module, phase: dict) -> tuple[torch.Tensor, list | None, int | None]:
        with torch.no_grad():
            block = self._seeded(lambda: model(self.fixed_input))[self.centre]
            composite = paste_centre(self.fixed_contexts, block, self.settings.nodule_box)
        middle = composite.shape[2] // 2  # the axial slice through the nodule box's centre
        return composite[:, :, middle], None, len(SIZES) * len(ATTENUATIONS)

    def export_extras(self) -> dict:
        return {"conditions": {"size": list(SIZES), "attenuation": list(ATTENUATIONS)},
                "intensity": vars(self.data.intensity),
                "voi": {"size": self.config.resolution, "box": self.settings.nodule_box,
                        "spacing_mm": self.data.spacing}}
