"""The diffusion family's step: one denoising update (models/diffusion.py has the model and sampler).

A step draws a batch of training images, a uniform timestep and Gaussian noise per image, noises
the images by the DDPM forward process, drops labels to "no class" with probability
`label_dropout`, and regresses v (or the noise; mean squared error). Every draw comes from the torch RNG
the checkpoint keeps, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDPMScheduler
from torch import nn

from pathosynth.training import distributed
from pathosynth.training.batches import draw_batch
from pathosynth.training.data import load_training_set
from pathosynth.training.samples import grid_labels, grid_latents
from pathosynth.training.step import TrainingStep, optimizer

def denoising_target(noising: DDPMScheduler, images: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                     prediction: str) -> torch.Tensor:
    """What the network regresses: v = sqrt(a) noise - sqrt(1 - a) x0, or the noise itself."""
    return noising.get_velocity(images, noise, t) if prediction == "v_prediction" else noise


class DiffusionStep(TrainingStep):
    loss_names = ("loss",)

    def __init__(self, config, family, data, processes, sampler):
        super().__init__(config, family, data, processes, sampler)
        self.settings = config.family
        self.num_classes = len(data.classes) if config.classes == "conditional" else 0
        self.classes = data.classes if self.num_classes else []
        self.generator_kwargs = family.generator_kwargs(config, data.images.shape[1], self.num_classes)
        self.generator = family.generator_class(**self.generator_kwargs).to(self.device)
        self.opt_g = optimizer(config, self.generator.parameters(), config.lr_g)
        self.unet = distributed.wrap(self.generator.unet, processes)  # DDP syncs the denoiser's gradients
        self.noising = DDPMScheduler(num_train_timesteps=self.settings.timesteps, schedule=self.settings.schedule)
        self.fixed_z = grid_latents(self.generator, config.seed, self.device)
        self.fixed_labels = grid_labels(self.num_classes, self.device)

    @staticmethod
    def load_data(config, progress: bool) -> Any:
        return load_training_set(config, progress=progress)

    def parts(self) -> dict[str, Any]:
        return {"generator": self.generator, "opt_g": self.opt_g}

    def learning_rates(self) -> dict[str, float]:
        return {"opt_g": self.config.lr_g}

    def __call__(self, step: int) -> torch.Tensor:
        images, labels, _ = draw_batch(self.data, self.sampler, 0, self.device)
        noise = torch.randn_like(images)
        t = torch.randint(0, self.settings.timesteps, (images.shape[0],), device=self.device)
        noisy = self.noising.add_noise(images, noise, t)
        if self.num_classes:
            dropped = torch.rand(labels.shape[0], device=self.device) < self.settings.label_dropout
            labels = torch.where(dropped, torch.full_like(labels, self.num_classes), labels)
        with self.autocast:
            predicted = self.unet(noisy, timesteps=t, class_labels=labels if self.num_classes else None)
        target = denoising_target(self.noising, images, noise, t, self.settings.prediction)
        loss = F.mse_loss(predicted.float(), target)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return loss.detach().float().reshape(1)

    def progress_text(self, record: dict) -> str:
        return f"loss {record['loss']:.4f} {record['images_per_s']:.1f} img/s"

    def settle(self, model: nn.Module, phase: dict) -> None:
        model.eval()  # group norm only: no running statistics to fix

    def grid(self, model: nn.Module, phase: dict) -> tuple[torch.Tensor, list | None, int | None]:
        with torch.no_grad():
            return model(self.fixed_z, labels=self.fixed_labels), None, None
