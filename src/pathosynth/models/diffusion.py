"""A class-conditional diffusion baseline on MONAI's diffusion U-Net (METHODS.md section 8: the
field's current choice for whole images; Medfusion's recall 0.32 vs ProGAN's 0.17 on CheXpert).

Training: v prediction (Salimans & Ho 2022) on the DDPM forward process (cosine schedule, 1000
steps). Not epsilon: with few sampling steps the first ones start where the signal is ~1e-4 of the
noise, and an epsilon network's small errors there are amplified ~1e4-fold into the image estimate
(a 560-step run sampled salt-and-pepper noise); v keeps that estimate well conditioned. The class
label is dropped to a "no class" embedding with probability `label_dropout`, so one network is both
the conditional and the unconditional model. Generation: DDIM (eta = 0, deterministic) in
`sample_steps` steps from the seed's noise image, with classifier-free guidance
eps = eps_uncond + w (eps_cond - eps_uncond) (Ho & Salimans 2022). The exported "generator" is the
sampler below, so `pathosynth generate` treats it as any 2D generator: latent in, image out, and the
same seed gives the same image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler
from torch import nn

from pathosynth.errors import UserError
from pathosynth.models.family import Family, require_at_least_one
from pathosynth.training.diffusion import DiffusionStep

Schedule = Literal["cosine", "linear_beta", "scaled_linear_beta"]
Prediction = Literal["v_prediction", "epsilon"]


class DiffusionSampler(nn.Module):
    """The denoising U-Net and how to sample it: `forward(z, labels)` turns noise images into images."""

    def __init__(self, resolution: int = 64, channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 64),
                 attention: tuple[bool, ...] = (False, False, False, True), res_blocks: int = 1,
                 num_classes: int = 0, timesteps: int = 1000, schedule: str = "cosine", sample_steps: int = 15,
                 guidance: float = 2.0, prediction: str = "v_prediction"):
        super().__init__()
        self.num_classes, self.timesteps, self.schedule, self.prediction = num_classes, timesteps, schedule, prediction
        self.sample_steps, self.guidance = sample_steps, guidance
        self.latent_shape = (channels, resolution, resolution)
        # one extra class embedding: "no class", for classifier-free guidance
        self.unet = DiffusionModelUNet(
            spatial_dims=2, in_channels=channels, out_channels=channels, num_res_blocks=res_blocks,
            channels=tuple(widths), attention_levels=tuple(attention), norm_num_groups=min(8, min(widths)),
            num_head_channels=min(32, widths[-1]), num_class_embeds=num_classes + 1 if num_classes else None)

    def scheduler(self) -> DDIMScheduler:
        return DDIMScheduler(num_train_timesteps=self.timesteps, schedule=self.schedule, clip_sample=True,
                             prediction_type=self.prediction)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The network's prediction (v or the noise); `labels` may hold the "no class" index `num_classes`."""
        return self.unet(x, timesteps=t, class_labels=labels if self.num_classes else None)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        scheduler = self.scheduler()
        scheduler.set_timesteps(self.sample_steps, device=z.device)
        guided = self.num_classes and labels is not None and self.guidance != 1.0
        x = z
        for t in scheduler.timesteps:
            steps = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
            if guided:
                none = torch.full_like(labels, self.num_classes)
                both = self.denoise(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([labels, none]))
                conditional, unconditional = both.chunk(2)
                prediction = unconditional + self.guidance * (conditional - unconditional)
            else:
                prediction = self.denoise(x, steps, labels)
            x, _ = scheduler.step(prediction, int(t), x)
        return x


def check_denoiser(section) -> None:
    """The checks every diffusion family's section needs: its U-Net's levels and its schedule."""
    require_at_least_one(section, "res_blocks", "timesteps", "sample_steps")
    if len(section.attention) != len(section.widths):
        raise UserError(f"the diffusion U-Net has {len(section.widths)} levels but {len(section.attention)} "
                        "attention flags; give one per level")
    if section.sample_steps > section.timesteps:
        raise UserError(f"sample-steps ({section.sample_steps}) cannot exceed the {section.timesteps} timesteps")


@dataclass
class DiffusionConfig:
    # U-Net channels per level; self-attention at the coarsest level only (8 x 8 at 64 px). Narrow
    # fine levels: on a CPU the full-resolution convolutions cost the most (docs/benchmarks.md).
    widths: tuple[int, ...] = (16, 32, 64, 64)
    attention: tuple[bool, ...] = (False, False, False, True)
    res_blocks: int = 1
    timesteps: int = 1000  # the forward process's steps
    schedule: Schedule = "cosine"
    prediction: Prediction = "v_prediction"
    sample_steps: int = 15  # DDIM steps at generation
    guidance: float = 2.0  # classifier-free guidance weight w (1: none)
    label_dropout: float = 0.1  # how often training drops the label to "no class"

    def check(self, config) -> None:
        check_denoiser(self)
        if config.resolution % 2 ** (len(self.widths) - 1):
            raise UserError(f"resolution {config.resolution} cannot be halved {len(self.widths) - 1} times; "
                            "use a power of two")
        if not 0.0 <= self.label_dropout < 1.0:
            raise UserError(f"label-dropout must be in [0, 1), got {self.label_dropout}")
        if config.boxes:
            raise UserError("the diffusion baseline makes whole images by class; it has no box conditioning")


def _generator_kwargs(config, channels: int, num_classes: int) -> dict:
    own = config.family
    return dict(resolution=config.resolution, channels=channels, widths=list(own.widths),
                attention=list(own.attention), res_blocks=own.res_blocks, num_classes=num_classes,
                timesteps=own.timesteps, schedule=own.schedule, sample_steps=own.sample_steps,
                guidance=own.guidance, prediction=own.prediction)


# AdamW 1e-4 (the usual DDPM setting for small U-Nets), no warm-up; EMA as for the GANs.
DIFFUSION = Family(
    name="diffusion", spatial_dims=2, config=DiffusionConfig, step=DiffusionStep, generator_class=DiffusionSampler,
    generator_kwargs=_generator_kwargs,
    training=dict(optimizer="adam", lr_g=1e-4, betas=(0.9, 0.999), ema_decay=0.999),
    presets={"paper": dict(resolution=64, widths=(64, 128, 256, 256), attention=(False, False, True, True),
                           res_blocks=2, batch=32, steps=100_000,
                           notes={"steps": "no paper in the seeds; a MONAI-tutorial-sized 64 px model"}),
             "small": dict(resolution=64, batch=16, steps=3000, sample_every=500, checkpoint_every=500),
             "tiny": dict(widths=(8, 16), attention=(False, True), timesteps=50, sample_steps=2)})
