"""The diffusion baseline's mask-conditioned lesion inpainting variant (issue 17): MONAI's diffusion
U-Net paints a lesion's tissue into a real slice from its label map and its surroundings, as the
2D lesion inpainter does, by denoising instead of in one pass (DiffTumor, Med-DDPM: mask-conditioned
diffusion; METHODS.md section 8).

Same patches, shapes, healthy holes, generation and guarantees as `inpaint2d` (training/lesion_patches.py,
generate/lesions.py): only the painter differs. The U-Net sees the noisy patch inside the hole only,
the patch outside the hole (the context), the hole and one channel per lesion label; training
regresses v (Salimans & Ho 2022, cosine schedule, as the whole-image diffusion family) with the
squared error averaged over the hole. Sampling: DDIM (eta = 0) in `sample_steps` steps from the
noise the generation code gives inside the hole, so the same seed paints the same lesion. No
classifier-free guidance: the label map is a dense condition. The exported "generator" is the
sampler, with the inpainter's calling convention (its inputs in, the painted patch in [0, 1] out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from torch import nn

from pathosynth.errors import UserError
from pathosynth.models.diffusion import Prediction, Schedule, check_denoiser
from pathosynth.models.family import Family, LesionPainting
from pathosynth.training import distributed
from pathosynth.training.diffusion import denoising_target
from pathosynth.training.lesion_patches import LesionPatches, PaintsLesions
from pathosynth.training.step import TrainingStep, optimizer


def unet_input(x: torch.Tensor, context: torch.Tensor, hole: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """What the U-Net sees, in training and sampling alike: x_t inside the hole only, the context
    (the patch in [-1, 1] outside the hole, 0 inside), the hole and the label channels."""
    return torch.cat([x * hole, context, hole, labels], 1)


class DiffusionPainter(nn.Module):
    """`forward(inputs)`: the inpainter's inputs (context, hole, labels, noise in the hole) -> the
    painted patch in [0, 1]. `denoise` is the U-Net on (x_t in the hole, context, hole, labels)."""

    def __init__(self, patch: int = 96, labels: int = 3, widths: tuple[int, ...] = (16, 32, 64, 64),
                 attention: tuple[bool, ...] = (False, False, False, True), res_blocks: int = 1,
                 timesteps: int = 1000, schedule: str = "cosine", sample_steps: int = 15,
                 prediction: str = "v_prediction"):
        super().__init__()
        self.patch, self.labels, self.timesteps, self.schedule = patch, labels, timesteps, schedule
        self.sample_steps, self.prediction = sample_steps, prediction
        self.unet = DiffusionModelUNet(
            spatial_dims=2, in_channels=3 + labels, out_channels=1, num_res_blocks=res_blocks, channels=tuple(widths),
            attention_levels=tuple(attention), norm_num_groups=min(8, min(widths)),
            num_head_channels=min(32, widths[-1]))

    def denoise(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, hole: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        return self.unet(unet_input(x, context, hole, labels), timesteps=t)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        context, hole, labels, noise = inputs[:, :1], inputs[:, 1:2], inputs[:, 2:-1], inputs[:, -1:]
        context = (context * 2 - 1) * (1 - hole)  # [0, 1] -> the diffusion's [-1, 1], 0 in the hole as in training
        scheduler = DDIMScheduler(num_train_timesteps=self.timesteps, schedule=self.schedule, clip_sample=True,
                                  prediction_type=self.prediction)
        scheduler.set_timesteps(self.sample_steps, device=inputs.device)
        x = noise
        for t in scheduler.timesteps:
            steps = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
            x, _ = scheduler.step(self.denoise(x, steps, context, hole, labels), int(t), x)
        return ((x + 1) / 2).clamp(0, 1)


class DiffusionInpaintStep(PaintsLesions, TrainingStep):
    loss_names = ("loss",)
    classes: list[str] = []

    def __init__(self, config, family, data, processes, sampler):
        super().__init__(config, family, data, processes, sampler)
        self.settings = config.family
        self.generator_kwargs = family.generator_kwargs(config, 1, len(data.labels))
        self.generator = family.generator_class(**self.generator_kwargs).to(self.device)
        self.opt_g = optimizer(config, self.generator.parameters(), config.lr_g)
        self.unet = distributed.wrap(self.generator.unet, processes)
        self.noising = DDPMScheduler(num_train_timesteps=self.settings.timesteps, schedule=self.settings.schedule)
        self.patches = LesionPatches(data, config, self.device)

    def parts(self) -> dict[str, Any]:
        return {"generator": self.generator, "opt_g": self.opt_g}

    def learning_rates(self) -> dict[str, float]:
        return {"opt_g": self.config.lr_g}

    def __call__(self, step: int) -> torch.Tensor:
        patch, weight, labels = self.patches.draw(self.sampler.next_indices().tolist())
        hole = (weight > 0).float()
        images = patch * 2 - 1
        noise = torch.randn_like(images)
        t = torch.randint(0, self.settings.timesteps, (images.shape[0],), device=self.device)
        noisy = self.noising.add_noise(images, noise, t)
        with self.autocast:
            predicted = self.unet(unet_input(noisy, images * (1 - hole), hole, labels), timesteps=t)
        target = denoising_target(self.noising, images, noise, t, self.settings.prediction)
        loss = (hole * (predicted.float() - target) ** 2).sum() / hole.sum().clamp(min=1)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return loss.detach().float().reshape(1)

    def progress_text(self, record: dict) -> str:
        return f"loss {record['loss']:.4f} {record['images_per_s']:.1f} patches/s"



@dataclass
class DiffusionInpaintConfig(LesionPainting):
    widths: tuple[int, ...] = (16, 32, 64, 64)  # U-Net channels per level, as the whole-image family's
    attention: tuple[bool, ...] = (False, False, False, True)
    res_blocks: int = 1
    timesteps: int = 1000
    schedule: Schedule = "cosine"
    prediction: Prediction = "v_prediction"
    sample_steps: int = 15  # DDIM steps per painted lesion

    def check(self, config) -> None:
        super().check(config)
        check_denoiser(self)
        if config.resolution % 2 ** (len(self.widths) - 1):
            raise UserError(f"the painter's patch (--resolution {config.resolution}) must be divisible by "
                            f"{2 ** (len(self.widths) - 1)}; e.g. 96")


def _generator_kwargs(config, channels: int, num_classes: int) -> dict:
    # the label count is the data's (the step passes it in as `num_classes`)
    own = config.family
    return dict(patch=config.resolution, labels=num_classes, widths=list(own.widths), attention=list(own.attention),
                res_blocks=own.res_blocks, timesteps=own.timesteps, schedule=own.schedule,
                sample_steps=own.sample_steps, prediction=own.prediction)


DIFFUSION_INPAINT = Family(
    name="diffusion-inpaint", spatial_dims=2, config=DiffusionInpaintConfig, step=DiffusionInpaintStep,
    generator_class=DiffusionPainter, generator_kwargs=_generator_kwargs, boxes="required", generation="lesions",
    training=dict(optimizer="adam", lr_g=1e-4, betas=(0.9, 0.999), boxes=True, classes="none", resolution=96,
                  ema_decay=0.999),
    presets={"paper": dict(batch=32, steps=50_000, widths=(64, 128, 256, 256), res_blocks=2,
                           notes={"steps": "no paper in the seeds; MONAI-tutorial-sized"}),
             "small": dict(batch=16, steps=2000, sample_every=250, checkpoint_every=250),
             "tiny": dict(resolution=32, widths=(8, 16), attention=(False, True), timesteps=50, sample_steps=2,
                          batch=2, margin=4)})
