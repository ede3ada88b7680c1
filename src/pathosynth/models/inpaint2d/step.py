"""The 2D lesion painter's step: paint a real lesion's tissue back from its label map and its
surroundings (pix2pix-style, on patches at the slices' own pixel size).

A step cuts, from each training slice of the batch, a patch around its largest lesion (resized only
when the lesion and the margin do not fit), the lesion at a random place in the patch, flipped at
random. The hole is the lesion and its feather (1 px full, fading to 4 px); the painter sees the
patch outside the hole, the hole, the lesion's labels and noise. What is judged is exactly what
generation writes: the feathered composite. Losses: L1 in the hole (label -> tissue is nearly
deterministic, so L1 converges in minutes) and a weak hinge term from a PatchGAN on (patch, hole,
labels) after the same random shift for real and composite (DiffAugment translation), for grain.
Every random draw comes from the torch RNG the checkpoint keeps, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathosynth.generate.placement.slices import crop, label_channels, lesion_weight, plan_patch
from pathosynth.models.inpaint2d.networks import painter_inputs
from pathosynth.training.lesions import LesionSet, load_lesion_set
from pathosynth.training.step import GANStep

GRID_PATCHES = 16  # grid: 16 real patches, each above its painted version


def patch_inputs(image: np.ndarray, lesion: np.ndarray, labels: list[int], patch: int) -> np.ndarray:
    """(patch, weight, label channels...) of one crop at the painter's size, float32 (2 + K, P, P).
    A crop larger than the painter's patch is averaged down; its labels are taken nearest."""
    side = image.shape[-1]
    if side != patch:
        image = F.interpolate(torch.from_numpy(image)[None, None], size=(patch, patch), mode="area")[0, 0].numpy()
        pick = np.arange(patch) * side // patch
        lesion = lesion[np.ix_(pick, pick)]
    return np.concatenate([image[None], lesion_weight(lesion > 0)[None], label_channels(lesion, labels)])


class InpaintStep(GANStep):
    loss_names = ("loss_d", "loss_g", "adversarial_g", "l1")
    classes: list[str] = []

    def __init__(self, config, family, data, processes, sampler):
        self.labels = list(data.labels)
        self.num_classes = len(self.labels)  # GANStep builds the networks with one channel per label
        super().__init__(config, family, data, processes, sampler)
        self.settings = config.family
        self.patch = config.resolution
        picks = torch.randperm(len(data.boxes), generator=torch.Generator().manual_seed(config.seed))
        self.fixed = self._patches(picks[:GRID_PATCHES].tolist(), offsets=None, flips=False)
        self.fixed_noise = torch.randn(self.fixed[0].shape, generator=torch.Generator().manual_seed(config.seed))

    @staticmethod
    def load_data(config, progress: bool) -> Any:
        return load_lesion_set(config, progress=progress)

    @property
    def passes_per_step(self) -> int:
        return 2  # one discriminator update, then one painter update

    def _patches(self, indices: list[int], offsets: torch.Tensor | None, flips: bool):
        """(patch, weight, labels) batches, (N, 1, P, P), (N, 1, P, P), (N, K, P, P), for these slices."""
        data: LesionSet = self.data
        rows = []
        for k, i in enumerate(indices):
            offset = None if offsets is None else (float(offsets[k, 0]), float(offsets[k, 1]))
            top, left, side = plan_patch(data.boxes[i], self.patch, self.settings.margin, offset=offset)
            image = crop(data.images[i, 0].numpy(), top, left, side).astype(np.float32)
            lesion = crop(data.lesions[i, 0].numpy(), top, left, side)
            rows.append(torch.from_numpy(patch_inputs(image, lesion, self.labels, self.patch)))
        batch = torch.stack(rows)
        if flips:  # left-right and up-down, each with probability 1/2
            for axis in (-1, -2):
                flip = torch.rand(batch.shape[0]) < 0.5
                batch = torch.where(flip[:, None, None, None], batch.flip(axis), batch)
        batch = batch.to(self.device)
        return batch[:, :1], batch[:, 1:2], batch[:, 2:]

    def __call__(self, step: int) -> torch.Tensor:
        s = self.settings
        indices = self.sampler.next_indices().tolist()
        patch, weight, labels = self._patches(indices, torch.rand(len(indices), 2), flips=True)
        hole = (weight > 0).float()
        with self.autocast:
            painted = self.generator_ddp(painter_inputs(patch, weight, labels, torch.randn_like(patch))).float()
        composite = weight * painted + (1 - weight) * patch
        shifts = [tuple(int(v) for v in torch.randint(-s.translation, s.translation + 1, (2,))) for _ in range(3)]

        def judged(image: torch.Tensor, shift: tuple[int, ...]) -> torch.Tensor:
            return self.discriminator(torch.roll(torch.cat([image, hole, labels], 1), shift, (2, 3)))

        self.discriminator.requires_grad_(True)
        loss_d = F.relu(1 - judged(patch, shifts[0])).mean() + F.relu(1 + judged(composite.detach(), shifts[1])).mean()
        self.update_discriminator(loss_d)
        self.discriminator.requires_grad_(False)
        adversarial = -judged(composite, shifts[2]).mean()
        l1 = (hole * (painted - patch).abs()).sum() / hole.sum().clamp(min=1)
        loss_g = s.adversarial_weight * adversarial + s.l1_weight * l1
        self.update_generator(loss_g)
        return torch.stack([loss_d, loss_g, adversarial, l1]).detach().float()

    def settle(self, model: nn.Module, phase: dict) -> None:
        model.eval()  # group norm only

    def grid(self, model: nn.Module, phase: dict) -> tuple[torch.Tensor, list | None, int | None]:
        patch, weight, labels = self.fixed
        with torch.no_grad():
            painted = model(painter_inputs(patch, weight, labels, self.fixed_noise.to(self.device)))
        composite = weight * painted + (1 - weight) * patch
        rows = [t for k in range(0, GRID_PATCHES, 8) for t in (patch[k:k + 8], composite[k:k + 8])]
        return torch.cat(rows) * 2 - 1, None, 8

    def export_extras(self) -> dict:
        return {"patch": self.patch, "margin": self.settings.margin, "labels": self.labels,
                "intensity": vars(self.data.intensity), "spacing_mm": self.data.spacing}
